"""Open Inference Protocol (V2) inference: tritonclient with binary and JSON tensors, raw JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton

from helpers import MINILM_REFERENCE, tiny_expected
from server_helpers import client, triton_url
from shipyard.server import Server

NON_ASCII = ["Grüße aus Köln, schöne Straße", "東京は晴れです", "naïve café — déjà vu 🚀", ""]


@pytest.fixture(scope="module")
def tensors(tensor_server: Server) -> Iterator[Any]:
    tc = triton.InferenceServerClient(triton_url(tensor_server))
    try:
        yield tc
    finally:
        tc.close()


@pytest.fixture(scope="module")
def texts(minilm_server: Server) -> Iterator[Any]:
    tc = triton.InferenceServerClient(triton_url(minilm_server))
    try:
        yield tc
    finally:
        tc.close()


@pytest.fixture(scope="module")
def rows(breast_cancer: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    x, _ = breast_cancer
    return x[:16].astype(np.float32)


def _input(name: str, array: np.ndarray, datatype: str, binary: bool = True) -> Any:
    item = triton.InferInput(name, list(array.shape), datatype)
    item.set_data_from_numpy(array, binary_data=binary)
    return item


@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_classifier_fp32_in_int64_and_fp32_out(
    tensors: Any,
    rows: np.ndarray,
    tensor_predictors: dict[str, Any],
    binary_in: bool,
    binary_out: bool,
) -> None:
    outputs = [
        triton.InferRequestedOutput("label", binary_data=binary_out),
        triton.InferRequestedOutput("probabilities", binary_data=binary_out),
    ]
    result = tensors.infer("cancer", [_input("input", rows, "FP32", binary_in)], outputs=outputs)
    expected = tensor_predictors["cancer"].predict(rows)

    label = result.as_numpy("label")
    probabilities = result.as_numpy("probabilities")
    assert label.dtype == np.int64
    assert label.shape == (16,)
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (16, 2)
    np.testing.assert_array_equal(label, expected["label"])
    np.testing.assert_allclose(probabilities, expected["probabilities"], rtol=1e-6, atol=1e-7)

    response = result.get_response()
    assert response["model_name"] == "cancer"
    assert response["model_version"] == "1"
    by_name = {o["name"]: o for o in response["outputs"]}
    assert by_name["label"]["datatype"] == "INT64"
    assert by_name["probabilities"]["datatype"] == "FP32"
    for output in response["outputs"]:
        assert ("binary_data_size" in output.get("parameters", {})) is binary_out
        assert ("data" in output) is not binary_out


def test_default_request_answers_binary_outputs(
    tensors: Any, rows: np.ndarray, tensor_predictors: dict[str, Any]
) -> None:
    """tritonclient's defaults: binary inputs, every output in binary form."""
    result = tensors.infer("cancer", [_input("input", rows[:3], "FP32")])
    response = result.get_response()
    assert {o["name"] for o in response["outputs"]} == {"label", "probabilities"}
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
    expected = tensor_predictors["cancer"].predict(rows[:3])
    np.testing.assert_array_equal(result.as_numpy("label"), expected["label"])


