"""The metadata database: migrated on first use, SQLite tuned for several writers."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from helpers import release_together
from shipyard import Registry, Settings
from shipyard.errors import StorageError
from shipyard.registry import database
from shipyard.registry.database import BUSY_TIMEOUT_MS, SCHEMA_HEAD, head_revision

TABLES = {
    "models",
    "model_versions",
    "version_files",
    "aliases",
    "events",
    "monitor_profiles",
    "monitor_windows",
    "monitor_evaluations",
    "predictions",
    "leases",
    "rollouts",
    "rollout_evidence",
    "runs",
    "run_metrics",
    "run_files",
    "run_datasets",
    "alembic_version",
}


def _pragma(registry: Registry, name: str) -> object:
    with registry.database.engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_first_use_migrates_to_head(settings: Settings) -> None:
    assert not (settings.home / "shipyard.db").exists()
    with Registry(settings) as registry:
        assert (settings.home / "shipyard.db").is_file()
        assert registry.database.current_revision() == head_revision()
        assert set(inspect(registry.database.engine).get_table_names()) >= TABLES


def test_schema_head_is_alembics_head() -> None:
    """A database at SCHEMA_HEAD is trusted without reading the migration scripts."""
    assert head_revision() == SCHEMA_HEAD


def test_a_database_behind_head_is_upgraded_on_first_use(settings: Settings) -> None:
    with Registry(settings) as registry:
        url = registry.database.url
    from alembic import command

    command.downgrade(database._alembic_config(url), "0005")
    database._upgraded.discard(url)  # as a new process would find it
    with Registry(settings) as registry:
        assert registry.database.current_revision() == SCHEMA_HEAD
        assert "runs" in inspect(registry.database.engine).get_table_names()


def test_sqlite_pragmas(registry: Registry) -> None:
    assert str(_pragma(registry, "journal_mode")).lower() == "wal"
    assert _pragma(registry, "foreign_keys") == 1
    assert _pragma(registry, "busy_timeout") == BUSY_TIMEOUT_MS
    assert BUSY_TIMEOUT_MS >= 1000


def test_upgrade_again_is_a_no_op(registry: Registry) -> None:
    assert registry.database.upgrade() == head_revision()
    with registry.database.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
    assert rows == [(head_revision(),)]


def test_db_url_setting_is_honoured(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "meta.db"
    settings = Settings(home=tmp_path / "home", db_url=f"sqlite:///{elsewhere}")
    with Registry(settings) as registry:
        assert registry.database.current_revision() == head_revision()
        assert registry.list_models() == []
    assert elsewhere.is_file()
    assert not (tmp_path / "home" / "shipyard.db").exists()


def test_db_url_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "env.db"
    monkeypatch.setenv("SHIPYARD_DB_URL", f"sqlite:///{elsewhere}")
    settings = Settings(home=tmp_path / "home")
    assert settings.database_url == f"sqlite:///{elsewhere}"
    with Registry(settings) as registry:
        assert registry.database.current_revision() == head_revision()
    assert elsewhere.is_file()
    assert not (tmp_path / "home" / "shipyard.db").exists()


def test_default_url_is_under_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    assert settings.database_url == f"sqlite:///{(tmp_path / 'home' / 'shipyard.db').resolve()}"
    assert settings.artifacts_dir == tmp_path / "home" / "artifacts"


def test_two_registries_on_one_home(settings: Settings, tiny_onnx_path: Path) -> None:
    import shipyard

    with Registry(settings) as first, Registry(settings) as second:
        shipyard.register(tiny_onnx_path, "shared", registry=first)
        shipyard.register(tiny_onnx_path, "shared", registry=second)
        assert [v.version for v in first.list_versions("shared")] == [1, 2]
        assert second.get_version("shared").version == 2
        with second.database.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
        assert rows == [(head_revision(),)]


MIGRATE_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from sqlalchemy import Engine, event

    creates = []

    @event.listens_for(Engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("CREATE TABLE"):
            creates.append(statement.split("(")[0].split()[-1].strip('"'))

    from shipyard import Registry, Settings

    home, go = Path(sys.argv[1]), Path(sys.argv[2])
    Path(sys.argv[3]).touch()  # ready
    while not go.exists():
        time.sleep(0.005)
    with Registry(Settings(home=home)) as registry:
        models = registry.list_models()
    print(json.dumps({"creates": creates, "models": len(models)}))
    """
)


def test_two_processes_migrate_a_new_home_once(tmp_path: Path) -> None:
    """Both processes open a brand-new home at once: one migrates, the other waits and uses it."""
    home = tmp_path / "home"
    reports = release_together(tmp_path, MIGRATE_SCRIPT, [str(home)], workers=2)
    created = sorted(t for r in reports for t in r["creates"])
    assert created == sorted(TABLES)  # every table created exactly once, by one of the two
    assert [r["models"] for r in reports] == [0, 0]


def test_migrations_match_the_tables(registry: Registry) -> None:
    """Alembic's head creates exactly what the ORM declares (no drift between the two)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from shipyard.registry.schema import Base

    with registry.database.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []
    tables = set(inspect(registry.database.engine).get_table_names())
    assert {"monitor_profiles", "monitor_windows", "monitor_evaluations", "predictions"} <= tables


# Databases that cannot be used: exit 9, what was tried named, no password, no traceback ----


def _models_list(tmp_path: Path, url: str) -> Any:
    from typer.testing import CliRunner

    from shipyard.cli import app

    env = {"SHIPYARD_HOME": str(tmp_path / "home"), "SHIPYARD_DB_URL": url}
    return CliRunner().invoke(app, ["models", "list"], env=env)


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    result = _models_list(tmp_path, "postgresql+psycopg://shipyard:s3cret@127.0.0.1:9/registry")
    assert result.exit_code == StorageError.exit_code
    message = " ".join(result.output.split())
    assert "cannot reach the metadata database" in message
    assert "postgresql+psycopg://shipyard:***@127.0.0.1:9/registry" in message
    assert "s3cret" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_database_url_of_an_unknown_scheme(tmp_path: Path) -> None:
    result = _models_list(tmp_path, "mongodb://db.example/registry")
    assert result.exit_code == StorageError.exit_code
    assert "cannot use the database URL 'mongodb://db.example/registry'" in result.output
