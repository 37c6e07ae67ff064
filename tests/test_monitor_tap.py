"""The tap's buckets, its backlog and what it counts, and the prediction log it feeds,
written to a real registry's database."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from shipyard import Registry
from shipyard.errors import StorageError
from shipyard.monitor import predictionlog
from shipyard.monitor import tap as batch_tap
from shipyard.monitor.predictionlog import LoggedBatch, PredictionLog
from shipyard.monitor.privacy import Redactor
from shipyard.monitor.tap import Backlog, Bucket, Tap
from shipyard.registry import ModelVersion
from shipyard.runtime.batcher import Pending
from shipyard.settings import ModelMonitorSettings

DATABASES = ("sqlite", "postgresql")  # each test on both (tests/conftest.py)


class FrozenClock:
    """The tap's clock, standing still: its buckets refill by time, not by a test's speed."""

    def monotonic(self) -> float:
        return 1000.0

    def time(self) -> float:
        return 1_800_000_000.0


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_tap, "time", FrozenClock())


@pytest.fixture
def tiny(registry: Registry, tiny_onnx_path: Path) -> ModelVersion:
    shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    return registry.get_version("tiny")


def _log(registry: Registry, version: ModelVersion, limit: int = 100) -> PredictionLog:
    return PredictionLog(registry.monitoring, version, Redactor(ModelMonitorSettings(), []), limit)


def _requests(*ids: bytes) -> list[Pending]:
    return [Pending(None, 1, None, 0.0, None, request_id=i) for i in ids]  # type: ignore[arg-type]


def _batch(rows: int) -> tuple[dict[str, Any], dict[str, Any]]:
    inputs = {"x": np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)}
    outputs = {"y": np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)}
    return inputs, outputs


def test_a_bucket_bursts_a_seconds_worth_then_holds_its_rate() -> None:
    bucket = Bucket(10.0, tokens=10.0, refilled=100.0)
    assert all(bucket.take(1, 100.0) for _ in range(10))
    assert not bucket.take(1, 100.0)
    assert bucket.take(5, 100.5)  # half a second refills half a second's worth
    assert not bucket.take(1, 100.5)
    assert bucket.take(10, 200.0)  # a long pause refills no more than a second's worth
    assert not bucket.take(1, 200.0)


@pytest.mark.usefixtures("frozen")
def test_the_tap_queues_within_its_rates_and_counts_the_rest(
    registry: Registry, tiny: ModelVersion
) -> None:
    log = _log(registry, tiny)
    backlog = Backlog(limit=1)
    tap = Tap(backlog, log, Bucket.full(3.0), Bucket.full(4.0), lambda: None)
    inputs, outputs = _batch(2)
    for i in range(4):  # two requests of one row each, four times
        assert tap.observe(_requests(b"a%d" % i, b"b%d" % i), inputs, outputs) == 1
    # the log's bucket held three requests: the first batch's two, then none of two more
    assert [batch[0] for batch in log.batches] == [[b"a0", b"b0"]]
    assert (log.requests, tap.unlogged) == (2, 6)
    # the sketches' bucket held four rows: two batches, the second past the backlog's limit
    assert len(backlog) == 1
    assert backlog[0][0] is tap
    assert (backlog.dropped, tap.unsketched) == (1, 4)

    log.write()
    stored = sorted(registry.monitoring.predictions(tiny), key=lambda p: p.request_id)
    assert [p.request_id for p in stored] == ["a0", "b0"]
    np.testing.assert_array_equal(np.asarray(stored[1].outputs["y"]), outputs["y"][1:])
    assert (log.batches, log.requests) == ([], 0)


@pytest.mark.usefixtures("frozen")
def test_a_tap_without_buckets_queues_and_counts_nothing(
    registry: Registry, tiny: ModelVersion
) -> None:
    """Outputs not logged and no reference profile: nothing to queue, nothing turned away."""
    log = _log(registry, tiny)
    backlog = Backlog(limit=10)
    tap = Tap(backlog, log, None, None, lambda: None)
    inputs, outputs = _batch(3)
    assert tap.observe(_requests(b"a"), inputs, outputs) == 1
    assert (log.batches, len(backlog), tap.unlogged, tap.unsketched) == ([], 0, 0, 0)


def test_a_failing_tap_counts_its_failure_and_never_raises(
    registry: Registry, tiny: ModelVersion
) -> None:
    failures: list[int] = []
    tap = Tap(Backlog(10), _log(registry, tiny), None, None, lambda: failures.append(1))
    assert tap.observe(_requests(b"a"), {}, {}) == 1  # no input to count rows of
    assert failures == [1]


@pytest.mark.sqlite_only
def test_a_failed_write_keeps_the_unwritten_batches_bounded(
    registry: Registry, tiny: ModelVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predictionlog, "LOG_BATCHES_PER_WRITE", 2)
    log = _log(registry, tiny, limit=2)
    inputs, outputs = _batch(1)
    batches: list[LoggedBatch] = [
        ([b"r%d" % i], [1], 1_800_000_000.0, inputs, outputs) for i in range(5)
    ]
    log.batches, log.requests = list(batches), 5
    with sqlite3.connect(registry.settings.home / "shipyard.db", timeout=30) as db:
        db.execute("DROP TABLE predictions")
    with pytest.raises(StorageError):
        log.write()
    assert log.batches == batches[-2:]
    assert log.requests == 2
    log.batches = list(batches)
    log.bound()
    assert log.batches == batches[-2:]
