"""Live performance: logged predictions joined to their ground-truth labels.

A classifier's prediction is its integer or string ``label`` output when it has one, else
the argmax of its first score output; accuracy and macro F1 follow. A regressor (one float
value per row) gets MAE and RMSE. Labels come one per row of the request (a list for a
request of several rows, a scalar for one row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError
from shipyard.registry import ModelKind, ModelVersion, Signature
from shipyard.registry.monitoring import StoredPrediction


def task_of(version: ModelVersion) -> str:
    """classification | regression | embedding, from the signature alone."""
    if version.kind is ModelKind.TEXT_EMBEDDING:
        return "embedding"
    outputs = version.signature.outputs
    if any(o.datatype in ("INT64", "INT32", "BYTES") for o in outputs):
        return "classification"
    first = outputs[0]
    if len(first.shape) >= 2 and first.shape[-1] not in (1, -1):
        return "classification"  # a score per class
    return "regression"


def check_label(task: str, label: Any) -> None:
    """A label of the wrong type is refused before anything is written."""
    values = label if isinstance(label, list) else [label]
    if not values:
        raise InvalidInputError("a label list must not be empty")
    for value in values:
        if task == "embedding":
            raise InvalidInputError("an embedding model has no labels to compare with")
        if task == "regression":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInputError(
                    f"labels of a regression model are numbers, got {type(value).__name__}"
                )
        elif isinstance(value, bool | float) and not (
            isinstance(value, float) and value.is_integer()
        ):
            raise InvalidInputError(
                "labels of a classifier are class ids (integers) or class names (strings), "
                f"got {value!r}"
            )
        elif not isinstance(value, int | float | str):
            raise InvalidInputError(
                "labels of a classifier are class ids (integers) or class names (strings), "
                f"got {type(value).__name__}"
            )


def predicted_values(signature: Signature, outputs: dict[str, Any], task: str) -> list[Any]:
    """What the model answered, one value per row of a logged request."""
    if task == "classification":
        for spec in signature.outputs:
            if spec.datatype in ("INT64", "INT32", "BYTES") and spec.name in outputs:
                return list(np.asarray(outputs[spec.name]).reshape(-1).tolist())
        scores = np.asarray(outputs[signature.outputs[0].name], dtype=np.float64)
        return list(scores.reshape(len(scores), -1).argmax(axis=1).tolist())
    values = np.asarray(outputs[signature.outputs[0].name], dtype=np.float64)
    return list(values.reshape(len(values), -1)[:, 0].tolist())


def performance(
    signature: Signature, task: str, predictions: Sequence[StoredPrediction]
) -> dict[str, Any]:
    """Metrics over the labelled predictions (empty when none is labelled)."""
    predicted: list[Any] = []
    truth: list[Any] = []
    for record in predictions:
        if record.label is None or record.outputs is None:
            continue
        answers = predicted_values(signature, record.outputs, task)
        labels = record.label if isinstance(record.label, list) else [record.label]
        if len(labels) != len(answers):
            continue  # a label list that does not fit its request is not guessed at
        predicted.extend(answers)
        truth.extend(labels)
    if not truth:
        return {}
    if task == "classification":
        p = np.asarray([str(_as_class(v)) for v in predicted])
        t = np.asarray([str(_as_class(v)) for v in truth])
        return {"rows": len(t), "accuracy": float(np.mean(p == t)), "f1": macro_f1(p, t)}
    error = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return {
        "rows": len(error),
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
    }


def macro_f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    scores = []
    for cls in np.unique(np.concatenate([predicted, truth])):
        tp = int(np.sum((predicted == cls) & (truth == cls)))
        fp = int(np.sum((predicted == cls) & (truth != cls)))
        fn = int(np.sum((predicted != cls) & (truth == cls)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def _as_class(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
