"""The offline part of a pre-flight: the candidate on the baseline's labelled traffic.

Where the monitor has logged the baseline's requests with their inputs and feedback has
labelled them, the candidate answers the same inputs here, before it takes any traffic, and
its accuracy (a classifier) or mean absolute error (a regressor) is compared with what the
baseline answered on them. A candidate worse than the baseline by more than the tolerance
(``max_accuracy_drop``; for a regressor that share of the baseline's error) fails the
pre-flight. With too few such requests there is nothing to compare, and no check.

Logged inputs are one record per row ({field: value}); they become the model's input again
for a model with one two-dimensional input whose rows were logged whole (no field
redacted), the common tabular case. Other models get no offline check.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shipyard.monitor.performance import predicted_values, task_of
from shipyard.registry import ModelKind, ModelVersion, Registry
from shipyard.rollout.analysis import Check
from shipyard.rollout.sequential import Decision, Outcome
from shipyard.rollout.spec import RolloutSpec
from shipyard.runtime.loading import load_version
from shipyard.runtime.session import Threading

MOST_ROWS = 5000  # the latest labelled rows compared: enough, and bounded in time and memory


def offline_check(
    registry: Registry, baseline: ModelVersion, candidate: ModelVersion, spec: RolloutSpec
) -> Check | None:
    """The candidate against the baseline on the baseline's labelled logged traffic, or
    None when there is not enough of it to compare."""
    task = task_of(baseline)
    if task == "embedding" or baseline.kind is not ModelKind.TENSOR:
        return None
    rows, labels, answers = _labelled_rows(registry, baseline, task)
    if len(rows) < spec.min_samples:
        return None
    spec_input = candidate.signature.inputs[0]
    predictor = load_version(registry, candidate, Threading(intra_op=1))
    dtype = np.float32 if spec_input.datatype == "FP32" else np.float64
    outputs = predictor.predict({spec_input.name: np.asarray(rows, dtype=dtype)})
    theirs = predicted_values(candidate.signature, outputs, task)
    ours_score = _score(task, answers, labels)
    theirs_score = _score(task, theirs, labels)
    if task == "classification":
        worse_by = ours_score - theirs_score  # accuracy: higher is better
        tolerance = spec.max_accuracy_drop
        metric = "accuracy"
    else:
        worse_by = theirs_score - ours_score  # mean absolute error: lower is better
        tolerance = spec.max_accuracy_drop * max(ours_score, 1e-12)
        metric = "mae"
    if worse_by > tolerance:
        outcome = Outcome.FAIL
        reason = f"offline {metric} {theirs_score:.4g} against the baseline's {ours_score:.4g}"
    else:
        outcome = Outcome.PASS
        reason = f"offline {metric} {theirs_score:.4g}, the baseline's {ours_score:.4g}"
    n = len(labels)
    decision = Decision(outcome, theirs_score - ours_score, -math.inf, math.inf, 1.0, n, n, reason)
    details = {"metric": metric, "candidate": theirs_score, "baseline": ours_score}
    return Check("offline", decision, details=details | {"tolerance": tolerance})


def _labelled_rows(
    registry: Registry, baseline: ModelVersion, task: str
) -> tuple[list[list[float]], list[Any], list[Any]]:
    """(input rows, labels, the baseline's answers) of its latest labelled logged requests."""
    inputs = baseline.signature.inputs
    if len(inputs) != 1 or len(inputs[0].shape) != 2 or inputs[0].shape[1] < 1:
        return [], [], []
    width = inputs[0].shape[1]
    rows: list[list[float]] = []
    labels: list[Any] = []
    answers: list[Any] = []
    records = registry.monitoring.predictions(baseline, labelled_only=True)
    for record in reversed(records):
        if not record.inputs or record.outputs is None or record.label is None:
            continue
        given = record.label if isinstance(record.label, list) else [record.label]
        answered = predicted_values(baseline.signature, record.outputs, task)
        request_rows = [list(row.values()) for row in record.inputs]
        if not len(given) == len(answered) == len(request_rows):
            continue
        if any(len(row) != width or not _numbers(row) for row in request_rows):
            continue  # a redacted or hashed field: the row cannot be rebuilt
        rows.extend(request_rows)
        labels.extend(given)
        answers.extend(answered)
        if len(rows) >= MOST_ROWS:
            break
    return rows, labels, answers


def _numbers(row: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)


def row_scores(metric: str, answers: list[Any], labels: list[Any]) -> list[float]:
    """Per row: 1.0 or 0.0 for a right or wrong class (accuracy), else the absolute error."""
    if metric == "accuracy":
        pairs = zip(answers, labels, strict=True)
        return [float(class_name(a) == class_name(b)) for a, b in pairs]
    error = np.abs(np.asarray(answers, np.float64) - np.asarray(labels, np.float64))
    return [float(value) for value in error]


def _score(task: str, answers: list[Any], labels: list[Any]) -> float:
    metric = "accuracy" if task == "classification" else "mae"
    return float(np.mean(row_scores(metric, answers, labels)))


def class_name(value: Any) -> str:
    """A class as a label names it: 3, 3.0 and "3" are one class."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)
