"""KServe V1 ``:predict``: instances in, predictions out, for a classifier and a text model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from helpers import MINILM_REFERENCE


def test_classifier_predictions(
    http: Any, breast_cancer: tuple[np.ndarray, np.ndarray], tensor_predictors: dict[str, Any]
) -> None:
    x = breast_cancer[0][20:26]
    response = http.post("/v1/models/cancer:predict", json={"instances": x.tolist()})
    assert response.status_code == 200, response.text
    assert response.headers["x-model-version"] == "1"
    predictions = response.json()["predictions"]
    assert len(predictions) == 6
    expected = tensor_predictors["cancer"].predict(x)
    assert [p["label"] for p in predictions] == expected["label"].tolist()
    np.testing.assert_allclose(
        [p["probabilities"] for p in predictions], expected["probabilities"], rtol=1e-5, atol=1e-6
    )


def test_instances_as_objects_naming_the_input(http: Any) -> None:
    response = http.post(
        "/v1/models/tiny:predict",
        json={"instances": [{"x": [1.0, 2.0, 3.0]}, {"x": [0.0, 0.0, 0.0]}]},
    )
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        response.json()["predictions"], [[11.1, 1.3], [0.1, -0.2]], rtol=1e-5, atol=1e-6
    )


def test_text_predictions(text_http: Any, minilm_reference: Any) -> None:
    sentences = [*MINILM_REFERENCE[:3], "Ünïcödé ✓"]
    response = text_http.post("/v1/models/minilm:predict", json={"instances": sentences})
    assert response.status_code == 200, response.text
    vectors = np.array(response.json()["predictions"], dtype=np.float32)
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(vectors, minilm_reference.predict(sentences)["embedding"], atol=2e-5)


BAD_INSTANCES = {
    "no instances": ({}, 'the request needs a non-empty "instances" list'),
    "empty instances": ({"instances": []}, 'the request needs a non-empty "instances" list'),
    "instances not a list": (
        {"instances": "1,2,3"},
        'the request needs a non-empty "instances" list',
    ),
    "body not an object": ([[1, 2, 3]], 'the request needs a non-empty "instances" list'),
    "ragged": ({"instances": [[1, 2, 3], [1, 2]]}, "input 'x': the instances are ragged"),
    "wrong width": (
        {"instances": [[1, 2, 3, 4]]},
        "input 'x' expects shape [-1, 3], got [1, 4] (axis 1)",
    ),
    "strings": ({"instances": [["a", "b", "c"]]}, "input 'x' expects FP32, got <U1"),
    "nulls": ({"instances": [[None, 1, 2]]}, "input 'x' expects FP32, got object"),
    "scalars, not rows": (
        {"instances": [1, 2, 3]},
        "input 'x': each instance must be one row of shape [3]",
    ),
    "object without the input": (
        {"instances": [{"z": [1, 2, 3]}]},
        "an instance lacks input 'x'",
    ),
}


@pytest.mark.parametrize(("body", "message"), BAD_INSTANCES.values(), ids=BAD_INSTANCES.keys())
def test_bad_instances(http: Any, body: Any, message: str) -> None:
    response = http.post("/v1/models/tiny:predict", json=body)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": message}


def test_bad_text_instances(text_http: Any) -> None:
    response = text_http.post("/v1/models/minilm:predict", json={"instances": ["ok", 3]})
    assert response.status_code == 400
    assert response.json() == {"error": "minilm takes strings as instances"}


def test_invalid_json(http: Any) -> None:
    response = http.post("/v1/models/tiny:predict", content=b"{instances: [1]}")
    assert response.status_code == 400
    assert response.json()["error"].startswith("the request body is not valid JSON: ")


def test_unknown_model(http: Any) -> None:
    response = http.post("/v1/models/ghost:predict", json={"instances": [[1, 2, 3]]})
    assert response.status_code == 404
    assert response.json() == {"error": "model 'ghost' is not served here"}
