"""Garbage collection of the artifact store: blobs that no version, manifest or run names.

A registration writes its blobs before the row that names them commits, so a process killed
in between leaves blobs nobody references; so does a failed upload whose clean-up could not
reach the store. Collection lists the store, asks the database which of the digests are still
named, and removes the others — except the young ones: a blob written in the last
``min_age`` may belong to a registration that has not committed yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shipyard.registry import store
from shipyard.registry.artifacts import ArtifactStore, BlobInfo
from shipyard.registry.database import Database

DEFAULT_MIN_AGE = timedelta(hours=1)
_QUERY_BATCH = 500  # digests per IN (...) query: well under every dialect's parameter limit


@dataclass(frozen=True)
class Collection:
    """What a collection found: the blobs removed (or, dry, that would be), and the rest."""

    unreferenced: list[BlobInfo] = field(default_factory=list)
    young: list[BlobInfo] = field(default_factory=list)
    referenced: int = 0
    dry_run: bool = False

    @property
    def freed_bytes(self) -> int:
        return sum(blob.size for blob in self.unreferenced)


def collect_garbage(
    database: Database,
    artifacts: ArtifactStore,
    *,
    min_age: timedelta = DEFAULT_MIN_AGE,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Collection:
    cutoff = (now or datetime.now(UTC)) - min_age
    blobs = list(artifacts.list_blobs())
    used: set[str] = set()
    with database.session() as session:
        for start in range(0, len(blobs), _QUERY_BATCH):
            batch = {blob.digest for blob in blobs[start : start + _QUERY_BATCH]}
            used |= store.referenced_digests(session, batch)
    unused = [blob for blob in blobs if blob.digest not in used]
    old = [blob for blob in unused if store.as_utc(blob.modified) <= cutoff]
    young = [blob for blob in unused if store.as_utc(blob.modified) > cutoff]
    if not dry_run and old:
        artifacts.remove(blob.digest for blob in old)
    return Collection(old, young, len(blobs) - len(unused), dry_run)
