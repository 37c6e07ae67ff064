"""The live monitor of a server: served traffic into windows, off the request path.

The runner's tap (``tap``) is all the request path pays: two token buckets and an append or
two per batch it sees (a full queue drops the batch and counts it), and at over SKIP_ABOVE
batches a second it sees only a few times what its rates need, the runner letting the rest
go by with a countdown. Request counts and latencies come from the server's own metrics,
read at each flush, so a request costs the monitor nothing of its own.

A worker thread wakes every ``flush_seconds`` (default 10): it draws the sample from the
queued batches, joins them and updates each version's window with one numpy pass per
column, writes each window and the logged predictions to the database, enforces retention,
and re-evaluates drift over the last ``window_seconds`` of every replica's windows (reading
only those it has not seen before, so a flush costs the same an hour into serving as at its
start). The worker does its work in few, large steps on purpose: every call that lets go of
the GIL (a numpy operation on a large array, one SQLite step) hands the GIL back to the
request loop and costs both threads a switch, so rows are sketched ten seconds' worth at a
time and the log is written a few hundred rows per statement. Between flushes the worker
wakes every LOG_SECONDS to write the prediction log alone, whose encoding is pure Python:
a second's worth at a time keeps each stall of the request loop to a few milliseconds. The
prediction log takes at most ``log_rate`` requests a second per version, so its cost stays
bounded at any traffic.
Anything failing in the worker is logged and the worker carries on: monitoring never fails
a request.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from shipyard.monitor import drift
from shipyard.monitor.drift import Thresholds
from shipyard.monitor.evaluation import (
    Evaluation,
    evaluate_window,
    live_performance,
    merged_window,
    quality_counts,
)
from shipyard.monitor.period import RecentWindows
from shipyard.monitor.privacy import Redactor
from shipyard.monitor.profile import Profile
from shipyard.monitor.references import reference_profile
from shipyard.registry import ModelVersion, Registry
from shipyard.registry.monitoring import StoredWindow
from shipyard.runtime.batcher import Pending
from shipyard.runtime.batches import join_arrays, join_texts, split, split_arrays
from shipyard.runtime.runner import BatchTap
from shipyard.settings import Settings

log = logging.getLogger("shipyard.monitor")

Key = tuple[str, int]
# Windows are kept at flush resolution for an hour, then merged into one per replica and
# hour: a busy server writes 360 windows an hour, and the report needs no finer history.
COMPACT_AFTER = timedelta(hours=1)
COMPACT_BUCKET_S = 3600
HISTORY_SECONDS = 60.0  # evaluations are kept (for the report) at most this often
RETENTION_SECONDS = 60.0  # retention and compaction run at most this often
# Queued batches sketched at a time before the worker hands the GIL back to the request
# loop. Each chunk costs a numpy pass per column, and every numpy call on more than a few
# hundred values lets go of the GIL (a switch for both threads): a flush's worth of batches
# at the default rates is one chunk, a backlog several.
DRAIN_CHUNK = 16384

# Logged batches encoded and written per insert (a transaction) before the worker hands the
# GIL back to the request loop
LOG_BATCHES_PER_WRITE = 256
# The log is written this often between flushes: a second's requests (200 at the default
# rate) take a few milliseconds to encode, where a flush interval's took tens and showed in
# the server's p99
LOG_SECONDS = 1.0
# The tap sees every batch while a version serves fewer than SKIP_ABOVE a second (a call
# each then costs a busy core well under 1%). Above, it asks for OVERSAMPLE times the
# batches its rates need (the buckets turn the rest away, so the rates hold) and the runner
# lets the others go by: a call costs about 3 us in a busy server, a tenth of a cheap model's
# request, where the runner's countdown costs nanoseconds.
SKIP_ABOVE = 1000.0
OVERSAMPLE = 1.5

# What a batch tap queues: (watched, the batch's inputs as run, its outputs). A plain tuple:
# the serving path pays for nothing it does not need.
_Observation = tuple["Watched", Any, dict[str, Any]]
# A logged batch: (its requests' ids, their rows, when, the batch's inputs, its outputs);
# split into one record per request by the worker.
_LoggedBatch = tuple[list[bytes], list[int], float, Any, dict[str, Any]]
# A version's requests so far and their seconds in all (the server's request metrics).
Traffic = Callable[[ModelVersion], tuple[int, float]]


@dataclass
class Bucket:
    """A token bucket: at most ``rate`` units a second, bursts up to one second's worth."""

    rate: float
    tokens: float = 0.0
    refilled: float = 0.0

    def take(self, units: float, now: float) -> bool:
        if self.tokens < units:
            self.tokens = min(self.rate, self.tokens + (now - self.refilled) * self.rate)
            self.refilled = now
            if self.tokens < units:
                return False
        self.tokens -= units
        return True


