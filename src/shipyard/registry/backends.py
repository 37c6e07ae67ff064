"""Which metadata database and which artifact store a Settings object chooses.

The one place that knows the implementations: the registry, the CLI and the server are
given a ``Database`` and an ``ArtifactStore`` and never name one.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.errors import StorageError
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
    """The store ``settings.artifact_url`` names: a folder (by default
    ``settings.artifacts_dir``) or an S3 bucket read through a cache under the home."""
    url = settings.artifact_url
    if not url:
        return FolderArtifactStore(settings.artifacts_dir)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return FolderArtifactStore(Path(url).expanduser())
    if scheme == "file":
        return FolderArtifactStore(Path(rest))
    if scheme == "s3":
        from shipyard.registry.s3_store import S3ArtifactStore

        return S3ArtifactStore(url, settings.artifact_cache_dir)
    raise StorageError(
        f"cannot use the artifact URL {url!r} (SHIPYARD_ARTIFACT_URL): unknown scheme "
        f"{scheme!r}; use a folder path, file:///path or s3://bucket/prefix"
    )
