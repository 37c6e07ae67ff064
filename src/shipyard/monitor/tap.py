"""The runner's batch tap: all that the request path pays for the monitor.

Two token buckets and an append or two per batch it sees (a full queue drops the batch and
counts it), and at over SKIP_ABOVE batches a second it sees only a few times what its rates
need, the runner letting the rest go by with a countdown. Request counts and latencies come
from the server's own metrics, read at each flush, so a request costs the monitor nothing
of its own.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shipyard.monitor.predictionlog import PredictionLog
from shipyard.runtime.batcher import Pending

# The tap sees every batch while a version serves fewer than SKIP_ABOVE a second (a call
# each then costs a busy core well under 1%). Above, it asks for OVERSAMPLE times the
# batches its rates need (the buckets turn the rest away, so the rates hold) and the runner
# lets the others go by: a call costs about 3 us in a busy server, a tenth of a cheap model's
# request, where the runner's countdown costs nanoseconds.
SKIP_ABOVE = 1000.0
OVERSAMPLE = 1.5

# What a batch tap queues for the worker to sketch: (the tap, the batch's inputs as run, its
# outputs). A plain tuple: the serving path pays for nothing it does not need.
Observation = tuple["Tap", Any, dict[str, Any]]


@dataclass
class Bucket:
    """A token bucket: at most ``rate`` units a second, bursts up to one second's worth."""

    rate: float
    tokens: float = 0.0
    refilled: float = 0.0

    @classmethod
    def full(cls, rate: float) -> Bucket:
        return cls(rate, tokens=rate, refilled=time.monotonic())

    def take(self, units: float, now: float) -> bool:
        if self.tokens < units:
            self.tokens = min(self.rate, self.tokens + (now - self.refilled) * self.rate)
            self.refilled = now
            if self.tokens < units:
                return False
        self.tokens -= units
        return True


class Backlog(deque[Observation]):
    """The batches every tap queued for the worker to sketch: at most ``limit``; a batch
    past it is dropped and counted."""

    # slots: the tap's len() and append() on it cost what they cost on a plain deque
    __slots__ = ("dropped", "limit")

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.dropped = 0


class Tap:
    """One watched version's tap: its two buckets, what they turned away, and its pace.

    ``observe`` is what the runner calls. The log's bucket counts requests, the sketches'
    rows; ``logging`` is None when the model's outputs are not logged, ``sketching`` when
    the version has no reference profile to sketch a window of.
    """

    def __init__(
        self,
        backlog: Backlog,
        log: PredictionLog,
        logging: Bucket | None,
        sketching: Bucket | None,
        on_failure: Callable[[], None],
    ) -> None:
        self.backlog = backlog
        self.log = log
        self.logging = logging
        self.sketching = sketching
        self.on_failure = on_failure
        self.unlogged = 0  # requests answered beyond the log's rate (their feedback won't join)
        self.unsketched = 0  # rows skipped beyond the sketch rate
        # the pace: batches per call, the skip it asked for last, the batches counted (seen
        # or let go by) since counted_since (monotonic), which set the spacing each second
        self.spacing = 1
        self.skip = 1
        self.seen = 0
        self.counted_since = time.monotonic()

    def observe(self, batch: list[Pending], inputs: Any, outputs: dict[str, Any]) -> int:
        """A batch as it ran: queued for the window sketches and the prediction log, each
        within its rate; returns how many batches the runner lets go by before the next
        call (see ``_spacing``); never raises."""
        try:
            now = time.monotonic()
            requests = len(batch)
            rows = len(inputs) if isinstance(inputs, list) else len(next(iter(inputs.values())))
            # the batches let go by since the last call count as this one did (they came at
            # over SKIP_ABOVE a second: alike, and too many to tell apart for a counter)
            skip = self.skip
            passed = skip - 1
            logging_bucket = self.logging
            if logging_bucket is not None:
                log = self.log
                if log.requests < log.limit and logging_bucket.take(requests, now):
                    log.batches.append(
                        ([p.request_id for p in batch], [p.rows for p in batch], time.time(),
                         inputs, outputs)
                    )  # fmt: skip
                    log.requests += requests
                    self.unlogged += passed * requests
                else:
                    self.unlogged += skip * requests
            sketching = self.sketching
            if sketching is not None:
                if not sketching.take(rows, now):
                    self.unsketched += skip * rows
                else:
                    self.unsketched += passed * rows
                    backlog = self.backlog
                    if len(backlog) < backlog.limit:
                        backlog.append((self, inputs, outputs))
                    else:
                        backlog.dropped += 1
            self.seen += skip
            if now - self.counted_since >= 1.0:
                self.spacing = self._spacing(self.seen / (now - self.counted_since), requests, rows)
                self.seen, self.counted_since = 0, now
            # jittered, so that the batches seen never lock onto a period in the traffic
            self.skip = max(1, int(self.spacing * (0.5 + random.random())))
            return self.skip
        except Exception:  # a monitor bug must not reach the request
            self.on_failure()
            return 1

    def _spacing(self, batches_per_second: float, requests: int, rows: int) -> int:
        """Batches per call at this traffic: 1 below SKIP_ABOVE a second, else about
        OVERSAMPLE times fewer than the buckets need (batches like this one), at least ten
        calls a second."""
        if batches_per_second < SKIP_ABOVE:
            return 1
        needed = 0.0  # calls a second
        if self.logging is not None:
            needed = self.logging.rate / requests
        if self.sketching is not None:
            needed = max(needed, self.sketching.rate / max(rows, 1))
        return max(1, int(batches_per_second / max(needed * OVERSAMPLE, 10.0)))
