"""The artifact store seam: what every store of content-addressed blobs offers, and the rules
they all share.

A blob is named by the sha256 of its content. A version's manifest (logical file name ->
digest and size) is itself a blob; its digest is the version's artifact digest. Every read
verifies the content against its digest and fails with the same errors, naming the file,
whatever holds the bytes: a local folder (``FolderArtifactStore``, the default), an S3
bucket (``S3ArtifactStore``) or memory (``MemoryArtifactStore``, for tests).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

from shipyard.errors import ArtifactNotFoundError, IntegrityError
from shipyard.registry.domain import ArtifactFile

CHUNK = 1 << 20
MANIFEST_FORMAT = 1
MANIFEST_NAME = "manifest.json"  # how a manifest is named in errors

# Called with the number of bytes just processed.
ProgressCallback = Callable[[int], None]


def no_progress(_: int) -> None:
    return None


@dataclass(frozen=True)
class StoredBlob:
    digest: str
    size: int
    created: bool  # False when identical content was already stored


class BlobInfo(NamedTuple):
    """One stored blob, as a listing sees it (for ``shipyard gc``)."""

    digest: str
    size: int
    modified: datetime


class ArtifactStore(Protocol):
    """Immutable blobs by digest; ``name`` is the logical file name that errors report."""

    def exists(self, digest: str) -> bool: ...

    def put_file(self, source: Path, progress: ProgressCallback = no_progress) -> StoredBlob:
        """Store ``source``'s content, hashing it on the way."""
        ...

    def put_bytes(self, data: bytes) -> StoredBlob: ...

    def read_verified(self, digest: str, name: str) -> bytes:
        """The blob's bytes, refused (``verified``) unless they hash to ``digest``."""
        ...

    def verify(self, digest: str, name: str, progress: ProgressCallback = no_progress) -> None:
        """Re-hash the blob; raise as ``read_verified`` would."""
        ...

    def remove(self, digests: Iterable[str]) -> None:
        """Drop these blobs; one that is not there is no error."""
        ...

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every blob the store holds (manifests included)."""
        ...


# Digest rules -------------------------------------------------------------------------------


def sha256_stream(stream: BinaryIO, progress: ProgressCallback = no_progress) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        progress(len(chunk))
    return digest.hexdigest()


def sha256_file(path: Path, progress: ProgressCallback = no_progress) -> str:
    with path.open("rb") as fh:
        return sha256_stream(fh, progress)


def missing(name: str, location: str) -> ArtifactNotFoundError:
    """The error for a blob the store does not hold; ``location`` is where it should be."""
    return ArtifactNotFoundError(
        f"artifact file {name!r} is missing from the store (expected {location})"
    )


def check_digest(actual: str, digest: str, name: str, location: str) -> None:
    if actual != digest:
        raise IntegrityError(
            f"artifact file {name!r} is corrupt or was tampered with: sha256 is {actual}, "
            f"the manifest says {digest} ({location})"
        )


def verified(data: bytes, digest: str, name: str, location: str) -> bytes:
    """``data`` when it hashes to ``digest``, else an IntegrityError naming the file."""
    check_digest(hashlib.sha256(data).hexdigest(), digest, name, location)
    return data


# Manifests ----------------------------------------------------------------------------------


def encode_manifest(files: Iterable[ArtifactFile]) -> bytes:
    body: Mapping[str, object] = {
        "format": MANIFEST_FORMAT,
        "files": {
            f.path: {"sha256": f.digest, "size": f.size}
            for f in sorted(files, key=lambda f: f.path)
        },
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def decode_manifest(data: bytes) -> dict[str, ArtifactFile]:
    body = json.loads(data)
    return {
        path: ArtifactFile(path, entry["sha256"], int(entry["size"]))
        for path, entry in body["files"].items()
    }


def put_manifest(store: ArtifactStore, files: Iterable[ArtifactFile]) -> StoredBlob:
    return store.put_bytes(encode_manifest(files))


def read_manifest(store: ArtifactStore, digest: str) -> dict[str, ArtifactFile]:
    return decode_manifest(store.read_verified(digest, MANIFEST_NAME))
