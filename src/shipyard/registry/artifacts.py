"""Content-addressed artifact store: blobs named by their sha256, written atomically.

Layout under the store's root::

    sha256/ab/abcdef...   one blob per distinct content
    tmp/                  files being written (same file system, so rename is atomic)

A version's manifest (logical file name -> digest and size) is itself a blob; its digest is
the version's artifact digest. Every read verifies the content against its digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shipyard.errors import ArtifactNotFoundError, IntegrityError, StorageError
from shipyard.registry.domain import ArtifactFile

CHUNK = 1 << 20
MANIFEST_FORMAT = 1

# Called with the number of bytes just processed.
ProgressCallback = Callable[[int], None]


def _no_progress(_: int) -> None:
    return None


def sha256_file(path: Path, progress: ProgressCallback = _no_progress) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            progress(len(chunk))
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredBlob:
    digest: str
    size: int
    created: bool  # False when identical content was already stored


class ArtifactStore:
    """A folder of immutable blobs; safe for several processes to write at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "sha256"
        self._tmp = root / "tmp"

    def blob_path(self, digest: str) -> Path:
        return self._blobs / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def put_file(self, source: Path, progress: ProgressCallback = _no_progress) -> StoredBlob:
        """Copy ``source`` in, hashing while copying."""
        with source.open("rb") as fh:
            return self._put_stream(fh, progress)

    def put_bytes(self, data: bytes) -> StoredBlob:
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return StoredBlob(digest, len(data), created=False)
        return self._write(lambda out: out.write(data), digest, len(data))

    def _put_stream(self, fh: BinaryIO, progress: ProgressCallback) -> StoredBlob:
        hasher = hashlib.sha256()
        tmp = self._new_tmp()
        size = 0
        try:
            with os.fdopen(tmp[0], "wb") as out:
                while chunk := fh.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            digest = hasher.hexdigest()
            created = self._publish(Path(tmp[1]), digest)
        except OSError as exc:
            Path(tmp[1]).unlink(missing_ok=True)
            raise StorageError(f"could not write an artifact under {self.root}: {exc}") from exc
        return StoredBlob(digest, size, created)

    def _write(self, writer: Callable[[BinaryIO], object], digest: str, size: int) -> StoredBlob:
        tmp = self._new_tmp()
        try:
            with os.fdopen(tmp[0], "wb") as out:
                writer(out)
                out.flush()
                os.fsync(out.fileno())
            created = self._publish(Path(tmp[1]), digest)
        except OSError as exc:
            Path(tmp[1]).unlink(missing_ok=True)
            raise StorageError(f"could not write an artifact under {self.root}: {exc}") from exc
        return StoredBlob(digest, size, created)

    def _new_tmp(self) -> tuple[int, str]:
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            return tempfile.mkstemp(dir=self._tmp, prefix="blob-")
        except OSError as exc:
            raise StorageError(f"could not write an artifact under {self.root}: {exc}") from exc

    def _publish(self, tmp: Path, digest: str) -> bool:
        final = self.blob_path(digest)
        if final.is_file():
            tmp.unlink()
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)
        try:
            _fsync_dir(final.parent)
        except OSError:
            final.unlink(missing_ok=True)  # not durable, and the caller hears "failed": unpublish
            raise
        return True

    def read_verified(self, digest: str, name: str) -> bytes:
        """The blob's bytes, refused if they no longer hash to ``digest``."""
        path = self.blob_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"artifact file {name!r} is missing from the store (expected {path})"
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise IntegrityError(
                f"artifact file {name!r} is corrupt or was tampered with: sha256 is {actual}, "
                f"the manifest says {digest} ({path})"
            )
        return data

    def verify(self, digest: str, name: str, progress: ProgressCallback = _no_progress) -> None:
        path = self.blob_path(digest)
        if not path.is_file():
            raise ArtifactNotFoundError(
                f"artifact file {name!r} is missing from the store (expected {path})"
            )
        actual = sha256_file(path, progress)
        if actual != digest:
            raise IntegrityError(
                f"artifact file {name!r} is corrupt or was tampered with: sha256 is {actual}, "
                f"the manifest says {digest} ({path})"
            )

    def remove(self, digests: Iterable[str]) -> None:
        for digest in digests:
            self.blob_path(digest).unlink(missing_ok=True)

    # Manifests -------------------------------------------------------------------------

    def put_manifest(self, files: Iterable[ArtifactFile]) -> StoredBlob:
        return self.put_bytes(encode_manifest(files))

    def read_manifest(self, digest: str) -> dict[str, ArtifactFile]:
        data = json.loads(self.read_verified(digest, "manifest.json"))
        return {
            path: ArtifactFile(path, entry["sha256"], int(entry["size"]))
            for path, entry in data["files"].items()
        }


def encode_manifest(files: Iterable[ArtifactFile]) -> bytes:
    body: Mapping[str, object] = {
        "format": MANIFEST_FORMAT,
        "files": {
            f.path: {"sha256": f.digest, "size": f.size}
            for f in sorted(files, key=lambda f: f.path)
        },
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
