"""An artifact store in memory: the folder store's twin for unit tests.

It keeps the contract of every store (content addressing, verified reads, the same errors
naming the file) without a disk; ``blobs`` is open so that a test can tamper with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from shipyard.registry.artifacts import (
    BlobInfo,
    ProgressCallback,
    StoredBlob,
    missing,
    no_progress,
    verified,
)


class MemoryArtifactStore:
    """An ``ArtifactStore`` in a dict of digest -> bytes."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.stored_at: dict[str, datetime] = {}

    def location(self, digest: str) -> str:
        return f"memory:sha256/{digest}"

    def exists(self, digest: str) -> bool:
        return digest in self.blobs

    def put_file(self, source: Path, progress: ProgressCallback = no_progress) -> StoredBlob:
        data = source.read_bytes()
        progress(len(data))
        return self.put_bytes(data)

    def put_bytes(self, data: bytes) -> StoredBlob:
        digest = hashlib.sha256(data).hexdigest()
        created = digest not in self.blobs
        self.blobs.setdefault(digest, bytes(data))
        self.stored_at.setdefault(digest, datetime.now(UTC))
        return StoredBlob(digest, len(data), created)

    def read_verified(self, digest: str, name: str) -> bytes:
        data = self.blobs.get(digest)
        if data is None:
            raise missing(name, self.location(digest))
        return verified(data, digest, name, self.location(digest))

    def verify(self, digest: str, name: str, progress: ProgressCallback = no_progress) -> None:
        data = self.read_verified(digest, name)
        progress(len(data))

    def remove(self, digests: Iterable[str]) -> None:
        for digest in digests:
            self.blobs.pop(digest, None)
            self.stored_at.pop(digest, None)

    def list_blobs(self) -> Iterator[BlobInfo]:
        for digest, data in list(self.blobs.items()):
            yield BlobInfo(digest, len(data), self.stored_at.get(digest, datetime.now(UTC)))
