"""The live monitor of a server: served traffic into windows, off the request path.

The runner's tap (``tap``, see monitor/tap.py) is all the request path pays. A worker
thread wakes every ``flush_seconds`` (default 10): it draws the sample from the queued
batches, joins them and updates each version's window with one numpy pass per column,
writes each window and the logged predictions to the database, enforces retention (see
monitor/retention.py), and re-evaluates drift over the last ``window_seconds`` of every
replica's windows (reading only those it has not seen before, so a flush costs the same an
hour into serving as at its start). The worker does its work in few, large steps on
purpose: every call that lets go of the GIL (a numpy operation on a large array, one SQLite
step) hands the GIL back to the request loop and costs both threads a switch, so rows are
sketched ten seconds' worth at a time and the log is written a few hundred rows per
statement. Between flushes the worker wakes every LOG_SECONDS to write the prediction log
alone (see monitor/predictionlog.py).
Anything failing in the worker is logged and the worker carries on: monitoring never fails
a request.

While the database is unreachable (a StorageError) the worker keeps what it has: an open
window is not closed, so it goes on sketching (bounded memory) and is written, spanning the
outage, at the first flush that goes through; the prediction log keeps at most
``queue_requests`` requests per version, and the requests beyond it are counted
(``shipyard_monitor_unlogged_predictions``: feedback cannot join them). Such a failure is
logged once when the outage starts and once when it ends, not at every flush.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from shipyard.errors import StorageError
from shipyard.monitor import drift
from shipyard.monitor.evaluation import (
    Evaluation,
    evaluate_window,
    live_performance,
    quality_counts,
)
from shipyard.monitor.predictionlog import LOG_SECONDS
from shipyard.monitor.references import reference_profile
from shipyard.monitor.retention import COMPACT_AFTER, Retention, window_document
from shipyard.monitor.tap import Backlog, Observation
from shipyard.monitor.watched import Configuration, Watched
from shipyard.registry import ModelVersion, Registry
from shipyard.registry.monitoring import StoredWindow
from shipyard.runtime.batches import join_arrays, join_texts
from shipyard.runtime.runner import BatchTap
from shipyard.settings import Settings

log = logging.getLogger("shipyard.monitor")

Key = tuple[str, int]
HISTORY_SECONDS = 60.0  # evaluations are kept (for the report) at most this often
# Queued batches sketched at a time before the worker hands the GIL back to the request
# loop. Each chunk costs a numpy pass per column, and every numpy call on more than a few
# hundred values lets go of the GIL (a switch for both threads): a flush's worth of batches
# at the default rates is one chunk, a backlog several.
DRAIN_CHUNK = 16384

# A version's requests so far and their seconds in all (the server's request metrics).
Traffic = Callable[[ModelVersion], tuple[int, float]]


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
        self.store = registry.monitoring
        self.replica = self.options.replica or f"{socket.gethostname()}:{os.getpid()}"
        self.watched: dict[Key, Watched] = {}
        self.backlog = Backlog(self.options.queue_requests)  # the taps' batches, to sketch
        self.retention = Retention(self.store, self.replica, self.options)
        self.failures = 0
        self.storage_down: str | None = None  # why the database failed, during an outage
        self._storage_failures = 0
        self._lock = threading.Lock()  # watched and flushes: the worker and flush_now callers
        self._stop = threading.Event()
        self._rng = np.random.default_rng()
        self._thread: threading.Thread | None = None
        # Told of each periodic evaluation (a retrain trigger listens here).
        self.on_evaluations: Callable[[list[Evaluation]], None] | None = None

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
        configuration = Configuration.of(self.settings, version, reference)
        traffic = self.traffic(version)  # what came before is no window's
        with self._lock:
            self.watched[_key(version)] = Watched.start(
                version,
                reference,
                configuration,
                self.store,
                self.backlog,
                traffic,
                self._tap_failed,
            )

    # The request path --------------------------------------------------------------------

    def tap(self, version: ModelVersion) -> BatchTap | None:
        """The runner's batch tap for a watched version (None if it could not be watched)."""
        watched = self.watched.get(_key(version))
        if watched is None:
            return None
        return watched.tap.observe

    def _tap_failed(self) -> None:  # the tap's own errors: counted, never raised
        self.failures += 1

    # The worker --------------------------------------------------------------------------

    def _work(self) -> None:
        next_flush = time.monotonic() + self.flush_seconds
        while not self._stop.wait(timeout=min(LOG_SECONDS, next_flush - time.monotonic())):
            try:
                if time.monotonic() < next_flush:
                    self.flush_predictions()
                    continue
                next_flush = time.monotonic() + self.flush_seconds
                evaluations = self.flush_now(upkeep=self.retention.due())
                if self.on_evaluations is not None:
                    self.on_evaluations(evaluations)
            except Exception as exc:
                self._failed(exc, "the monitor failed; it carries on")
        try:
            self.flush_now(final=True)
        except Exception:
            log.exception("the monitor's last flush failed")

    def _drain(self) -> None:
        """Sketch the queued batches, DRAIN_CHUNK at a time, letting the request loop have
        the GIL between chunks."""
        backlog = self.backlog
        while backlog:
            taken: dict[int, list[Observation]] = {}
            for _ in range(min(len(backlog), DRAIN_CHUNK)):
                observation = backlog.popleft()
                taken.setdefault(id(observation[0]), []).append(observation)
            with self._lock:
                # a batch whose version is no longer watched, or watched anew, is let go
                by_tap = {id(watched.tap): watched for watched in self.watched.values()}
                for tap_id, observations in taken.items():
                    watched = by_tap.get(tap_id)
                    if watched is not None:
                        self._absorb(watched, observations)
            time.sleep(0)  # hand the GIL over

    def _absorb(self, watched: Watched, observations: list[Observation]) -> None:
        window = watched.window
        if window.sketch is None:
            return
        inputs, outputs = _joined(observations, watched.version.signature.inputs[0].name)
        if window.sample_rate < 1.0:
            rows = len(next(iter(inputs.values())))
            keep = np.flatnonzero(self._rng.random(rows) < window.sample_rate)
            if not keep.size:
                return
            inputs = {name: np.asarray(value)[keep] for name, value in inputs.items()}
            outputs = {name: np.asarray(value)[keep] for name, value in outputs.items()}
        window.sketch.update(inputs, outputs)

    def flush_now(self, final: bool = False, upkeep: bool = True) -> list[Evaluation]:
        """Write the open windows and logged predictions, then evaluate every version (the
        ``final`` flush of a shutdown always keeps its evaluation for the history); with
        ``upkeep``, enforce retention and compact old windows too."""
        self._drain()
        now = _now()
        evaluations = []
        storage_failures = self._storage_failures
        with self._lock:
            for watched in self.watched.values():
                try:
                    self._write(watched, now)
                except Exception as exc:  # one version's failure must not stop the others'
                    self._failed(exc, f"writing the window of {watched.version.ref} failed")
                    watched.log.bound()  # kept for the next flush, but bounded
            if upkeep:
                self._upkeep(now)
            for watched in self.watched.values():
                try:
                    watched.evaluation.last = self._evaluate(watched, now, final)
                    evaluations.append(watched.evaluation.last)
                except Exception as exc:
                    self._failed(exc, f"evaluating {watched.version.ref} failed")
        if self.watched and self._storage_failures == storage_failures:
            self._recovered()  # every version's evaluation read the database
        return evaluations

    def _failed(self, exc: Exception, what: str) -> None:
        """Count a failure and log it, with its traceback; a storage failure only when it
        starts an outage."""
        self.failures += 1
        if not isinstance(exc, StorageError):
            log.error("%s", what, exc_info=exc)
            return
        self._storage_failures += 1
        if self.storage_down is None:
            log.warning(
                "%s: %s; the monitor keeps its open windows and up to %d logged requests per "
                "version until the database is back",
                what,
                exc.message,
                self.options.queue_requests,
            )
        self.storage_down = exc.message

    def _recovered(self) -> None:
        if self.storage_down is not None:
            self.storage_down = None
            log.info("the monitor's database is reachable again; what it kept is written")

    def _write(self, watched: Watched, now: datetime) -> None:
        window = watched.window
        sketch = window.sketch
        served, seconds = self.traffic(watched.version)
        requests = served - window.flushed_requests
        if requests > 0:
            latency = seconds - window.flushed_latency
            stats = {
                "requests": requests,
                "latency_mean_s": latency / requests,
                "seconds": max((now - window.opened).total_seconds(), 1e-9),
            }
            stored = StoredWindow(
                self.replica,
                window.opened,
                now,
                sketch.rows if sketch else 0,
                window_document(sketch),
                stats,
            )
            recent = watched.evaluation.recent
            recent.add(self.store.add_window(watched.version, stored), stored, sketch)
            # only once written: a failed write leaves these requests to the next window's
            window.flushed_requests, window.flushed_latency = served, seconds
            if sketch is not None:
                totals = window.quality_totals
                for column, counts in quality_counts(sketch).items():
                    for kind, count in counts.items():
                        key = (column, kind)
                        totals[key] = totals.get(key, 0) + count
        watched.log.write()
        window.reopen(now)

    def _evaluate(self, watched: Watched, now: datetime, final: bool) -> Evaluation:
        """Drift over the period's windows (read incrementally), performance from the labels
        (read again when labels came, else at most once per HISTORY_SECONDS)."""
        state = watched.evaluation
        window = state.recent.refresh(now)
        since = now - state.recent.period
        if final or time.time() - state.scored >= HISTORY_SECONDS:
            state.scores = live_performance(self.store, watched.version, since)
            state.scored = time.time()
        evaluation = evaluate_window(
            watched.version,
            watched.reference,
            state.thresholds,
            window,
            state.recent.requests,
            state.scores,
            since,
            now,
        )
        if final or time.time() - state.last_saved >= HISTORY_SECONDS:
            self.store.add_evaluation(watched.version, now, evaluation.to_dict())
            state.last_saved = time.time()
        return replace(evaluation, window=None)  # the running total changes under it

    def labels_arrived(self, name: str) -> None:
        """Feedback for ``name`` was recorded: its performance is read at the next flush."""
        for watched in list(self.watched.values()):
            if watched.version.name == name:
                watched.evaluation.scored = 0.0

    def _upkeep(self, now: datetime) -> None:
        try:
            self.retention.prune(now)
        except Exception as exc:
            self._failed(exc, "retention of the monitor's history failed")
        for watched in self.watched.values():
            try:
                self._compact(watched.version, now - COMPACT_AFTER)
            except Exception as exc:
                self._failed(exc, f"compacting the windows of {watched.version.ref} failed")

    def _compact(self, version: ModelVersion, before: datetime) -> None:
        self.retention.compact(version, before)

    def flush_predictions(self) -> None:
        """Write what is logged so far: the worker does every LOG_SECONDS, and feedback
        first, so that a request answered a moment ago can join."""
        with self._lock:
            for watched in self.watched.values():
                try:
                    watched.log.write()
                except Exception as exc:
                    self._failed(exc, f"writing the prediction log of {watched.version.ref} failed")


def _joined(
    observations: list[Observation], text_input: str
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


def _key(version: ModelVersion) -> Key:
    return (version.name, version.version)


def _now() -> datetime:
    return datetime.now(UTC)
