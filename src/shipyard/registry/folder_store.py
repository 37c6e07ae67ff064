"""The default artifact store: a local folder of blobs, written atomically.

Layout under the store's root::

    sha256/ab/abcdef...   one blob per distinct content, read-only
    tmp/                  files being written (same file system, so rename is atomic)

Safe for several processes to write at once: a blob appears whole or not at all, and only
once both it and its folder are synced to disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from shipyard.errors import StorageError
from shipyard.registry.artifacts import (
    CHUNK,
    BlobInfo,
    ProgressCallback,
    StoredBlob,
    check_digest,
    missing,
    no_progress,
    sha256_file,
    verified,
)


class FolderArtifactStore:
    """An ``ArtifactStore`` in a folder of immutable blobs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "sha256"
        self._tmp = root / "tmp"

    def blob_path(self, digest: str) -> Path:
        return self._blobs / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def put_file(self, source: Path, progress: ProgressCallback = no_progress) -> StoredBlob:
        """Copy ``source`` in, hashing while copying."""
        with source.open("rb") as fh:
            return self._put_stream(fh, progress)

    def put_bytes(self, data: bytes) -> StoredBlob:
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            _touch(self.blob_path(digest))
            return StoredBlob(digest, len(data), created=False)
        return self.write(lambda out: out.write(data), digest)

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

    def write(
        self,
        writer: Callable[[BinaryIO], object],
        digest: str,
        before_publish: Callable[[], None] = lambda: None,
    ) -> StoredBlob:
        """Publish what ``writer`` writes as the blob ``digest``, once ``before_publish``
        (which may raise, e.g. when the bytes turn out not to hash to ``digest``) allows it."""
        tmp = self._new_tmp()
        try:
            with os.fdopen(tmp[0], "wb") as out:
                writer(out)
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
            before_publish()
            created = self._publish(Path(tmp[1]), digest)
        except OSError as exc:
            Path(tmp[1]).unlink(missing_ok=True)
            raise StorageError(f"could not write an artifact under {self.root}: {exc}") from exc
        except BaseException:
            Path(tmp[1]).unlink(missing_ok=True)
            raise
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
            _touch(final)
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
        path = self.blob_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise missing(name, str(path)) from None
        return verified(data, digest, name, str(path))

    def verify(self, digest: str, name: str, progress: ProgressCallback = no_progress) -> None:
        path = self.blob_path(digest)
        if not path.is_file():
            raise missing(name, str(path))
        check_digest(sha256_file(path, progress), digest, name, str(path))

    def remove(self, digests: Iterable[str]) -> None:
        for digest in digests:
            self.blob_path(digest).unlink(missing_ok=True)

    def list_blobs(self) -> Iterator[BlobInfo]:
        if not self._blobs.is_dir():
            return
        for path in self._blobs.glob("*/*"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # removed while listing
            yield BlobInfo(path.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))


def _touch(blob: Path) -> None:
    """Mark a blob just reused as young, so that a collection running now leaves it to the
    registration about to name it."""
    with contextlib.suppress(OSError):  # a read-only store: collection relies on min age alone
        os.utime(blob)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
