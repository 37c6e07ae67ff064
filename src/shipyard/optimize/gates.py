"""The two gates every candidate passes or fails: accuracy against its parent, and speed.

Accuracy is judged on rows held out from everything the search fits (calibration, smoothing,
the sensitivity ranking), so that a candidate chosen among many is judged on rows it was not
chosen on. A mean over rows (cosine, relative error, the paired MAE difference) gates on its
one-sided CONFIDENCE bound, not its point estimate: a version that passes keeps passing on new
traffic of the same kind. A share (top-1 agreement, accuracy) gates on its estimate: near 1,
its bound needs hundreds of held-out rows to be informative at all, far more than an
evaluation set usually has.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError
from shipyard.runtime.predictor import Predictor

EVAL_BATCH = 32
TIMING_BUDGET_S = 0.6  # per side, of one speed figure
BLOCK_S = 0.005  # how long each side runs in its turn
MIN_PAIRS, MAX_PAIRS = 7, 400  # timed (parent turn, candidate turn) pairs of one speed figure
CONFIDENCE = 0.95  # one-sided, of the bounds the mean metrics gate on
HELD_OUT_SHARE = 1 / 3
MIN_SPLIT_ROWS = 30  # fewer rows than this: every row both fits and judges


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
        bound = mean - margin(cosine)
        passed = bound >= 1 - tolerance and worst >= 1 - 3 * tolerance
        return Quality(
            "mean_cosine", 1.0, mean, passed, {"worst_cosine": worst, "lower_bound": bound}
        )
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
        parent_errors = np.abs(p.reshape(target.shape) - target).mean(axis=1)
        cand_errors = np.abs(c.reshape(target.shape) - target).mean(axis=1)
        parent_mae, cand_mae = float(parent_errors.mean()), float(cand_errors.mean())
        # paired: the bound is on the candidate's extra error, row by row
        difference = cand_errors - parent_errors
        bound = parent_mae + float(difference.mean()) + margin(difference)
        passed = bound <= parent_mae * (1 + tolerance) + 1e-12
        return Quality("mae", parent_mae, cand_mae, passed, {"upper_bound": bound})
    scale = max(float(np.abs(p).mean()), 1e-12)
    per_row = np.abs(c - p).reshape(len(p), -1).mean(axis=1) / scale
    relative = float(per_row.mean())
    bound = relative + margin(per_row)
    return Quality("relative_error", 0.0, relative, bound <= tolerance, {"upper_bound": bound})


def margin(values: np.ndarray) -> float:
    """How far the mean of ``values`` may be from its expectation, one-sided at CONFIDENCE
    (Student's t; 0 for fewer than two values, which cannot say)."""
    from scipy.stats import t

    count = len(values)
    if count < 2:
        return 0.0
    spread = float(np.std(values, ddof=1))
    return float(t.ppf(CONFIDENCE, count - 1)) * spread / float(np.sqrt(count))


def held_out(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fitting rows, held-out rows) of an evaluation set, drawn at random (a sorted file
    splits evenly) but the same on every run; below MIN_SPLIT_ROWS every row is both."""
    everything = np.arange(rows)
    if rows < MIN_SPLIT_ROWS:
        return everything, everything
    order = np.random.default_rng(seed).permutation(rows)
    count = round(rows * HELD_OUT_SHARE)
    return np.sort(order[count:]), np.sort(order[:count])


def take(data: Any, rows: np.ndarray) -> Any:
    """Those rows of evaluation data (an array, or a list of texts)."""
    if isinstance(data, list):
        return [data[i] for i in rows.tolist()]
    return data[rows]


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


def speedup(parent: Predictor, candidate: Predictor, batch: Any) -> float:
    """Parent time over candidate time on ``batch``. The two run in turns of about BLOCK_S
    each (a few calls of a fast model, one of a slow one), and the figure is the median of
    the turns' ratios: load from elsewhere on the machine, which comes and goes over
    milliseconds to seconds, falls on both sides of a pair alike (timing each side for a
    long block let a burst land on one side only), while each side keeps its weights in
    the cache for the length of its turn, as it would serving."""
    calls = max(1, round(BLOCK_S / max(_warm(parent, batch), _warm(candidate, batch))))
    ratios: list[float] = []
    deadline = time.perf_counter() + 2 * TIMING_BUDGET_S
    while len(ratios) < MIN_PAIRS or (time.perf_counter() < deadline and len(ratios) < MAX_PAIRS):
        ratios.append(_turn(parent, batch, calls) / _turn(candidate, batch, calls))
    return float(np.median(ratios))


def _warm(predictor: Predictor, batch: Any) -> float:
    """Seconds of one call, after a few to warm up."""
    for _ in range(3):
        predictor.predict(batch)
    return max(_turn(predictor, batch, 1), 1e-9)


def _turn(predictor: Predictor, batch: Any, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        predictor.predict(batch)
    return max(time.perf_counter() - started, 1e-9)
