"""The contract of every artifact store, run against the folder store and its in-memory twin;
and a registry whose artifacts live in memory."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import shipyard
from helpers import blob_files
from shipyard import Registry, Settings
from shipyard.errors import ArtifactNotFoundError, IntegrityError
from shipyard.registry.artifacts import (
    ArtifactStore,
    encode_manifest,
    put_manifest,
    read_manifest,
)
from shipyard.registry.domain import ArtifactFile
from shipyard.registry.folder_store import FolderArtifactStore
from shipyard.registry.memory_store import MemoryArtifactStore


@dataclass
class Subject:
    store: ArtifactStore
    tamper: Callable[[str, bytes], None]  # replace a blob's content behind the store's back


def _folder(root: Path) -> Subject:
    store = FolderArtifactStore(root)

    def tamper(digest: str, data: bytes) -> None:
        path = store.blob_path(digest)
        path.chmod(0o644)
        path.write_bytes(data)

    return Subject(store, tamper)


def _memory() -> Subject:
    store = MemoryArtifactStore()

    def tamper(digest: str, data: bytes) -> None:
        store.blobs[digest] = data

    return Subject(store, tamper)


def _bucket(url: str, s3_server: Any, cache: Path) -> Subject:
    from shipyard.registry.s3_store import S3ArtifactStore

    store = S3ArtifactStore(url, cache)

    def tamper(digest: str, data: bytes) -> None:
        s3_server.client().put_object(Bucket=store.bucket, Key=store.key(digest), Body=data)
        store.cache.remove([digest])  # as on a host that has not read it yet

    return Subject(store, tamper)


@pytest.fixture(params=["folder", "memory", "s3"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Subject:
    if request.param == "s3":
        url = request.getfixturevalue("s3_url")
        return _bucket(url, request.getfixturevalue("s3_server"), tmp_path / "cache")
    return _folder(tmp_path / "artifacts") if request.param == "folder" else _memory()


def test_put_bytes_is_content_addressed(subject: Subject) -> None:
    store = subject.store
    first, second = store.put_bytes(b"same"), store.put_bytes(b"same")
    assert first.digest == second.digest == hashlib.sha256(b"same").hexdigest()
    assert (first.created, second.created) == (True, False)
    assert first.size == 4
    assert store.put_bytes(b"other").digest != first.digest


def test_put_file_reports_progress(subject: Subject, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"x" * (3 << 20) + b"tail")
    seen: list[int] = []
    blob = subject.store.put_file(source, seen.append)
    assert blob.digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert blob.size == sum(seen) == source.stat().st_size
    assert blob.created is True
    assert subject.store.put_file(source).created is False


def test_exists_and_remove(subject: Subject) -> None:
    store = subject.store
    digest = store.put_bytes(b"kept for a while").digest
    assert store.exists(digest)
    store.remove([digest, "0" * 64])  # a digest the store never held is no error
    assert not store.exists(digest)


def test_list_blobs_sees_what_is_stored(subject: Subject) -> None:
    store = subject.store
    assert list(store.list_blobs()) == []
    kept, gone = store.put_bytes(b"kept"), store.put_bytes(b"gone")
    store.remove([gone.digest])
    listed = list(store.list_blobs())
    assert [(b.digest, b.size) for b in listed] == [(kept.digest, 4)]
    assert listed[0].modified.tzinfo is not None


def test_read_verified_and_verify(subject: Subject) -> None:
    blob = subject.store.put_bytes(b"good")
    assert subject.store.read_verified(blob.digest, "good.bin") == b"good"
    seen: list[int] = []
    subject.store.verify(blob.digest, "good.bin", seen.append)
    assert sum(seen) == 4


def test_tampered_blob_is_refused_by_name(subject: Subject) -> None:
    blob = subject.store.put_bytes(b"the registered model")
    subject.tamper(blob.digest, b"another model")
    tampered = r"artifact file 'model\.onnx' is corrupt or was tampered with: sha256 is "
    with pytest.raises(IntegrityError, match=tampered):
        subject.store.read_verified(blob.digest, "model.onnx")
    with pytest.raises(IntegrityError, match=f"the manifest says {blob.digest}"):
        subject.store.verify(blob.digest, "model.onnx")


def test_missing_blob_is_reported_by_name(subject: Subject) -> None:
    blob = subject.store.put_bytes(b"soon gone")
    subject.store.remove([blob.digest])
    gone = r"artifact file 'model\.onnx' is missing from the store \(expected .*"
    with pytest.raises(ArtifactNotFoundError, match=gone + blob.digest):
        subject.store.read_verified(blob.digest, "model.onnx")
    with pytest.raises(ArtifactNotFoundError, match=gone + blob.digest):
        subject.store.verify(blob.digest, "model.onnx")


def test_manifest_round_trips(subject: Subject) -> None:
    files = [ArtifactFile("reference.npy", "b" * 64, 10), ArtifactFile("model.onnx", "a" * 64, 3)]
    blob = put_manifest(subject.store, files)
    assert subject.store.read_verified(blob.digest, "manifest.json") == encode_manifest(files)
    assert read_manifest(subject.store, blob.digest) == {f.path: f for f in files}


def test_tampered_manifest_is_refused_by_name(subject: Subject) -> None:
    blob = put_manifest(subject.store, [ArtifactFile("model.onnx", "a" * 64, 3)])
    subject.tamper(blob.digest, b'{"files": {}}')
    with pytest.raises(IntegrityError, match=r"'manifest\.json' is corrupt"):
        read_manifest(subject.store, blob.digest)


# A registry over the in-memory store --------------------------------------------------------


def test_registry_with_artifacts_in_memory(settings: Settings, tiny_onnx_path: Path) -> None:
    store = MemoryArtifactStore()
    with Registry(settings, artifacts=store) as registry:
        version = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
        assert set(store.blobs) == {version.artifact_digest, *(f.digest for f in version.files)}
        assert registry.verify("tiny:1") == version
        assert shipyard.load("tiny", registry=registry).signature == version.signature
        entry = version.file("model.onnx")
        assert entry is not None
        store.blobs[entry.digest] = b"not the model"
        with pytest.raises(IntegrityError, match=r"'model\.onnx' is corrupt"):
            registry.read_files(version)
        registry.delete_version("tiny:1")
    assert store.blobs == {}
    assert blob_files(settings) == []  # nothing went to the folder of the settings
