"""Settings: read once from the environment (prefix ``SHIPYARD_``), validated, then frozen."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable, in one object that is passed down, never re-read."""

    model_config = SettingsConfigDict(env_prefix="SHIPYARD_", frozen=True, extra="ignore")

    home: Path = Field(
        default=Path(".shipyard"), description="Folder for the database and artifacts."
    )
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; defaults to SQLite at $SHIPYARD_HOME/shipyard.db.",
    )
    intra_op_threads: int = Field(
        default=0,
        ge=0,
        description="ONNX Runtime intra-op threads per session (0: runtime default).",
    )
    inter_op_threads: int = Field(default=1, ge=0)
    actor: str | None = Field(
        default=None, description="Who is recorded as making changes (defaults to the OS user)."
    )

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.home / 'shipyard.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"
