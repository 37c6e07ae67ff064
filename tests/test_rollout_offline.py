"""The pre-flight's offline check: a candidate answers the baseline's labelled logged traffic
before it takes any, and one that does worse than the tolerance never does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from rollout_models import W, expected_labels, register_classifier
from shipyard import Registry, Settings
from shipyard.rollout import service
from shipyard.rollout.controller import RolloutController


def _log_labelled(registry: Registry, requests: int, redacted: bool = False) -> None:
    """The baseline's served requests (4 rows each) logged with their inputs and labelled."""
    baseline = registry.get_version("clf:1")
    rng = np.random.default_rng(5)
    logged, labels = [], {}
    for index in range(requests):
        rows = rng.normal(size=(4, 3)).astype(np.float32)
        truth = expected_labels(rows)
        inputs = [{f"x.{i}": float(v) for i, v in enumerate(row)} for row in rows]
        if redacted:
            inputs = [{**row, "x.1": "sha256:5e3f"} for row in inputs]
        outputs = {"label": truth.tolist(), "scores": (rows @ W).tolist()}
        logged.append((f"r{index}", datetime.now(UTC), outputs, inputs))
        labels[f"r{index}"] = truth.tolist()
    registry.monitoring.add_predictions(baseline, logged)
    assert registry.monitoring.set_labels("clf", labels).unknown == []


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(Settings(home=tmp_path / "home"))
    register_classifier(registry, tmp_path / "src", "good", alias="production")
    register_classifier(registry, tmp_path / "src", "different")
    register_classifier(registry, tmp_path / "src", "good")
    return registry


def _pre_flight(registry: Registry, candidate: int) -> object:
    rollout = service.start(registry, "clf", candidate, {"min_samples": 100})
    (moved,) = RolloutController(registry, "test").tick()
    assert moved.id == rollout.id
    return moved


def test_a_candidate_worse_on_the_labelled_traffic_never_takes_any(registry: Registry) -> None:
    _log_labelled(registry, 60)
    moved = _pre_flight(registry, 2)
    assert (moved.state, moved.weight) == ("rolled_back", 0.0)  # type: ignore[attr-defined]
    (event,) = [e for e in registry.events("clf") if e.kind == "rollout.rolling_back"]
    assert event.reason.startswith("pre-flight: offline accuracy ")
    assert "against the baseline's 1, worse by more than 0.02" in event.reason
    offline = event.details["evidence"]["offline"]
    assert (offline["outcome"], offline["n_candidate"], offline["baseline"]) == ("fail", 240, 1.0)
    assert offline["candidate"] < 0.5
    analysis = moved.analysis  # type: ignore[attr-defined]
    assert analysis["reason"] == event.reason  # what `rollout status` and `history` print
    assert analysis["checks"]["offline"]["outcome"] == "fail"


def test_a_candidate_as_good_passes_with_the_figures_recorded(registry: Registry) -> None:
    _log_labelled(registry, 60)
    moved = _pre_flight(registry, 3)
    assert (moved.state, moved.weight) == ("progressing", 0.05)  # type: ignore[attr-defined]
    (event,) = [
        e for e in registry.events("clf") if e.reason and e.reason.startswith("pre-flight passed")
    ]
    offline = event.details["evidence"]["offline"]
    assert (offline["outcome"], offline["candidate"], offline["baseline"]) == ("pass", 1.0, 1.0)


@pytest.mark.parametrize(("requests", "redacted"), [(0, False), (10, False), (60, True)])
def test_without_enough_rebuildable_labelled_rows_there_is_no_offline_check(
    registry: Registry, requests: int, redacted: bool
) -> None:
    if requests:
        _log_labelled(registry, requests, redacted)
    moved = _pre_flight(registry, 2)  # a worse candidate, but nothing to judge it on offline
    assert moved.state == "progressing"  # type: ignore[attr-defined]
    (event,) = [
        e for e in registry.events("clf") if e.reason and e.reason.startswith("pre-flight passed")
    ]
    assert "offline" not in event.details["evidence"]
