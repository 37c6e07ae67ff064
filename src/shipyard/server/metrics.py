"""Prometheus metrics, prefix ``shipyard_``, base units, labels ``model`` and ``version``.

Counters and histograms are updated as requests finish; queue depth, in-flight requests and
model info are read from the live runners when Prometheus scrapes, so they cost the request
path nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shipyard.runtime.runner import ModelRunner

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _LiveRunners(Collector):
    def __init__(self, runners: Callable[[], Iterable[ModelRunner]]) -> None:
        self._runners = runners

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
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
        return depth, in_flight, info

    def collect(self) -> Iterator[Metric]:
        depth, in_flight, info = self._families()
        for runner in self._runners():
            labels = [runner.name, str(runner.version.version)]
            depth.add_metric(labels, runner.batcher.queued_rows)
            in_flight.add_metric(labels, runner.batcher.in_flight)
            v = runner.version
            info.add_metric(
                [*labels, runner.state.value, v.flavor, v.kind.value, v.artifact_digest[:12]], 1
            )
        yield from (depth, in_flight, info)


class Metrics:
    """Every metric of one server, in its own registry (several servers can share a process)."""

    def __init__(self, runners: Callable[[], Iterable[ModelRunner]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        labels = ["model", "version"]
        self.requests = Counter(
            "shipyard_requests",
            "Inference requests by HTTP status.",
            [*labels, "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "shipyard_request_duration_seconds",
            "Inference request duration, body read to response sent.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "shipyard_stage_duration_seconds",
            "Time per stage: queue (per request), preprocess, inference, postprocess (per batch).",
            [*labels, "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "shipyard_batch_size_rows",
            "Rows per batch run.",
            labels,
            buckets=ROW_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "shipyard_rejected_requests",
            "Requests refused or dropped unrun: overload, deadline, disconnect.",
            [*labels, "reason"],
            registry=r,
        )
        self.load_seconds = Histogram(
            "shipyard_model_load_duration_seconds",
            "Time to load and warm a model version.",
            labels,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        r.register(_LiveRunners(runners))
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request_done(self, model: str, version: str, status: int, seconds: float) -> None:
        self._child(self.requests, model, version, str(status)).inc()
        self._child(self.request_seconds, model, version).observe(seconds)

    def rejected_request(self, model: str, version: str, reason: str) -> None:
        self._child(self.rejected, model, version, reason).inc()

    def batch_done(
        self, model: str, version: str, rows: int, queue_waits: Iterable[float], stages: Any
    ) -> None:
        self._child(self.batch_rows, model, version).observe(rows)
        queue = self._child(self.stage_seconds, model, version, "queue")
        for wait in queue_waits:
            queue.observe(wait)
        for stage in ("preprocess", "inference", "postprocess"):
            self._child(self.stage_seconds, model, version, stage).observe(getattr(stages, stage))

    def model_loaded(self, model: str, version: str, seconds: float) -> None:
        self._child(self.load_seconds, model, version).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