@pytest.mark.parametrize("binary_out", [True, False])
def test_only_the_requested_output(
    tensors: Any, rows: np.ndarray, tensor_predictors: dict[str, Any], binary_out: bool
) -> None:
    result = tensors.infer(
        "cancer",
        [_input("input", rows[:4], "FP32")],
        outputs=[triton.InferRequestedOutput("probabilities", binary_data=binary_out)],
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("label") is None
    np.testing.assert_allclose(
        result.as_numpy("probabilities"),
        tensor_predictors["cancer"].predict(rows[:4])["probabilities"],
        rtol=1e-6,
        atol=1e-7,
    )


def test_explicit_version_path(tensors: Any, tensor_predictors: dict[str, Any]) -> None:
    x = np.array([[1.0, 2.0, 3.0], [-0.5, 0.0, 4.25]], dtype=np.float32)
    result = tensors.infer("tiny", [_input("x", x, "FP32")], model_version="1")
    assert result.get_response()["model_version"] == "1"
    np.testing.assert_allclose(result.as_numpy("y"), tiny_expected(x), rtol=1e-6)
    np.testing.assert_allclose(
        result.as_numpy("y"), tensor_predictors["tiny"].predict(x)["y"], rtol=1e-6
    )


def test_request_id_is_echoed_in_the_body(tensors: Any) -> None:
    x = np.ones((1, 3), dtype=np.float32)
    result = tensors.infer("tiny", [_input("x", x, "FP32")], request_id="req-42")
    assert result.get_response()["id"] == "req-42"


@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
def test_text_bytes_input_with_non_ascii(
    texts: Any, minilm_reference: Any, binary_in: bool
) -> None:
    strings = [*MINILM_REFERENCE[:2], *NON_ASCII]
    array = np.array(strings, dtype=object)
    result = texts.infer(
        "minilm",
        [_input("text", array, "BYTES", binary_in)],
        outputs=[triton.InferRequestedOutput("embedding", binary_data=not binary_in)],
    )
    embedding = result.as_numpy("embedding")
    assert embedding.dtype == np.float32
    assert embedding.shape == (len(strings), 384)
    expected = minilm_reference.predict(strings)["embedding"]
    np.testing.assert_allclose(embedding, expected, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-5)


def test_raw_json_request_and_headers(
    tensor_server: Server, tensor_predictors: dict[str, Any]
) -> None:
    x = [[0.5, -1.0, 2.0], [3.0, 3.0, 3.0], [0.0, 0.0, 0.0]]
    body = {
        "id": "abc",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 3], "data": x}],
    }
    with client(tensor_server) as http:
        response = http.post(
            "/v2/models/tiny/infer", json=body, headers={"X-Request-Id": "trace-123"}
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-model-version"] == "1"
        assert response.headers["x-request-id"] == "trace-123"
        document = response.json()
        assert set(document) == {"model_name", "model_version", "outputs", "id"}
        assert document["model_name"] == "tiny"
        assert document["model_version"] == "1"
        assert document["id"] == "abc"
        (output,) = document["outputs"]
        assert output["name"] == "y"
        assert output["datatype"] == "FP32"
        assert output["shape"] == [3, 2]
        np.testing.assert_allclose(
            np.array(output["data"], dtype=np.float32).reshape(3, 2),
            tensor_predictors["tiny"].predict(np.array(x))["y"],
            rtol=1e-6,
        )

        # Without an X-Request-Id the server makes one up, a new one per request.
        generated = [
            http.post("/v2/models/tiny/infer", json=body).headers["x-request-id"] for _ in range(2)
        ]
        assert all(generated)
        assert generated[0] != generated[1]
        assert "trace-123" not in generated


def test_raw_json_nested_data_and_ints_for_floats(tensor_server: Server) -> None:
    """JSON data may be nested like the shape, and integer literals are fine for FP32."""
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [[1, 2, 3]]}]}
    with client(tensor_server) as http:
        response = http.post("/v2/models/tiny/infer", json=body)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        response.json()["outputs"][0]["data"],
        tiny_expected(np.array([[1, 2, 3]])).ravel(),
        rtol=1e-6,
    )


def test_binary_data_output_parameter(tensor_server: Server) -> None:
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    body = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": x.ravel().tolist()}],
        "parameters": {"binary_data_output": True},
    }
    with client(tensor_server) as http:
        response = http.post("/v2/models/tiny/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    header_length = int(response.headers["inference-header-content-length"])
    import orjson

    header = orjson.loads(response.content[:header_length])
    (output,) = header["outputs"]
    assert output["parameters"] == {"binary_data_size": 8}
    values = np.frombuffer(response.content[header_length:], dtype="<f4").reshape(1, 2)
    np.testing.assert_allclose(values, tiny_expected(x), rtol=1e-6)
