"""scikit-learn estimators and Pipelines, converted with skl2onnx."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import (
    ConversionError,
    InvalidInputError,
    MissingDependencyError,
    SignatureMismatchError,
)
from shipyard.formats.base import Converted, Parity, Samples
from shipyard.formats.parity import numeric_parity
from shipyard.registry.domain import ModelKind
from shipyard.runtime.predictor import MODEL_FILE, Predictor
from shipyard.runtime.session import make_session, session_signature

INPUT_NAME = "input"


def _final_estimator(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def convert_sklearn(
    estimator: Any, staging: Path, samples: Samples | None, tolerance: float
) -> Converted:
    try:
        import skl2onnx
        import sklearn
        from skl2onnx.common.data_types import FloatTensorType
        from sklearn.base import is_classifier
    except ImportError:
        raise MissingDependencyError.for_extra("scikit-learn/skl2onnx", "sklearn") from None

    if isinstance(samples, list):
        raise SignatureMismatchError(
            "a scikit-learn model takes rows of numbers; the reference data or example holds "
            "lines of text"
        )
    if samples is None:
        raise InvalidInputError(
            "a scikit-learn model needs reference data or an input example (rows of numbers) "
            "to check the ONNX conversion against"
        )
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is None:
        raise ConversionError(
            f"{type(estimator).__name__} does not look fitted (no n_features_in_); fit it first"
        )
    feature_names = getattr(estimator, "feature_names_in_", None)
    classifier = bool(is_classifier(estimator))
    options = {id(_final_estimator(estimator)): {"zipmap": False}} if classifier else None
    try:
        onx = skl2onnx.convert_sklearn(
            estimator,
            initial_types=[(INPUT_NAME, FloatTensorType([None, int(n_features)]))],
            options=options,
        )
    except Exception as exc:
        raise ConversionError(
            f"skl2onnx cannot convert {type(estimator).__name__}: {exc}".splitlines()[0]
        ) from None
    target = staging / MODEL_FILE
    target.write_bytes(onx.SerializeToString())
    signature = session_signature(make_session(str(target)))
    predictor = Predictor({MODEL_FILE: target.read_bytes()}, signature, ModelKind.TENSOR)

    try:
        rows = np.asarray(samples, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise SignatureMismatchError(f"the samples are not rows of numbers: {exc}") from None
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.ndim != 2 or rows.shape[1] != n_features:
        raise SignatureMismatchError(
            f"the samples have shape {list(rows.shape)}; {type(estimator).__name__} expects "
            f"[n, {n_features}]"
        )
    # Both sides see the same float32 values, so only the computation differs.
    source_input: Any = rows.astype(np.float64)
    if feature_names is not None:
        source_input = _frame(source_input, list(feature_names))
    outputs = predictor.predict(rows)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if classifier:
                parity = _classifier_parity(estimator, source_input, outputs, tolerance, len(rows))
            else:
                expected = np.asarray(estimator.predict(source_input), dtype=np.float64)
                (actual,) = outputs.values()
                parity = numeric_parity([expected], [actual], tolerance, len(rows))
    except Exception as exc:  # the estimator refuses the samples (NaN, no rows, ...)
        raise InvalidInputError(
            f"{type(estimator).__name__} cannot predict the samples: {exc}".splitlines()[0]
        ) from None
    return Converted(
        "sklearn",
        ModelKind.TENSOR,
        {MODEL_FILE: target},
        signature,
        parity,
        feature_names=[str(n) for n in feature_names] if feature_names is not None else None,
        details={
            "estimator": type(estimator).__name__,
            "converter": f"skl2onnx {skl2onnx.__version__}",
            "source_library": f"scikit-learn {sklearn.__version__}",
            "task": "classification" if classifier else "regression",
        },
    )


def _frame(rows: np.ndarray, names: list[str]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows, columns=names)


def _classifier_parity(
    estimator: Any, rows: Any, outputs: dict[str, np.ndarray], tolerance: float, n: int
) -> Parity:
    labels = np.asarray(estimator.predict(rows))
    onnx_labels = outputs["label"].reshape(-1)
    if hasattr(estimator, "predict_proba") and "probabilities" in outputs:
        probabilities = np.asarray(estimator.predict_proba(rows), dtype=np.float64)
        parity = numeric_parity([probabilities], [outputs["probabilities"]], tolerance, n)
        # A label may flip where two classes tie within the tolerance; anywhere else it is a bug.
        top2 = np.sort(probabilities, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 2 * tolerance
    else:
        parity = Parity("max_abs_diff", 0.0, tolerance, True, n)
        clear = np.ones(len(labels), dtype=bool)
    mismatched = labels.astype(str) != onnx_labels.astype(str)
    parity.extra["label_agreement"] = float(1.0 - mismatched.mean()) if len(labels) else 1.0
    if np.any(mismatched & clear):
        parity.passed = False
    return parity
