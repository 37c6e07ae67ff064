"""The content-addressed artifact store, and what happens when its files go bad."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

import pytest

import shipyard
from helpers import blob_files, tmp_files
from shipyard import Registry, Settings
from shipyard.errors import ArtifactNotFoundError, IntegrityError, StorageError
from shipyard.registry.folder_store import FolderArtifactStore as ArtifactStore


@pytest.fixture
def store(settings: Settings) -> ArtifactStore:
    return ArtifactStore(settings.artifacts_dir)


def _enospc(*_args: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_put_bytes_is_content_addressed(store: ArtifactStore, settings: Settings) -> None:
    data = b"the same bytes"
    first = store.put_bytes(data)
    second = store.put_bytes(data)
    assert first.digest == second.digest == hashlib.sha256(data).hexdigest()
    assert (first.created, second.created) == (True, False)
    assert first.size == len(data)
    path = store.blob_path(first.digest)
    assert path.name == first.digest
    assert path.parent.name == first.digest[:2]
    assert path.read_bytes() == data
    assert blob_files(settings) == [path]
    assert tmp_files(settings) == []


def test_put_file_is_content_addressed(
    store: ArtifactStore, settings: Settings, tmp_path: Path
) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # several read chunks
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(data)
    b.write_bytes(data)
    seen: list[int] = []
    first = store.put_file(a, seen.append)
    second = store.put_file(b)
    assert first.digest == second.digest == hashlib.sha256(data).hexdigest()
    assert (first.created, second.created) == (True, False)
    assert first.size == second.size == len(data)
    assert sum(seen) == len(data)
    assert store.blob_path(first.digest).name == hashlib.sha256(data).hexdigest()
    assert store.blob_path(first.digest).read_bytes() == data
    assert len(blob_files(settings)) == 1
    assert tmp_files(settings) == []


def test_different_content_different_blobs(store: ArtifactStore, settings: Settings) -> None:
    digests = {store.put_bytes(bytes([i]) * 10).digest for i in range(5)}
    assert len(digests) == 5
    assert {p.name for p in blob_files(settings)} == digests
    assert tmp_files(settings) == []


def test_blobs_are_read_only(store: ArtifactStore) -> None:
    blob = store.put_bytes(b"immutable")
    mode = stat.S_IMODE(store.blob_path(blob.digest).stat().st_mode)
    assert mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0


@pytest.mark.parametrize("via", ["bytes", "file"])
def test_disk_full_raises_storage_error_and_leaves_no_temp_file(
    store: ArtifactStore,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    via: str,
) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(b"payload" * 1000)
    monkeypatch.setattr(os, "fsync", _enospc)

    def write() -> object:
        return store.put_bytes(source.read_bytes()) if via == "bytes" else store.put_file(source)

    with pytest.raises(StorageError, match="No space left on device"):
        write()
    assert tmp_files(settings) == []
    assert blob_files(settings) == []


def test_failed_directory_sync_does_not_publish_the_blob(
    store: ArtifactStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's own fsync succeeds, the folder's fails: the write failed, nothing stays."""
    real_fsync = os.fsync
    calls = 0

    def fsync(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            _enospc()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(StorageError, match="could not write an artifact"):
        store.put_bytes(b"half-written")
    assert blob_files(settings) == []
    assert tmp_files(settings) == []
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert store.put_bytes(b"half-written").created is True


def test_verify_and_read_verified(store: ArtifactStore) -> None:
    blob = store.put_bytes(b"good")
    store.verify(blob.digest, "good.bin")
    assert store.read_verified(blob.digest, "good.bin") == b"good"


# Tampering with a registered version -------------------------------------------------------


def _blob_of(registry: Registry, ref: str, path: str) -> Path:
    entry = registry.get_version(ref).file(path)
    assert entry is not None
    return registry.artifacts.blob_path(entry.digest)


def _overwrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


def test_tampered_model_file_is_refused(registry: Registry, tiny_onnx_path: Path) -> None:
    shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    blob = _blob_of(registry, "tiny", "model.onnx")
    _overwrite(blob, blob.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError, match=r"'model\.onnx' is corrupt or was tampered with"):
        shipyard.load("tiny", registry=registry)
    with pytest.raises(IntegrityError, match=r"'model\.onnx' is corrupt or was tampered with"):
        registry.verify("tiny:1")
    version = registry.get_version("tiny")
    with pytest.raises(IntegrityError, match=r"'model\.onnx'"):
        registry.read_file(version, "model.onnx")


def test_tampered_model_is_refused_through_settings(
    settings: Settings, tiny_onnx_path: Path
) -> None:
    shipyard.register(tiny_onnx_path, "tiny", settings=settings)
    with Registry(settings) as registry:
        blob = _blob_of(registry, "tiny", "model.onnx")
    _overwrite(blob, b"not the model that was registered")
    with pytest.raises(IntegrityError, match=r"model\.onnx"):
        shipyard.load("tiny", settings=settings)


def test_tampered_manifest_is_refused(registry: Registry, tiny_onnx_path: Path) -> None:
    version = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    _overwrite(registry.artifacts.blob_path(version.artifact_digest), b'{"files": {}}')
    with pytest.raises(IntegrityError, match=r"manifest\.json"):
        registry.verify("tiny")
    with pytest.raises(IntegrityError, match=r"manifest\.json"):
        shipyard.load("tiny", registry=registry)


def test_deleted_blob_is_reported_by_name(registry: Registry, tiny_onnx_path: Path) -> None:
    shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    _blob_of(registry, "tiny", "model.onnx").unlink()
    with pytest.raises(ArtifactNotFoundError, match=r"'model\.onnx' is missing from the store"):
        registry.verify("tiny")
    with pytest.raises(ArtifactNotFoundError, match=r"'model\.onnx' is missing from the store"):
        shipyard.load("tiny", registry=registry)


def test_verify_passes_on_an_intact_version(registry: Registry, tiny_onnx_path: Path) -> None:
    shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    progress: list[tuple[str, int]] = []

    def factory(description: str, total: int):  # type: ignore[no-untyped-def]
        progress.append((description, total))
        return lambda _n: None

    version = registry.verify("tiny", progress=factory)
    assert version.ref == "tiny:1"
    assert [d for d, _ in progress] == [f"verify {f.path}" for f in version.files]
    assert set(registry.read_files(version)) == {f.path for f in version.files}


def test_database_rows_that_disagree_with_the_manifest(
    registry: Registry, settings: Settings, tiny_onnx_path: Path
) -> None:
    """Someone edits a file row in the database: the manifest blob no longer agrees with it."""
    import sqlite3

    shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    conn = sqlite3.connect(settings.home / "shipyard.db")
    try:
        conn.execute("UPDATE version_files SET size = size + 1 WHERE path = 'model.onnx'")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(
        IntegrityError, match=r"does not match the registry for file\(s\) model\.onnx"
    ):
        registry.verify("tiny")
    with pytest.raises(IntegrityError, match=r"manifest of tiny:1 does not match"):
        shipyard.load("tiny", registry=registry)
