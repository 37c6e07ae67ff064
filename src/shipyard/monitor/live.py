"""The live monitor of a server: served traffic into windows, off the request path.

``observe`` is all the request path pays: an append to a bounded queue (a full queue drops
the observation and counts it). A worker thread takes the whole queue every DRAIN_SECONDS,
draws the sample, joins the sampled arrays and updates each version's window with one numpy
pass per column. Every ``flush_seconds`` it writes each window and the logged predictions
to the database (one bulk insert), enforces retention, and re-evaluates drift over the last
``window_seconds`` of every replica's windows (reading only those it has not seen before, so
a flush costs the same an hour into serving as at its start). The prediction log takes at most
``log_rate`` requests a second per version, so its cost stays bounded at any traffic.
Anything failing in the worker is logged and the worker carries on: monitoring never fails
a request.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

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
from shipyard.registry.monitoring import MonitorStore, StoredWindow
from shipyard.settings import Settings

log = logging.getLogger("shipyard.monitor")

Key = tuple[str, int]
# Windows are kept at flush resolution for an hour, then merged into one per replica and
# hour: a busy server writes 360 windows an hour, and the report needs no finer history.
COMPACT_AFTER = timedelta(hours=1)
COMPACT_BUCKET_S = 3600
HISTORY_SECONDS = 60.0  # evaluations are kept (for the report) at most this often
RETENTION_SECONDS = 60.0  # retention and compaction run at most this often
# The worker wakes this often: each wake costs the request loop a GIL hand-off, and a larger
# batch of observations costs less per row in numpy.
DRAIN_SECONDS = 1.0

# What a batch tap queues: (watched, the batch's inputs as run, its outputs). A plain tuple:
# the serving path pays for nothing it does not need.
_Observation = tuple["Watched", Any, dict[str, Any]]


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
    # written by the request path and only read (or swapped) by the worker: cumulative
    # counters, so that no increment is lost between a read and a reset
    requests: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    flushed_requests: int = 0
    flushed_latency: float = 0.0
    logged: list[tuple[str, float, dict[str, Any], Any]] = field(default_factory=list)
    log: Bucket | None = None  # None: outputs are not logged for this model
    unlogged: int = 0  # requests answered beyond the log's rate (their feedback won't join)
    sketching: Bucket = field(default_factory=lambda: Bucket(float("inf")))
    unsketched: int = 0  # rows skipped beyond the sketch rate
    last: Evaluation | None = None
    last_saved: float = 0.0
    scores: dict[str, Any] = field(default_factory=dict)  # live performance, as last read
    scored: float = 0.0  # when; 0: labels came since, read them at the next flush
    redacted: frozenset[str] = frozenset()  # columns whose windows keep bin counts only
    quality_totals: dict[tuple[str, str], int] = field(default_factory=dict)

    def new_window(self) -> Profile | None:
        return self.reference.like(self.redacted) if self.reference else None


class LiveMonitor:
    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self.options = settings.monitor
        self.enabled = self.options.enabled
        self.flush_seconds = settings.flush_seconds
        self.store = MonitorStore(registry.database)
        self.replica = self.options.replica or f"{socket.gethostname()}:{os.getpid()}"
        self.watched: dict[Key, Watched] = {}
        self.dropped = 0
        self.failures = 0
        self.last_flush = time.time()
        self._queue: deque[_Observation] = deque()
        self._lock = threading.Lock()  # watched and flushes: the worker and flush_now callers
        self._wake = threading.Event()
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
            self._wake.set()
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
        key = (version.name, version.version)
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
        with self._lock:
            self.watched[key] = Watched(
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
            )

    # The request path --------------------------------------------------------------------

    def observe(
        self,
        version: ModelVersion,
        payload: Any,
        outputs: dict[str, Any],
        request_id: str,
        seconds: float,
    ) -> None:
        """Note one answered request (its latency; the log, within its rate); never raises."""
        if not self.enabled:
            return
        try:
            watched = self.watched.get((version.name, version.version))
            if watched is None:
                return
            watched.requests += 1
            watched.latency_sum += seconds
            if seconds > watched.latency_max:
                watched.latency_max = seconds
            if watched.log is None:
                return
            if len(watched.logged) < self.options.queue_requests and watched.log.take(
                1.0, time.monotonic()
            ):
                watched.logged.append((request_id, time.time(), outputs, payload))
            else:
                watched.unlogged += 1
        except Exception:  # a monitor bug must not reach the request
            self.failures += 1

    def observe_batch(self, version: ModelVersion, inputs: Any, outputs: dict[str, Any]) -> None:
        """A batch as it ran (the runner's tap): queued for the window sketches."""
        try:
            watched = self.watched.get((version.name, version.version))
            if watched is None or watched.window is None:
                return
            rows = len(inputs) if isinstance(inputs, list) else len(next(iter(inputs.values())))
            if not watched.sketching.take(rows, time.monotonic()):
                watched.unsketched += rows
                return
            if len(self._queue) >= self.options.queue_requests:
                self.dropped += 1
                return
            self._queue.append((watched, inputs, outputs))
        except Exception:
            self.failures += 1

    # The worker --------------------------------------------------------------------------

    def _work(self) -> None:
        next_flush = time.monotonic() + self.flush_seconds
        while not self._stop.is_set():
            self._wake.wait(timeout=min(DRAIN_SECONDS, self.flush_seconds))
            self._wake.clear()
            try:
                self._drain()
                if time.monotonic() >= next_flush:
                    next_flush = time.monotonic() + self.flush_seconds
                    due = time.monotonic() - self._upkept >= RETENTION_SECONDS
                    self.flush_now(upkeep=due)
            except Exception:
                self.failures += 1
                log.exception("the monitor failed; it carries on")
        try:
            self.flush_now(final=True)
        except Exception:
            log.exception("the monitor's last flush failed")

    def _drain(self) -> None:
        taken: dict[int, list[_Observation]] = {}
        queue = self._queue
        for _ in range(len(queue)):
            observation = queue.popleft()
            taken.setdefault(id(observation[0]), []).append(observation)
        with self._lock:
            for observations in taken.values():
                watched = observations[0][0]
                if self.watched.get(_key(watched.version)) is watched:
                    self._absorb(watched, observations)

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
                    del watched.logged[: -self.options.queue_requests]
            if upkeep:
                self._upkeep(now)
            for watched in self.watched.values():
                try:
                    watched.last = self._evaluate(watched, now, final)
                    evaluations.append(watched.last)
                except Exception:
                    self.failures += 1
                    log.exception("evaluating %s failed", watched.version.ref)
        self.last_flush = time.time()
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
        requests = watched.requests - watched.flushed_requests
        if requests:
            latency = watched.latency_sum - watched.flushed_latency
            latency_max, watched.latency_max = watched.latency_max, 0.0
            watched.flushed_requests += requests
            watched.flushed_latency += latency
            stats = {
                "requests": requests,
                "latency_mean_s": latency / requests,
                "latency_max_s": latency_max,
                "seconds": max((now - watched.opened).total_seconds(), 1e-9),
            }
            profile = (
                window.to_dict()
                if window is not None
                else {"columns": [], "sketches": {}, "rows": 0}
            )
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
        """The logged requests, redacted, in one bulk insert."""
        if not watched.logged:
            return
        logged, watched.logged = watched.logged, []  # the request path appends to the new one
        redactor = watched.redactor
        records = [
            (
                request_id,
                datetime.fromtimestamp(at, UTC),
                redactor.outputs(outputs),
                redactor.inputs(payload),
            )
            for request_id, at, outputs, payload in logged
        ]
        try:
            self.store.add_predictions(watched.version, records)
        except Exception:
            watched.logged[:0] = logged[-self.options.queue_requests :]  # retried, bounded
            raise

    def flush_predictions(self) -> None:
        """Write what is logged so far (feedback for a request just answered can then join)."""
        self._drain()
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
        texts: list[Any] = []
        for o in observations:
            texts.extend(o[1])
        inputs: dict[str, Any] = {text_input: np.asarray(texts, dtype=object)}
    else:
        inputs = {
            name: np.concatenate([np.asarray(o[1][name]) for o in observations])
            for name in first_inputs
        }
    outputs = {
        name: np.concatenate([np.asarray(o[2][name]) for o in observations])
        for name in first_outputs
        if not name.startswith("__")
    }
    return inputs, outputs


def _full_bucket(rate: float) -> Bucket:
    return Bucket(rate, tokens=rate, refilled=time.monotonic())


def _key(version: ModelVersion) -> Key:
    return (version.name, version.version)


def _now() -> datetime:
    return datetime.now(UTC)


def merge_windows(windows: list[StoredWindow]) -> StoredWindow:
    """One window covering several of one replica's (sketches and traffic figures added)."""
    merged = merged_window(None, [w for w in windows if w.profile.get("columns")])
    profile: dict[str, Any] = {"columns": [], "sketches": {}, "rows": 0}
    if merged is not None:
        profile = merged.to_dict()
    requests = sum(int(w.stats.get("requests", 0)) for w in windows)
    latency_sum = sum(
        float(w.stats.get("latency_mean_s", 0.0)) * int(w.stats.get("requests", 0)) for w in windows
    )
    stats = {
        "requests": requests,
        "latency_mean_s": latency_sum / requests if requests else 0.0,
        "latency_max_s": max(float(w.stats.get("latency_max_s", 0.0)) for w in windows),
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