@dataclass
class Watched:
    """One served version: its reference, the open window, what waits to be written."""

    version: ModelVersion
    reference: Profile | None
    thresholds: Thresholds
    redactor: Redactor
    recent: RecentWindows
    sample_rate: float
    window: Profile | None
    opened: datetime
    # the traffic figures as of the last window written (they are cumulative)
    flushed_requests: int = 0
    flushed_latency: float = 0.0
    # written by the request path, swapped for an empty list by the worker
    logged: list[_LoggedBatch] = field(default_factory=list)
    logged_requests: int = 0
    log: Bucket | None = None  # None: outputs are not logged for this model
    unlogged: int = 0  # requests answered beyond the log's rate (their feedback won't join)
    sketching: Bucket = field(default_factory=lambda: Bucket(float("inf")))
    unsketched: int = 0  # rows skipped beyond the sketch rate
    # the tap's pace: batches per call, the skip it asked for last, the batches counted
    # (seen or let go by) since counted_since (monotonic), which set the spacing each second
    spacing: int = 1
    skip: int = 1
    seen: int = 0
    counted_since: float = 0.0
    last: Evaluation | None = None
    last_saved: float = 0.0
    scores: dict[str, Any] = field(default_factory=dict)  # live performance, as last read
    scored: float = 0.0  # when; 0: labels came since, read them at the next flush
    redacted: frozenset[str] = frozenset()  # columns whose windows keep bin counts only
    quality_totals: dict[tuple[str, str], int] = field(default_factory=dict)

    def new_window(self) -> Profile | None:
        return self.reference.like(self.redacted) if self.reference else None


