"""What the settings choose for storage, and a registry given its database by its caller."""

from __future__ import annotations

from pathlib import Path

import shipyard
from shipyard import Registry, Settings
from shipyard.registry.backends import open_artifacts, open_database
from shipyard.registry.database import SqlDatabase
from shipyard.registry.folder_store import FolderArtifactStore


def test_the_default_is_sqlite_and_a_folder_under_home(settings: Settings) -> None:
    database, artifacts = open_database(settings), open_artifacts(settings)
    try:
        assert isinstance(database, SqlDatabase)
        assert database.url == settings.database_url
        assert database.dialect == "sqlite"
    finally:
        database.dispose()
    assert isinstance(artifacts, FolderArtifactStore)
    assert artifacts.root == settings.artifacts_dir


def test_a_registry_uses_the_database_it_is_given(settings: Settings, tiny_onnx_path: Path) -> None:
    database = open_database(settings)
    try:
        with Registry(settings, database=database) as registry:
            assert registry.database is database
            shipyard.register(tiny_onnx_path, "tiny", registry=registry)
        with Registry(settings, database=database) as again:
            assert again.get_version("tiny").version == 1
        with database.session() as session:
            assert session.get_bind().dialect.name == database.dialect
    finally:
        database.dispose()
