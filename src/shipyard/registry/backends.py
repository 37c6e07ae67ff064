"""Which metadata database and which artifact store a Settings object chooses.

The one place that knows the implementations: the registry, the CLI and the server are
given a ``Database`` and an ``ArtifactStore`` and never name one.
"""

from __future__ import annotations

from shipyard.registry.artifacts import ArtifactStore
from shipyard.registry.database import Database, SqlDatabase
from shipyard.registry.folder_store import FolderArtifactStore
from shipyard.settings import Settings


def open_database(settings: Settings) -> Database:
    """SQLAlchemy at ``settings.database_url`` (SQLite under the home by default)."""
    return SqlDatabase(
        settings.database_url,
        settings.home,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )


def open_artifacts(settings: Settings) -> ArtifactStore:
    """The folder ``settings.artifacts_dir``."""
    return FolderArtifactStore(settings.artifacts_dir)
