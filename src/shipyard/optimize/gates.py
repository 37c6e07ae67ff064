"""The two gates every candidate passes or fails: accuracy against its parent, and speed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError
from shipyard.runtime.predictor import Predictor

EVAL_BATCH = 32
TIMING_BUDGET_S = 0.6


@dataclass
class Quality:
    metric: str
    parent: float
    candidate: float
    passed: bool
    details: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "parent": self.parent,
            "candidate": self.candidate,
            "delta": self.candidate - self.parent,
            "passed": self.passed,
            **self.details,
        }


def task_of(predictor: Predictor) -> str:
    """embedding | classification | regression, read from the served interface."""
    if predictor.kind.value == "text-embedding":
        return "embedding"
    names = [o.name for o in predictor.signature.outputs]
    if "label" in names:
        return "classification"
    first = predictor.signature.outputs[0]
    if len(first.shape) == 2 and first.shape[1] not in (-1, 1) and first.datatype.startswith("FP"):
        return "classification"  # logits or scores per class
    return "regression"


def predictions(predictor: Predictor, data: Any) -> dict[str, np.ndarray]:
    """Outputs over the whole evaluation set, in batches."""
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, len(data), EVAL_BATCH):
        parts.append(predictor.predict(data[start : start + EVAL_BATCH]))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _primary(outputs: dict[str, np.ndarray], task: str) -> np.ndarray:
    if task == "classification" and "label" in outputs:
        return outputs["label"].reshape(-1)
    first = next(iter(outputs.values()))
    if task == "classification":
        return np.asarray(np.asarray(first).argmax(axis=1))
    return np.asarray(first, dtype=np.float64)


def compare(
    task: str,
    parent: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    labels: np.ndarray | None,
    tolerance: float,
) -> Quality:
    """Task metric within a relative tolerance with labels; agreement with the parent without."""
    if task == "embedding":
        a = next(iter(parent.values())).astype(np.float64)
        b = next(iter(candidate.values())).astype(np.float64)
        cosine = (a * b).sum(1) / np.clip(
            np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12, None
        )
        mean, worst = float(cosine.mean()), float(cosine.min())
        passed = mean >= 1 - tolerance and worst >= 1 - 3 * tolerance
        return Quality("mean_cosine", 1.0, mean, passed, {"worst_cosine": worst})
    p, c = _primary(parent, task), _primary(candidate, task)
    if task == "classification":
        if labels is not None:
            truth = _as_labels(labels, p.dtype) if p.dtype.kind != "O" else labels.reshape(-1)
            parent_acc = float((p == truth).mean())
            cand_acc = float((c == truth).mean())
            return Quality(
                "accuracy",
                parent_acc,
                cand_acc,
                cand_acc >= parent_acc * (1 - tolerance),
                {"f1_macro_parent": _f1(p, truth), "f1_macro_candidate": _f1(c, truth)},
            )
        agreement = float((p == c).mean())
        return Quality("top1_agreement", 1.0, agreement, agreement >= 1 - tolerance)
    if labels is not None:
        target = _as_labels(labels, np.dtype(np.float64)).reshape(p.shape[0], -1)
        parent_mae = float(np.abs(p.reshape(target.shape) - target).mean())
        cand_mae = float(np.abs(c.reshape(target.shape) - target).mean())
        return Quality(
            "mae", parent_mae, cand_mae, cand_mae <= parent_mae * (1 + tolerance) + 1e-12
        )
    relative = float(np.abs(c - p).mean() / max(float(np.abs(p).mean()), 1e-12))
    return Quality("relative_error", 0.0, relative, relative <= tolerance)


def _as_labels(labels: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    try:
        return np.asarray(labels).reshape(-1).astype(dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"the labels do not fit the model's {dtype} predictions: {exc}"
        ) from None


def _f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    scores = []
    for cls in np.unique(truth):
        tp = float(((predicted == cls) & (truth == cls)).sum())
        fp = float(((predicted == cls) & (truth != cls)).sum())
        fn = float(((predicted != cls) & (truth == cls)).sum())
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def seconds_per_call(predictor: Predictor, batch: Any) -> float:
    """Median seconds of one call on ``batch``, after a warm-up, within a small time budget."""
    for _ in range(3):
        predictor.predict(batch)
    times: list[float] = []
    deadline = time.perf_counter() + TIMING_BUDGET_S
    while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 200):
        start = time.perf_counter()
        predictor.predict(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def speedup(parent: Predictor, candidate: Predictor, batch: Any, rounds: int = 3) -> float:
    """Parent time over candidate time, measured in alternation so that drift cancels."""
    ratios = []
    for _ in range(rounds):
        ratios.append(seconds_per_call(parent, batch) / seconds_per_call(candidate, batch))
    return float(np.median(ratios))
