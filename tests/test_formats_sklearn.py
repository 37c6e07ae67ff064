"""scikit-learn estimators and Pipelines, converted with skl2onnx and checked for parity."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from helpers import blob_files, tmp_files, version_rows
from shipyard import Registry, Settings
from shipyard.errors import (
    ConversionError,
    InvalidInputError,
    ModelNotFoundError,
    ParityError,
    UnsafeInputError,
)
from shipyard.registry import ModelKind, TensorSpec


def test_gradient_boosting_with_reference_csv(
    registry: Registry, cancer_classifier: Any, cancer_csv: Path, breast_cancer: Any
) -> None:
    x, _ = breast_cancer
    version = shipyard.register(
        cancer_classifier, "cancer", reference_data=cancer_csv, registry=registry
    )
    assert version.flavor == "sklearn"
    assert version.kind is ModelKind.TENSOR
    assert version.signature.inputs == (TensorSpec("input", "FP32", (-1, 30)),)
    assert {o.name for o in version.signature.outputs} == {"label", "probabilities"}

    parity = version.conversion["parity"]
    assert parity["passed"] is True
    assert parity["metric"] == "max_abs_diff"
    assert 0 <= parity["value"] < 1e-4
    assert parity["tolerance"] == 1e-4
    assert parity["rows"] == 200
    assert parity["label_agreement"] == 1.0
    assert version.conversion["estimator"] == "GradientBoostingClassifier"
    assert version.conversion["task"] == "classification"
    assert version.conversion["reference_data"]["file"] == "reference.npy"
    assert version.conversion["reference_data"]["rows"] == 200
    assert {f.path for f in version.files} == {"model.onnx", "reference.npy"}
    assert np.asarray(version.input_example).shape == (3, 30)

    predictor = shipyard.load("cancer", registry=registry)
    outputs = predictor.predict(x)
    np.testing.assert_array_equal(outputs["label"], cancer_classifier.predict(x))
    np.testing.assert_allclose(
        outputs["probabilities"], cancer_classifier.predict_proba(x), atol=1e-5
    )


def test_example_input_instead_of_reference(
    registry: Registry, cancer_logistic: Any, breast_cancer: Any
) -> None:
    x, _ = breast_cancer
    version = shipyard.register(cancer_logistic, "logistic", example_input=x[:5], registry=registry)
    assert version.conversion["parity"]["passed"] is True
    assert version.conversion["parity"]["rows"] == 5
    assert "reference_data" not in version.conversion
    assert [f.path for f in version.files] == ["model.onnx"]
    outputs = shipyard.load("logistic", registry=registry).predict(x[:50])
    np.testing.assert_array_equal(outputs["label"], cancer_logistic.predict(x[:50]))


def test_pipeline(registry: Registry, breast_cancer: Any, cancer_csv: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = breast_cancer
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("model", LogisticRegression(max_iter=1000))]
    ).fit(x, y)
    version = shipyard.register(pipeline, "pipeline", reference_data=cancer_csv, registry=registry)
    assert version.conversion["estimator"] == "Pipeline"
    assert version.conversion["parity"]["passed"] is True
    outputs = shipyard.load("pipeline", registry=registry).predict(x)
    np.testing.assert_array_equal(outputs["label"], pipeline.predict(x))
    np.testing.assert_allclose(outputs["probabilities"], pipeline.predict_proba(x), atol=1e-4)


def test_regressor(registry: Registry) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    ridge = Ridge(alpha=0.5).fit(x, y)
    version = shipyard.register(ridge, "diabetes", example_input=x[:20], registry=registry)
    assert version.conversion["task"] == "regression"
    assert version.conversion["parity"]["passed"] is True
    assert version.signature.inputs == (TensorSpec("input", "FP32", (-1, 10)),)
    (output,) = shipyard.load("diabetes", registry=registry).predict(x).values()
    np.testing.assert_allclose(output.reshape(-1), ridge.predict(x), rtol=1e-4, atol=1e-3)


def test_pickled_estimator_needs_trust(
    settings: Settings, cancer_classifier: Any, cancer_csv: Path, tmp_path: Path
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(cancer_classifier))
    with pytest.raises(UnsafeInputError, match="unpickling runs arbitrary code"):
        shipyard.register(path, "pickled", reference_data=cancer_csv, settings=settings)
    version = shipyard.register(
        path, "pickled", reference_data=cancer_csv, trust_pickle=True, settings=settings
    )
    assert version.flavor == "pickle"
    assert version.conversion["pickled"] is True
    assert version.conversion["parity"]["passed"] is True


def test_corrupt_pickle(settings: Settings, cancer_csv: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"definitely not a pickle")
    with pytest.raises(ConversionError, match=r"cannot unpickle .*model\.pkl"):
        shipyard.register(
            path, "pickled", reference_data=cancer_csv, trust_pickle=True, settings=settings
        )


# Parity ------------------------------------------------------------------------------------


def test_parity_refusal_registers_nothing(
    settings: Settings, cancer_logistic: Any, cancer_csv: Path
) -> None:
    with pytest.raises(ParityError, match="does not match the source model") as info:
        shipyard.register(
            cancer_logistic,
            "strict",
            reference_data=cancer_csv,
            tolerance=1e-12,
            settings=settings,
        )
    assert "tolerance 1e-12" in info.value.message
    assert "Nothing was registered" in info.value.message
    with Registry(settings) as registry, pytest.raises(ModelNotFoundError, match="'strict'"):
        registry.get_model("strict")
    assert version_rows(settings) == 0
    assert blob_files(settings) == []
    assert tmp_files(settings) == []


def test_parity_failure_allowed(registry: Registry, cancer_logistic: Any, cancer_csv: Path) -> None:
    version = shipyard.register(
        cancer_logistic,
        "lenient",
        reference_data=cancer_csv,
        tolerance=1e-12,
        allow_parity_failure=True,
        registry=registry,
    )
    parity = registry.get_version("lenient:1").conversion["parity"]
    assert parity == version.conversion["parity"]
    assert parity["passed"] is False
    assert parity["tolerance"] == 1e-12
    assert 1e-12 < parity["value"] < 1e-4


# Bad input ---------------------------------------------------------------------------------


def test_no_reference_and_no_example(settings: Settings, cancer_classifier: Any) -> None:
    with pytest.raises(InvalidInputError, match="needs reference data or an input example"):
        shipyard.register(cancer_classifier, "cancer", settings=settings)
    assert version_rows(settings) == 0


def test_unfitted_estimator(settings: Settings, breast_cancer: Any) -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    x, _ = breast_cancer
    with pytest.raises(ConversionError, match="does not look fitted"):
        shipyard.register(
            GradientBoostingClassifier(), "unfitted", example_input=x[:3], settings=settings
        )
    assert version_rows(settings) == 0
    assert blob_files(settings) == []


def test_estimator_skl2onnx_cannot_convert(settings: Settings, breast_cancer: Any) -> None:
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Majority(ClassifierMixin, BaseEstimator):
        def fit(self, x: Any, y: Any) -> Any:
            self.n_features_in_ = np.asarray(x).shape[1]
            self.classes_ = np.unique(y)
            return self

        def predict(self, x: Any) -> Any:
            return np.full(len(x), self.classes_[0])

    x, y = breast_cancer
    with pytest.raises(ConversionError, match="skl2onnx cannot convert Majority"):
        shipyard.register(Majority().fit(x, y), "custom", example_input=x[:3], settings=settings)
    assert version_rows(settings) == 0


def test_example_with_the_wrong_width(settings: Settings, cancer_classifier: Any) -> None:
    from shipyard.errors import SignatureMismatchError

    with pytest.raises(SignatureMismatchError, match=r"expects \[n, 30\]"):
        shipyard.register(
            cancer_classifier, "cancer", example_input=np.zeros((4, 29)), settings=settings
        )
    assert version_rows(settings) == 0


def test_example_of_strings(settings: Settings, cancer_classifier: Any) -> None:
    from shipyard.errors import SignatureMismatchError

    with pytest.raises(SignatureMismatchError, match="the samples are not rows of numbers"):
        shipyard.register(
            cancer_classifier, "cancer", example_input=[["a"] * 30], settings=settings
        )


def test_ragged_example(settings: Settings, cancer_classifier: Any) -> None:
    with pytest.raises(InvalidInputError, match="not a rectangular array"):
        shipyard.register(
            cancer_classifier, "cancer", example_input=[[1.0] * 30, [2.0]], settings=settings
        )


def test_reference_the_estimator_refuses(
    settings: Settings, cancer_logistic: Any, breast_cancer: Any, tmp_path: Path
) -> None:
    x, _ = breast_cancer
    rows = x[:10].copy()
    rows[3, 4] = np.nan
    path = tmp_path / "with-nan.npy"
    np.save(path, rows)
    with pytest.raises(InvalidInputError, match="LogisticRegression cannot predict the samples"):
        shipyard.register(cancer_logistic, "nan", reference_data=path, settings=settings)
    assert version_rows(settings) == 0
    assert blob_files(settings) == []
