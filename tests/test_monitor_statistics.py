"""The drift statistics' declaration drives what leaves the monitor: the Prometheus families
(each column's score under the distance that reports it, its p-value under its kind's test)
and the report's drift table (the gating figure in the score column, not repeated)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.core import Metric

import shipyard
from shipyard import Registry, Settings
from shipyard.monitor.drift import (
    ColumnDrift,
    distance_of,
    gated_by,
    p_value_test,
    reported_distance,
)
from shipyard.monitor.evaluation import Evaluation
from shipyard.monitor.live import LiveMonitor
from shipyard.monitor.metrics import MonitorCollector
from shipyard.monitor.report import render
from shipyard.runtime.batcher import Pending
from shipyard.runtime.loading import load_version
from shipyard.runtime.session import Threading

# 60 live rows against 200 reference rows: the p-value tests gate
SMALL_SAMPLE: dict[str, Any] = {}
# every column gated by a distance, the numeric ones by PSI
BY_PSI: dict[str, Any] = {"small_sample": 0, "numeric_method": "psi"}


def _monitored(
    home: Path, thresholds: dict[str, Any], model: Any, reference: Path, rows: np.ndarray
) -> tuple[Evaluation, dict[str, Metric]]:
    """``rows`` served through a real monitor's tap and flushed: the evaluation, and the
    monitor's metric families by name."""
    settings = Settings(home=home, model_monitoring={"cancer": {"thresholds": thresholds}})
    served = 0
    with Registry(settings) as registry:
        version = shipyard.register(model, "cancer", reference_data=reference, registry=registry)
        monitor = LiveMonitor(registry, settings, traffic=lambda version: (served, 0.0))
        monitor.watch(version)
        tap = monitor.tap(version)
        assert tap is not None
        inputs = {"input": rows.astype(np.float32)}
        outputs, _ = load_version(registry, version, Threading(intra_op=1)).run_batch(inputs)
        request = Pending(inputs, len(rows), None, 0.0, None, request_id=b"r")  # type: ignore[arg-type]
        tap([request], inputs, outputs)
        served = 1
        (evaluation,) = monitor.flush_now()
        families = {family.name: family for family in MonitorCollector(monitor).collect()}
    assert evaluation.drift is not None
    return evaluation, families


@pytest.fixture(params=[SMALL_SAMPLE, BY_PSI], ids=["small-sample", "psi"])
def monitored(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cancer_classifier: Any,
    cancer_csv: Path,
    breast_cancer: tuple[np.ndarray, np.ndarray],
) -> tuple[Evaluation, dict[str, Metric]]:
    x, _ = breast_cancer
    return _monitored(tmp_path / "home", request.param, cancer_classifier, cancer_csv, x[200:260])


def _samples(family: Metric, label: str) -> dict[tuple[str, str], float]:
    return {(s.labels[label], s.labels["method"]): s.value for s in family.samples}


def _tested(columns: list[ColumnDrift]) -> list[ColumnDrift]:
    return [c for c in columns if c.method != "none"]


def test_the_exported_drift_figures_follow_the_declaration(
    monitored: tuple[Evaluation, dict[str, Metric]],
) -> None:
    evaluation, families = monitored
    assert evaluation.drift is not None
    inputs = _tested(evaluation.drift.columns)
    outputs = _tested(evaluation.drift.predictions)
    assert inputs
    assert outputs
    scores = _samples(families["shipyard_feature_drift_score"], "feature")
    assert scores == {
        (c.column, reported_distance(c).name): c.statistics[reported_distance(c).key]
        for c in inputs
    }
    p_values = _samples(families["shipyard_feature_drift_p_value"], "feature")
    assert p_values == {
        (c.column, p_value_test(c.kind).name): c.statistics[p_value_test(c.kind).key]
        for c in inputs
    }
    predictions = _samples(families["shipyard_prediction_drift_score"], "output")
    assert predictions == {
        (c.column, distance_of(c.kind).name): c.statistics[distance_of(c.kind).key] for c in outputs
    }


def test_the_methods_exported_are_the_statistics_names(
    monitored: tuple[Evaluation, dict[str, Metric]],
) -> None:
    evaluation, families = monitored
    assert evaluation.drift is not None
    gating = {c.method for c in _tested(evaluation.drift.columns)}
    scores = {method for _, method in _samples(families["shipyard_feature_drift_score"], "feature")}
    p_values = {m for _, m in _samples(families["shipyard_feature_drift_p_value"], "feature")}
    # the inputs are numeric: a small sample is gated by KS and scored by the Wasserstein
    # distance, a large one gated and scored by the numeric method the model chose
    assert (gating, scores, p_values) in (
        ({"ks"}, {"wasserstein"}, {"ks"}),
        ({"psi"}, {"psi"}, {"ks"}),
    )


def test_the_report_shows_each_gating_figure_once(
    monitored: tuple[Evaluation, dict[str, Metric]],
) -> None:
    evaluation, _ = monitored
    assert evaluation.drift is not None
    page = render("cancer", None, evaluation, [], [])
    for column in _tested(evaluation.drift.columns + evaluation.drift.predictions):
        gating = gated_by(column.method)
        assert gating is not None
        row = re.search(rf"<tr><td>{re.escape(column.column)}</td>(.*?)</tr>", page)
        assert row is not None, column.column
        cells = row.group(1).removeprefix("<td>").removesuffix("</td>").split("</td><td>")
        assert cells[1] == column.method
        assert float(cells[2]) == pytest.approx(column.statistics[gating.key], rel=1e-3)
        shown = {figure.rsplit(" ", 1)[0] for figure in cells[5].split(", ")}
        assert shown == set(column.statistics) - {gating.key}
