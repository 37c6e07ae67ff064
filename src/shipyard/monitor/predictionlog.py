"""A version's prediction log on its way to the database: the batches the tap let in, split
into one record per request, redacted, written a few hundred batches per statement.

The log takes at most ``log_rate`` requests a second per version (the tap's bucket), so
its cost stays bounded at any traffic. Its encoding is pure Python: besides writing it at
each flush, the worker wakes every LOG_SECONDS between flushes to write it alone, and a
second's worth at a time keeps each stall of the request loop to a few milliseconds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from shipyard.monitor.privacy import Redactor
from shipyard.registry import ModelVersion
from shipyard.registry.monitoring import MonitorStore
from shipyard.runtime.batches import split, split_arrays

# Logged batches encoded and written per insert (a transaction) before the worker hands the
# GIL back to the request loop
LOG_BATCHES_PER_WRITE = 256
# The log is written this often between flushes: a second's requests (200 at the default
# rate) take a few milliseconds to encode, where a flush interval's took tens and showed in
# the server's p99
LOG_SECONDS = 1.0

# A logged batch: (its requests' ids, their rows, when, the batch's inputs, its outputs);
# split into one record per request by the worker.
LoggedBatch = tuple[list[bytes], list[int], float, Any, dict[str, Any]]


class PredictionLog:
    """The logged batches of one version waiting to be written: at most ``limit`` requests
    (the tap appends and counts them; the worker takes them all at once)."""

    def __init__(
        self, store: MonitorStore, version: ModelVersion, redactor: Redactor, limit: int
    ) -> None:
        self.store = store
        self.version = version
        self.redactor = redactor
        self.limit = limit
        # appended to by the request path, swapped for an empty list by the worker
        self.batches: list[LoggedBatch] = []
        self.requests = 0

    def write(self) -> None:
        """The logged requests, one record each, redacted, LOG_BATCHES_PER_WRITE batches to
        an insert, handing the GIL to the request loop between inserts: a flush's log
        encoded and written in one go held it for tens of milliseconds, which showed in the
        server's p99. What a failed insert left unwritten is kept for the next write."""
        if not self.batches:
            return
        logged, self.batches = self.batches, []  # the request path appends to the new one
        self.requests = 0
        for start in range(0, len(logged), LOG_BATCHES_PER_WRITE):
            try:
                self.store.add_predictions(
                    self.version,
                    _records(self.redactor, logged[start : start + LOG_BATCHES_PER_WRITE]),
                )
            except Exception:
                kept = logged[start:][-self.limit :]  # retried, bounded
                self.batches[:0] = kept
                self.requests += sum(len(batch[0]) for batch in kept)
                raise
            time.sleep(0)  # hand the GIL over

    def bound(self) -> None:
        """Keep at most ``limit`` batches while the storage keeps failing."""
        del self.batches[: -self.limit]


def _records(redactor: Redactor, logged: list[LoggedBatch]) -> list[tuple[str, datetime, Any, Any]]:
    """Logged batches as the prediction log's records: one per request, redacted."""
    records = []
    for request_ids, rows, at, inputs, outputs in logged:
        served_at = datetime.fromtimestamp(at, UTC)
        for request_id, (request_inputs, request_outputs) in zip(
            request_ids, _per_request(rows, inputs, outputs), strict=True
        ):
            records.append(
                (
                    request_id.decode(errors="replace"),
                    served_at,
                    redactor.outputs(request_outputs),
                    redactor.inputs(request_inputs),
                )
            )
    return records


def _per_request(
    rows: list[int], inputs: Any, outputs: dict[str, Any]
) -> list[tuple[Any, dict[str, Any]]]:
    """A batch's inputs and outputs, one part per request."""
    if len(rows) == 1:
        return [(inputs, outputs)]
    return list(zip(split(inputs, rows), split_arrays(outputs, rows), strict=True))
