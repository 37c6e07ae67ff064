"""Prometheus metrics, prefix ``shipyard_``, base units, labels ``model`` and ``version``.

Every update happens on the event loop, so the counters are plain Python numbers with no
locks: an observation costs a bisect and two additions. They are turned into Prometheus
families only when scraped. Queue depth, in-flight requests and model info are read from
the live runners at scrape time, so they cost the request path nothing.

A rollout's state (its phase, the share of traffic per version, its checks' latest results)
is whatever the controller last published with :meth:`Metrics.rollout_state`, once a tick;
the phase and check gauges follow kube-state-metrics: one series per possible value, 1 for
the current one and 0 for the others, so a query selects ``phase="rolled_back"`` directly.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from shipyard.runtime.runner import ModelRunner

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STAGES = ("preprocess", "inference", "postprocess")
# The phases of shipyard.rollout.states.State, and the outcomes of a rollout check.
ROLLOUT_PHASES = (
    "pending", "validating", "progressing", "paused", "promoting", "succeeded", "rolling_back",
    "rolled_back", "failed",
)  # fmt: skip
ROLLOUT_RESULTS = ("pass", "fail", "inconclusive")


class Histogram:
    """Cumulative-on-export bucket counts; ``observe`` is O(log buckets), lock-free."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        total = 0
        out = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(total)))
        return out


class _Family:
    """One metric name: a histogram or a counter per label combination."""

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...], bounds: Any = None):
        self.name = name
        self.help = help_text
        self.labels = labels
        self.bounds = bounds
        self.children: dict[tuple[str, ...], Any] = {}

    def histogram(self, *labels: str) -> Histogram:
        child = self.children.get(labels)
        if child is None:
            child = self.children[labels] = Histogram(self.bounds)
        return child

    def inc(self, *labels: str) -> None:
        self.children[labels] = self.children.get(labels, 0) + 1

    def zero(self, *labels: str) -> None:
        """The counter of ``labels`` exported at 0 until it is first incremented."""
        self.children.setdefault(labels, 0)

    def export(self) -> Metric:
        if self.bounds is None:
            counter = CounterMetricFamily(self.name, self.help, labels=list(self.labels))
            for labels, value in self.children.items():
                counter.add_metric(list(labels), value)
            return counter
        family = HistogramMetricFamily(self.name, self.help, labels=list(self.labels))
        for labels, histogram in self.children.items():
            family.add_metric(list(labels), histogram.buckets(), histogram.sum)
        return family


class _Rollout:
    """What the controller last published for one model's rollout."""

    __slots__ = ("checks", "phase", "weights")

    def __init__(self, phase: str, weights: dict[str, float], checks: dict[str, str]) -> None:
        self.phase = phase
        self.weights = weights
        self.checks = checks


