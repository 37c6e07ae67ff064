"""The offline gate of a retrained candidate: it and the champion answer the same held-out
labelled traffic, and the candidate passes when it is no worse than the champion by more
than the tolerance, overall and in every slice of a chosen feature that has rows enough.

Both versions answer afresh (the champion's logged answers may be an earlier version's).
Accuracy judges a classifier, mean absolute error a regressor; a slice is a value of the
feature when it takes few values, else a quartile of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError
from shipyard.monitor.performance import predicted_values, task_of
from shipyard.registry import ModelKind, ModelVersion, Registry
from shipyard.retrain.data import LabelledRows
from shipyard.rollout.offline import row_scores
from shipyard.runtime.loading import load_version
from shipyard.runtime.session import Threading

MIN_ROWS = 30  # held-out rows below which nothing is judged
MIN_SLICE_ROWS = 20  # a slice with fewer is reported, not judged
MAX_CATEGORIES = 10  # a feature with more distinct values is cut into quartiles


@dataclass(frozen=True)
class Score:
    slice: str
    rows: int
    champion: float
    candidate: float
    passed: bool | None  # None: too few rows to judge


@dataclass(frozen=True)
class GateResult:
    metric: str  # accuracy (higher is better) or mae (lower is better)
    tolerance: float
    overall: Score
    slices: list[Score] = field(default_factory=list)
    feature: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.overall.passed) and all(s.passed is not False for s in self.slices)

    @property
    def reason(self) -> str:
        if self.overall.passed is None:
            return f"only {self.overall.rows} held-out rows: at least {MIN_ROWS} are needed"
        failed = [s for s in [self.overall, *self.slices] if s.passed is False]
        if not failed:
            return (
                f"{self.metric} {self.overall.candidate:.4g} against the champion's "
                f"{self.overall.champion:.4g} on {self.overall.rows} held-out rows"
            )
        return "; ".join(
            f"{s.slice}: {self.metric} {s.candidate:.4g} against the champion's {s.champion:.4g}"
            for s in failed
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed, "reason": self.reason}


def gate(
    registry: Registry,
    champion: ModelVersion,
    candidate: ModelVersion,
    held_out: LabelledRows,
    *,
    tolerance: float = 0.0,
    feature: str | None = None,
) -> GateResult:
    task = task_of(champion)
    if task == "embedding" or champion.kind is not ModelKind.TENSOR:
        raise InvalidInputError(
            f"{champion.ref} has no labels to be judged on offline (an embedding model)"
        )
    metric = "accuracy" if task == "classification" else "mae"
    if len(held_out) < MIN_ROWS:
        empty = Score("all", len(held_out), float("nan"), float("nan"), None)
        return GateResult(metric, tolerance, empty, feature=feature)
    features = _matrix(held_out.inputs)
    theirs = row_scores(metric, _answers(registry, candidate, features, task), held_out.labels)
    ours = row_scores(metric, _answers(registry, champion, features, task), held_out.labels)
    scores = (np.asarray(ours), np.asarray(theirs))
    overall = _score("all", scores, np.ones(len(ours), bool), metric, tolerance, MIN_ROWS)
    slices = []
    if feature is not None:
        for name, mask in _slices(held_out.inputs, feature):
            slices.append(_score(name, scores, mask, metric, tolerance, MIN_SLICE_ROWS))
    return GateResult(metric, tolerance, overall, slices, feature)


def _score(
    name: str,
    scores: tuple[np.ndarray, np.ndarray],
    mask: np.ndarray,
    metric: str,
    tolerance: float,
    least: int,
) -> Score:
    rows = int(mask.sum())
    champion = float(scores[0][mask].mean()) if rows else float("nan")
    candidate = float(scores[1][mask].mean()) if rows else float("nan")
    if rows < least:
        return Score(name, rows, champion, candidate, None)
    if metric == "accuracy":
        passed = candidate >= champion - tolerance
    else:  # an error: the tolerance is a share of the champion's
        passed = candidate <= champion * (1 + tolerance) + 1e-12
    return Score(name, rows, champion, candidate, passed)


def _matrix(inputs: list[dict[str, Any]]) -> np.ndarray:
    try:
        return np.asarray([list(row.values()) for row in inputs], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            "the held-out inputs are not all numbers (a redacted or hashed field?): the "
            "gate needs whole rows"
        ) from None


def _answers(
    registry: Registry, version: ModelVersion, features: np.ndarray, task: str
) -> list[Any]:
    spec = version.signature.inputs[0]
    if len(version.signature.inputs) != 1 or len(spec.shape) != 2:
        raise InvalidInputError(
            f"{version.ref} does not take one table of rows, which the offline gate feeds it"
        )
    if spec.shape[1] not in (-1, features.shape[1]):
        raise InvalidInputError(
            f"{version.ref} takes {spec.shape[1]} features; the logged rows have "
            f"{features.shape[1]}"
        )
    dtype = np.float32 if spec.datatype == "FP32" else np.float64
    predictor = load_version(registry, version, Threading(intra_op=1))
    outputs = predictor.predict({spec.name: features.astype(dtype)})
    return predicted_values(version.signature, outputs, task)


def _slices(inputs: list[dict[str, Any]], feature: str) -> Iterator[tuple[str, np.ndarray]]:
    if feature not in inputs[0]:
        known = ", ".join(list(inputs[0])[:8])
        raise InvalidInputError(f"no input {feature!r} to slice by; the logged inputs are {known}")
    values = [row.get(feature) for row in inputs]
    distinct = sorted({str(v) for v in values})
    if len(distinct) <= MAX_CATEGORIES:
        for value in distinct:
            yield f"{feature}={value}", np.asarray([str(v) == value for v in values])
        return
    numbers = np.asarray(values, dtype=np.float64)
    edges = np.quantile(numbers, [0.25, 0.5, 0.75])
    bins = np.searchsorted(edges, numbers, side="right")
    bounds = [-np.inf, *edges, np.inf]
    for index in range(4):
        label = f"{feature} in [{bounds[index]:.4g}, {bounds[index + 1]:.4g})"
        yield label, bins == index
