"""A watched version: how its model is watched, and the state each of the monitor's jobs
keeps of it (the tap's, the prediction log's, the open window's, the evaluation's)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shipyard.monitor.drift import Thresholds
from shipyard.monitor.evaluation import Evaluation
from shipyard.monitor.period import RecentWindows
from shipyard.monitor.predictionlog import PredictionLog
from shipyard.monitor.privacy import Redactor
from shipyard.monitor.profile import Profile
from shipyard.monitor.tap import Backlog, Bucket, Tap
from shipyard.registry import ModelVersion
from shipyard.registry.monitoring import MonitorStore
from shipyard.settings import Settings

log = logging.getLogger("shipyard.monitor")


@dataclass(frozen=True)
class Configuration:
    """How one model is watched: the monitor's settings with the model's own over them."""

    thresholds: Thresholds
    redactor: Redactor
    redacted: frozenset[str]  # columns whose windows keep bin counts only
    sample_rate: float  # share of the sketched rows kept
    sketch_rate: float  # rows a second
    log_rate: float | None  # requests a second; None: outputs are not logged for this model
    queue_limit: int  # requests waiting for the log
    period: timedelta  # of traffic each evaluation covers

    @classmethod
    def of(
        cls, settings: Settings, version: ModelVersion, reference: Profile | None
    ) -> Configuration:
        options = settings.monitor
        model = settings.monitoring_for(version.name)
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
        return cls(
            thresholds,
            Redactor(model, inputs),
            redacted,
            model.sample_rate if model.sample_rate is not None else options.sample_rate,
            options.sketch_rate,
            options.log_rate if model.log_outputs else None,
            options.queue_requests,
            timedelta(seconds=options.window_seconds),
        )


@dataclass(eq=False)
class OpenWindow:
    """The window being sketched since ``opened`` (the worker's drains add to it; a flush
    writes it and opens the next), and what the windows written so far carry over."""

    reference: Profile | None
    redacted: frozenset[str]
    sample_rate: float
    opened: datetime
    # the traffic figures as of the last window written (they are cumulative)
    flushed_requests: int
    flushed_latency: float
    quality_totals: dict[tuple[str, str], int] = field(default_factory=dict)
    sketch: Profile | None = field(init=False)  # None: no reference profile to sketch against

    def __post_init__(self) -> None:
        self.sketch = self._new_sketch()

    def reopen(self, now: datetime) -> None:
        self.sketch = self._new_sketch()
        self.opened = now

    def _new_sketch(self) -> Profile | None:
        return self.reference.like(self.redacted) if self.reference else None


@dataclass(eq=False)
class EvaluationState:
    """What the evaluations of a version keep between flushes."""

    thresholds: Thresholds
    recent: RecentWindows
    last: Evaluation | None = None
    last_saved: float = 0.0
    scores: dict[str, Any] = field(default_factory=dict)  # live performance, as last read
    scored: float = 0.0  # when; 0: labels came since, read them at the next flush


@dataclass(eq=False)
class Watched:
    """One served version: its reference profile and each job's state."""

    version: ModelVersion
    reference: Profile | None
    tap: Tap
    log: PredictionLog
    window: OpenWindow
    evaluation: EvaluationState

    @classmethod
    def start(
        cls,
        version: ModelVersion,
        reference: Profile | None,
        configuration: Configuration,
        store: MonitorStore,
        backlog: Backlog,
        traffic: tuple[int, float],
        on_failure: Callable[[], None],
    ) -> Watched:
        """Watching from now: ``traffic`` is the version's figures so far (no window's)."""
        prediction_log = PredictionLog(
            store, version, configuration.redactor, configuration.queue_limit
        )
        log_rate = configuration.log_rate
        tap = Tap(
            backlog,
            prediction_log,
            Bucket.full(log_rate) if log_rate is not None else None,
            Bucket.full(configuration.sketch_rate) if reference is not None else None,
            on_failure,
        )
        served, seconds = traffic
        window = OpenWindow(
            reference,
            configuration.redacted,
            configuration.sample_rate,
            datetime.now(UTC),
            served,
            seconds,
        )
        evaluation = EvaluationState(
            configuration.thresholds,
            RecentWindows(store, version, reference, configuration.period),
        )
        return cls(version, reference, tap, prediction_log, window, evaluation)

    # what watching the version counted, as its metrics export them
    @property
    def unlogged(self) -> int:
        return self.tap.unlogged

    @property
    def unsketched(self) -> int:
        return self.tap.unsketched

    @property
    def logged_requests(self) -> int:
        return self.log.requests