class Metrics(Collector):
    """Every metric of one server, in its own registry (several servers can share a process)."""

    def __init__(
        self,
        runners: Callable[[], Iterable[ModelRunner]],
        registry_reachable: Callable[[], bool] = lambda: True,
    ) -> None:
        self._runners = runners
        self._registry_reachable = registry_reachable
        mv = ("model", "version")
        self.requests = _Family(
            "shipyard_requests", "Inference requests by HTTP status.", (*mv, "status")
        )
        self.request_seconds = _Family(
            "shipyard_request_duration_seconds",
            "Inference request duration, body read to response sent.",
            mv,
            LATENCY_BUCKETS,
        )
        self.stage_seconds = _Family(
            "shipyard_stage_duration_seconds",
            "Time per stage: queue (per request), preprocess, inference, postprocess (per batch).",
            (*mv, "stage"),
            LATENCY_BUCKETS,
        )
        self.batch_rows = _Family(
            "shipyard_batch_size_rows", "Rows per batch run.", mv, ROW_BUCKETS
        )
        self.rejected = _Family(
            "shipyard_rejected_requests",
            "Requests refused or dropped unrun: overload, deadline, disconnect.",
            (*mv, "reason"),
        )
        self.load_seconds = _Family(
            "shipyard_model_load_duration_seconds",
            "Time to load and warm a model version.",
            mv,
            LOAD_BUCKETS,
        )
        self.rolled_back = _Family(
            "shipyard_rollouts_rolled_back",
            "Rollouts of the model that ended rolled back (the candidate got no more traffic), "
            "counted when the phase changes into rolled_back; 0 for every model served.",
            ("model",),
        )
        self.promoted = _Family(
            "shipyard_rollouts_promoted",
            "Rollouts of the model that succeeded (the candidate took the alias), counted when "
            "the phase changes into succeeded; 0 for every model served.",
            ("model",),
        )
        self._rollouts: dict[str, _Rollout] = {}
        self._families = (
            self.requests,
            self.request_seconds,
            self.stage_seconds,
            self.batch_rows,
            self.rejected,
            self.load_seconds,
            self.rolled_back,
            self.promoted,
        )
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # Updates (on the event loop) ---------------------------------------------------------

    def request_done(self, model: str, version: str, status: int, seconds: float) -> None:
        self.requests.inc(model, version, str(status))
        self.request_seconds.histogram(model, version).observe(seconds)

    def traffic(self, model: str, version: str) -> tuple[int, float]:
        """Requests of a version so far, and their seconds in all (read from any thread)."""
        histogram = self.request_seconds.children.get((model, version))
        if histogram is None:
            return 0, 0.0
        return sum(histogram.counts), histogram.sum

    def rejected_request(self, model: str, version: str, reason: str) -> None:
        self.rejected.inc(model, version, reason)

    def batch_done(
        self, model: str, version: str, rows: int, queue_waits: Iterable[float], stages: Any
    ) -> None:
        self.batch_rows.histogram(model, version).observe(rows)
        queue = self.stage_seconds.histogram(model, version, "queue")
        for wait in queue_waits:
            queue.observe(wait)
        for stage in STAGES:
            self.stage_seconds.histogram(model, version, stage).observe(getattr(stages, stage))

    def model_loaded(self, model: str, version: str, seconds: float) -> None:
        self.load_seconds.histogram(model, version).observe(seconds)

    def rollout_state(
        self, model: str, phase: str | None, weights: dict[str, float], checks: dict[str, str]
    ) -> None:
        """Publish ``model``'s rollout as it stands now (the controller calls it once a tick).

        ``phase`` is one of :data:`ROLLOUT_PHASES`, or None when the model has no rollout:
        its weight, phase and check series then go (the counters stay). ``weights`` maps a
        version (as a string) to its share of traffic in [0, 1]; ``checks`` maps a check's
        name to its latest result, one of :data:`ROLLOUT_RESULTS`. Each call replaces what the
        last one published. The rolled-back and promoted counters count a change into
        ``rolled_back`` or ``succeeded`` from another phase published before; a model's first
        state (after the server started, or after it was cleared) is where the rollout already
        is, so a restarted server or a replica taking the controller's lease over does not
        count the same rollback twice.
        """
        if phase is None:
            self._rollouts.pop(model, None)
            return
        if phase not in ROLLOUT_PHASES:
            raise ValueError(f"unknown rollout phase {phase!r}; expected one of {ROLLOUT_PHASES}")
        for version, weight in weights.items():
            if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
                raise ValueError(f"weight of version {version} must be in [0, 1]; got {weight!r}")
        for check, result in checks.items():
            if result not in ROLLOUT_RESULTS:
                raise ValueError(
                    f"unknown result {result!r} of check {check!r}; "
                    f"expected one of {ROLLOUT_RESULTS}"
                )
        previous = self._rollouts.get(model)
        self.rolled_back.zero(model)
        self.promoted.zero(model)
        if previous is not None and previous.phase != phase:
            if phase == "rolled_back":
                self.rolled_back.inc(model)
            elif phase == "succeeded":
                self.promoted.inc(model)
        self._rollouts[model] = _Rollout(phase, dict(weights), dict(checks))

    # Export ------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        runners = list(self._runners())
        for runner in runners:  # so increase() sees a model's first rollback as 0 -> 1
            self.rolled_back.zero(runner.name)
            self.promoted.zero(runner.name)
        for family in self._families:
            yield family.export()
        yield from self._rollout_families()
        depth = GaugeMetricFamily(
            "shipyard_queue_depth_rows", "Rows waiting for a batch.", labels=["model", "version"]
        )
        in_flight = GaugeMetricFamily(
            "shipyard_in_flight_requests",
            "Requests queued or running in a batch.",
            labels=["model", "version"],
        )
        info = GaugeMetricFamily(
            "shipyard_model_info",
            "Loaded model versions (value 1).",
            labels=["model", "version", "state", "flavor", "kind", "artifact_digest"],
        )
        for runner in runners:
            labels = [runner.name, str(runner.version.version)]
            depth.add_metric(labels, runner.batcher.queued_rows)
            in_flight.add_metric(labels, runner.batcher.in_flight)
            v = runner.version
            info.add_metric(
                [*labels, runner.state.value, v.flavor, v.kind.value, v.artifact_digest[:12]], 1
            )
        reachable = GaugeMetricFamily(
            "shipyard_registry_reachable",
            "1 while the registry (database, artifact store) answered this replica's last "
            "reload tick, 0 during an outage (loaded versions keep serving).",
        )
        reachable.add_metric([], 1.0 if self._registry_reachable() else 0.0)
        yield from (depth, in_flight, info, reachable)

    def _rollout_families(self) -> Iterator[Metric]:
        weight = GaugeMetricFamily(
            "shipyard_rollout_weight",
            "Share of the model's traffic each version takes during a rollout, in [0, 1].",
            labels=["model", "version"],
        )
        phase = GaugeMetricFamily(
            "shipyard_rollout_phase",
            "Phase of the model's rollout: 1 for the current phase, 0 for the others.",
            labels=["model", "phase"],
        )
        check = GaugeMetricFamily(
            "shipyard_rollout_check",
            "Latest result of each check of the model's rollout analysis: 1 for the result "
            "(pass, fail, inconclusive), 0 for the others.",
            labels=["model", "check", "result"],
        )
        for model, rollout in self._rollouts.items():
            for version, share in rollout.weights.items():
                weight.add_metric([model, version], share)
            for name in ROLLOUT_PHASES:
                phase.add_metric([model, name], 1.0 if name == rollout.phase else 0.0)
            for name, latest in rollout.checks.items():
                for result in ROLLOUT_RESULTS:
                    check.add_metric([model, name, result], 1.0 if result == latest else 0.0)
        yield from (weight, phase, check)

    def render(self) -> bytes:
        return generate_latest(self.registry)