class LiveMonitor:
    def __init__(
        self, registry: Registry, settings: Settings, traffic: Traffic | None = None
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.traffic = traffic or (lambda version: (0, 0.0))
        self.options = settings.monitor
        self.enabled = self.options.enabled
        self.flush_seconds = settings.flush_seconds
        self.queue_limit = self.options.queue_requests
        self.store = registry.monitoring
        self.replica = self.options.replica or f"{socket.gethostname()}:{os.getpid()}"
        self.watched: dict[Key, Watched] = {}
        self.dropped = 0
        self.failures = 0
        self._queue: deque[_Observation] = deque()
        self._lock = threading.Lock()  # watched and flushes: the worker and flush_now callers
        self._stop = threading.Event()
        self._rng = np.random.default_rng()
        self._thread: threading.Thread | None = None
        self._upkept = 0.0  # monotonic time of the last retention pass

    # Lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._work, name="shipyard-monitor", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the worker after a last flush, so a clean shutdown loses nothing."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=30)
            self._thread = None
        elif self.enabled:
            self.flush_now(final=True)

    def watch(self, version: ModelVersion) -> None:
        """Start watching a loaded version (its reference profile is built if missing)."""
        if not self.enabled:
            return
        try:
            self._watch(version)
        except Exception:
            self.failures += 1
            log.exception("cannot watch %s; it is served unmonitored", version.ref)

    def _watch(self, version: ModelVersion) -> None:
        drift.warm_up()
        try:
            reference = reference_profile(self.registry, version)
        except Exception:
            log.exception(
                "no reference profile for %s; its traffic is logged unprofiled", version.ref
            )
            reference = None
        model = self.settings.monitoring_for(version.name)
        try:
            thresholds = Thresholds.from_dict(dict(model.thresholds))
        except Exception:
            log.exception("bad drift thresholds for %s; the defaults apply", version.name)
            thresholds = Thresholds()
        inputs = reference.columns_of("input") if reference else []
        named = set(model.redact)
        redacted = frozenset(
            c.name for c in (reference.columns if reference else []) if {c.name, c.tensor} & named
        )
        served, seconds = self.traffic(version)  # what came before is no window's
        with self._lock:
            self.watched[_key(version)] = Watched(
                version,
                reference,
                thresholds,
                Redactor(model, inputs),
                RecentWindows(
                    self.store, version, reference, timedelta(seconds=self.options.window_seconds)
                ),
                model.sample_rate if model.sample_rate is not None else self.options.sample_rate,
                reference.like(redacted) if reference else None,
                _now(),
                redacted=redacted,
                log=_full_bucket(self.options.log_rate) if model.log_outputs else None,
                sketching=_full_bucket(self.options.sketch_rate),
                flushed_requests=served,
                flushed_latency=seconds,
                counted_since=time.monotonic(),
            )

    # The request path --------------------------------------------------------------------

    def tap(self, version: ModelVersion) -> BatchTap | None:
        """The runner's batch tap for a watched version (None if it could not be watched)."""
        watched = self.watched.get(_key(version))
        if watched is None:
            return None
        return functools.partial(self._observe_batch, watched)

    def _observe_batch(
        self, watched: Watched, batch: list[Pending], inputs: Any, outputs: dict[str, Any]
    ) -> int:
        """A batch as it ran: queued for the window sketches and the prediction log, each
        within its rate; returns how many batches the runner lets go by before the next
        call (see ``_spacing``); never raises."""
        try:
            now = time.monotonic()
            requests = len(batch)
            rows = len(inputs) if isinstance(inputs, list) else len(next(iter(inputs.values())))
            # the batches let go by since the last call count as this one did (they came at
            # over SKIP_ABOVE a second: alike, and too many to tell apart for a counter)
            passed = watched.skip - 1
            logging_bucket = watched.log
            if logging_bucket is not None:
                watched.unlogged += passed * requests
                if watched.logged_requests < self.queue_limit and logging_bucket.take(
                    requests, now
                ):
                    watched.logged.append(
                        ([p.request_id for p in batch], [p.rows for p in batch], time.time(),
                         inputs, outputs)
                    )  # fmt: skip
                    watched.logged_requests += requests
                else:
                    watched.unlogged += requests
            if watched.window is not None:
                watched.unsketched += passed * rows
                if not watched.sketching.take(rows, now):
                    watched.unsketched += rows
                elif len(self._queue) < self.queue_limit:
                    self._queue.append((watched, inputs, outputs))
                else:
                    self.dropped += 1
            watched.seen += watched.skip
            if now - watched.counted_since >= 1.0:
                watched.spacing = _spacing(
                    watched, watched.seen / (now - watched.counted_since), requests, rows
                )
                watched.seen, watched.counted_since = 0, now
            # jittered, so that the batches seen never lock onto a period in the traffic
            watched.skip = max(1, int(watched.spacing * (0.5 + random.random())))
            return watched.skip
        except Exception:  # a monitor bug must not reach the request
            self.failures += 1
            return 1

    # The worker --------------------------------------------------------------------------

    def _work(self) -> None:
        next_flush = time.monotonic() + self.flush_seconds
        while not self._stop.wait(timeout=min(LOG_SECONDS, next_flush - time.monotonic())):
            try:
                if time.monotonic() < next_flush:
                    self.flush_predictions()
                    continue
                next_flush = time.monotonic() + self.flush_seconds
                self.flush_now(upkeep=time.monotonic() - self._upkept >= RETENTION_SECONDS)
            except Exception:
                self.failures += 1
                log.exception("the monitor failed; it carries on")
        try:
            self.flush_now(final=True)
        except Exception:
            log.exception("the monitor's last flush failed")

    def _drain(self) -> None:
        """Sketch the queued batches, DRAIN_CHUNK at a time, letting the request loop have
        the GIL between chunks."""
        queue = self._queue
        while queue:
            taken: dict[int, list[_Observation]] = {}
            for _ in range(min(len(queue), DRAIN_CHUNK)):
                observation = queue.popleft()
                taken.setdefault(id(observation[0]), []).append(observation)
            with self._lock:
                for observations in taken.values():
                    watched = observations[0][0]
                    if self.watched.get(_key(watched.version)) is watched:
                        self._absorb(watched, observations)
            time.sleep(0)  # hand the GIL over

    def _absorb(self, watched: Watched, observations: list[_Observation]) -> None:
        if watched.window is None:
            return
        inputs, outputs = _joined(observations, watched.version.signature.inputs[0].name)
        if watched.sample_rate < 1.0:
            rows = len(next(iter(inputs.values())))
            keep = np.flatnonzero(self._rng.random(rows) < watched.sample_rate)
            if not keep.size:
                return
            inputs = {name: np.asarray(value)[keep] for name, value in inputs.items()}
            outputs = {name: np.asarray(value)[keep] for name, value in outputs.items()}
        watched.window.update(inputs, outputs)

    def flush_now(self, final: bool = False, upkeep: bool = True) -> list[Evaluation]:
        """Write the open windows and logged predictions, then evaluate every version (the
        ``final`` flush of a shutdown always keeps its evaluation for the history); with
        ``upkeep``, enforce retention and compact old windows too."""
        self._drain()
        now = _now()
        evaluations = []
        with self._lock:
            for watched in self.watched.values():
                try:
                    self._write(watched, now)
                except Exception:  # one version's failure must not stop the others'
                    self.failures += 1
                    log.exception("writing the window of %s failed", watched.version.ref)
                    # kept for the next flush, but bounded while the storage keeps failing
                    del watched.logged[: -self.queue_limit]
            if upkeep:
                self._upkeep(now)
            for watched in self.watched.values():
                try:
                    watched.last = self._evaluate(watched, now, final)
                    evaluations.append(watched.last)
                except Exception:
                    self.failures += 1
                    log.exception("evaluating %s failed", watched.version.ref)
        return evaluations

    def _evaluate(self, watched: Watched, now: datetime, final: bool) -> Evaluation:
        """Drift over the period's windows (read incrementally), performance from the labels
        (read again when labels came, else at most once per HISTORY_SECONDS)."""
        window = watched.recent.refresh(now)
        since = now - watched.recent.period
        if final or time.time() - watched.scored >= HISTORY_SECONDS:
            watched.scores = live_performance(self.store, watched.version, since)
            watched.scored = time.time()
        evaluation = evaluate_window(
            watched.version,
            watched.reference,
            watched.thresholds,
            window,
            watched.recent.requests,
            watched.scores,
            since,
            now,
        )
        if final or time.time() - watched.last_saved >= HISTORY_SECONDS:
            self.store.add_evaluation(watched.version, now, evaluation.to_dict())
            watched.last_saved = time.time()
        return replace(evaluation, window=None)  # the running total changes under it

    def labels_arrived(self, name: str) -> None:
        """Feedback for ``name`` was recorded: its performance is read at the next flush."""
        for watched in list(self.watched.values()):
            if watched.version.name == name:
                watched.scored = 0.0

    def _upkeep(self, now: datetime) -> None:
        self._upkept = time.monotonic()
        retention = timedelta(days=self.options.retention_days)
        try:
            self.store.prune_predictions(retention, self.options.retention_rows)
            self.store.prune_history(now - retention)
        except Exception:
            self.failures += 1
            log.exception("retention of the monitor's history failed")
        for watched in self.watched.values():
            try:
                self._compact(watched.version, now - COMPACT_AFTER)
            except Exception:
                self.failures += 1
                log.exception("compacting the windows of %s failed", watched.version.ref)

    def _write(self, watched: Watched, now: datetime) -> None:
        window = watched.window
        served, seconds = self.traffic(watched.version)
        requests = served - watched.flushed_requests
        if requests > 0:
            latency = seconds - watched.flushed_latency
            watched.flushed_requests, watched.flushed_latency = served, seconds
            stats = {
                "requests": requests,
                "latency_mean_s": latency / requests,
                "seconds": max((now - watched.opened).total_seconds(), 1e-9),
            }
            profile = window.to_dict() if window is not None else _no_profile()
            stored = StoredWindow(
                self.replica, watched.opened, now, window.rows if window else 0, profile, stats
            )
            watched.recent.add(self.store.add_window(watched.version, stored), stored, window)
            if window is not None:
                for column, counts in quality_counts(window).items():
                    for kind, count in counts.items():
                        key = (column, kind)
                        watched.quality_totals[key] = watched.quality_totals.get(key, 0) + count
        self._write_log(watched)
        watched.window = watched.new_window()
        watched.opened = now

    def _compact(self, version: ModelVersion, before: datetime) -> None:
        """Merge this replica's windows that ended before ``before`` into one per hour."""
        old = self.store.windows(version, until=before, replica=self.replica)
        buckets: dict[int, list[StoredWindow]] = {}
        for window in old:
            if (window.ended_at - window.started_at).total_seconds() >= COMPACT_BUCKET_S:
                continue  # already an hour's merge
            buckets.setdefault(int(window.started_at.timestamp()) // COMPACT_BUCKET_S, []).append(
                window
            )
        for windows in buckets.values():
            if len(windows) > 1:
                merged = merge_windows(windows)
                self.store.replace_windows(version, [w.id for w in windows if w.id], merged)

    def _write_log(self, watched: Watched) -> None:
        """The logged requests, one record each, redacted, LOG_BATCHES_PER_WRITE batches to
        an insert, handing the GIL to the request loop between inserts: a flush's log
        encoded and written in one go held it for tens of milliseconds, which showed in the
        server's p99."""
        if not watched.logged:
            return
        logged, watched.logged = watched.logged, []  # the request path appends to the new one
        watched.logged_requests = 0
        for start in range(0, len(logged), LOG_BATCHES_PER_WRITE):
            try:
                self.store.add_predictions(
                    watched.version,
                    _records(watched.redactor, logged[start : start + LOG_BATCHES_PER_WRITE]),
                )
            except Exception:
                kept = logged[start:][-self.queue_limit :]  # retried, bounded
                watched.logged[:0] = kept
                watched.logged_requests += sum(len(batch[0]) for batch in kept)
                raise
            time.sleep(0)  # hand the GIL over

    def flush_predictions(self) -> None:
        """Write what is logged so far: the worker does every LOG_SECONDS, and feedback
        first, so that a request answered a moment ago can join."""
        with self._lock:
            for watched in self.watched.values():
                try:
                    self._write_log(watched)
                except Exception:
                    self.failures += 1
                    log.exception("writing the prediction log of %s failed", watched.version.ref)


def _joined(
    observations: list[_Observation], text_input: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The observations' inputs and outputs as one batch."""
    first_inputs, first_outputs = observations[0][1], observations[0][2]
    if isinstance(first_inputs, list):
        texts = join_texts(o[1] for o in observations)
        inputs: dict[str, Any] = {text_input: np.asarray(texts, dtype=object)}
    else:  # the runner's feeds and outputs are arrays already
        inputs = join_arrays([o[1] for o in observations])
    outputs = join_arrays(
        [o[2] for o in observations], [name for name in first_outputs if not name.startswith("__")]
    )
    return inputs, outputs


def _records(
    redactor: Redactor, logged: list[_LoggedBatch]
) -> list[tuple[str, datetime, Any, Any]]:
    """Logged batches as the prediction log's records: one per request, redacted."""
    records = []
    for request_ids, rows, at, inputs, outputs in logged:
        served_at = datetime.fromtimestamp(at, UTC)
        for request_id, (request_inputs, request_outputs) in zip(
            request_ids, _split(rows, inputs, outputs), strict=True
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


def _split(
    rows: list[int], inputs: Any, outputs: dict[str, Any]
) -> list[tuple[Any, dict[str, Any]]]:
    """A batch's inputs and outputs, one part per request."""
    if len(rows) == 1:
        return [(inputs, outputs)]
    return list(zip(split(inputs, rows), split_arrays(outputs, rows), strict=True))


def _spacing(watched: Watched, batches_per_second: float, requests: int, rows: int) -> int:
    """Batches per tap call at this traffic: 1 below SKIP_ABOVE a second, else about
    OVERSAMPLE times fewer than the buckets need (batches like this one), at least ten
    calls a second."""
    if batches_per_second < SKIP_ABOVE:
        return 1
    needed = 0.0  # calls a second
    if watched.log is not None:
        needed = watched.log.rate / requests
    if watched.window is not None:
        needed = max(needed, watched.sketching.rate / max(rows, 1))
    return max(1, int(batches_per_second / max(needed * OVERSAMPLE, 10.0)))


def _full_bucket(rate: float) -> Bucket:
    return Bucket(rate, tokens=rate, refilled=time.monotonic())


def _no_profile() -> dict[str, Any]:
    """The profile document of a window of a version that has no reference profile."""
    return {"columns": [], "sketches": {}, "rows": 0}


def _key(version: ModelVersion) -> Key:
    return (version.name, version.version)


def _now() -> datetime:
    return datetime.now(UTC)


def merge_windows(windows: list[StoredWindow]) -> StoredWindow:
    """One window covering several of one replica's (sketches and traffic figures added)."""
    merged = merged_window(None, [w for w in windows if w.profile.get("columns")])
    profile = merged.to_dict() if merged is not None else _no_profile()
    requests = sum(int(w.stats.get("requests", 0)) for w in windows)
    latency_sum = sum(
        float(w.stats.get("latency_mean_s", 0.0)) * int(w.stats.get("requests", 0)) for w in windows
    )
    stats = {
        "requests": requests,
        "latency_mean_s": latency_sum / requests if requests else 0.0,
        "seconds": sum(float(w.stats.get("seconds", 0.0)) for w in windows),
    }
    return StoredWindow(
        windows[0].replica,
        min(w.started_at for w in windows),
        max(w.ended_at for w in windows),
        sum(w.rows for w in windows),
        profile,
        stats,
    )
