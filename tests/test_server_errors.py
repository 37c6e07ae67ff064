"""Bad input answers 4xx with a message naming the problem; nothing a client sends is a 500."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from server_helpers import binary_body, bytes_elements, v2_tiny
from shipyard.server import Server

TINY = "/v2/models/tiny/infer"
ROW = [1.0, 2.0, 3.0]


def _x(**fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": "x", "datatype": "FP32", "shape": [1, 3], "data": ROW}
    entry.update(fields)
    return {"inputs": [entry]}


def _without_data() -> dict[str, Any]:
    body = _x()
    del body["inputs"][0]["data"]
    return body


# JSON requests: (body, message) -> 400 ---------------------------------------------------------

JSON_CASES = {
    "unknown input": (
        {"inputs": [{"name": "z", "datatype": "FP32", "shape": [1, 3], "data": ROW}]},
        "unknown input 'z'; tiny takes x FP32 [-1, 3]",
    ),
    "wrong datatype": (_x(datatype="INT64"), "input 'x' expects datatype FP32, got 'INT64'"),
    "no datatype": (_x(datatype=None), "input 'x' expects datatype FP32, got None"),
    "wrong width": (_x(shape=[1, 4]), "input 'x' expects shape [-1, 3], got [1, 4]"),
    "wrong rank": (_x(shape=[3]), "input 'x' expects shape [-1, 3], got [3]"),
    "shape not a list": (
        _x(shape="1x3"),
        "input 'x': shape must be a list of non-negative integers, got '1x3'",
    ),
    "negative dimension": (
        _x(shape=[-1, 3]),
        "input 'x': shape must be a list of non-negative integers, got [-1, 3]",
    ),
    "too few elements": (_x(data=[1.0, 2.0]), "input 'x' has 2 elements; shape [1, 3] needs 3"),
    "too many elements": (
        _x(shape=[2, 3], data=ROW),
        "input 'x' has 3 elements; shape [2, 3] needs 6",
    ),
    "strings in FP32 data": (
        _x(data=["a", "b", "c"]),
        "input 'x' expects FP32 numbers; its data holds something else",
    ),
    "objects in FP32 data": (
        _x(data=[1, {"a": 1}, 3]),
        "input 'x' expects FP32 numbers; its data holds something else",
    ),
    "ragged data": (
        _x(shape=[2, 3], data=[[1, 2, 3], [4, 5]]),
        "input 'x' expects FP32 numbers; its data holds something else",
    ),
    "no rows": (_x(shape=[0, 3], data=[]), "the request has no rows (batch dimension 0)"),
    "neither data nor binary": (
        _without_data(),
        "input 'x' has neither 'data' nor binary_data_size",
    ),
    "binary size without binary body": (
        _x(parameters={"binary_data_size": 12}),
        "input 'x' has binary_data_size but the request has no "
        "Inference-Header-Content-Length header",
    ),
    "input twice": (
        {"inputs": [_x()["inputs"][0], _x()["inputs"][0]]},
        "input 'x' is given twice",
    ),
    "missing inputs": ({}, "the request needs a non-empty 'inputs' list"),
    "empty inputs": ({"inputs": []}, "the request needs a non-empty 'inputs' list"),
    "inputs not a list": ({"inputs": {"x": ROW}}, "the request needs a non-empty 'inputs' list"),
    "input not an object": ({"inputs": [ROW]}, "each entry of 'inputs' must be an object"),
    "body not an object": (
        [ROW],
        "the request body must be a JSON object with an 'inputs' list",
    ),
    "unknown output": (
        {**_x(), "outputs": [{"name": "z"}]},
        "unknown output 'z'; tiny returns y FP32 [-1, 2]",
    ),
    "outputs not a list": ({**_x(), "outputs": "y"}, "'outputs' must be a list"),
    "output parameters not an object": (
        {**_x(), "outputs": [{"name": "y", "parameters": "binary"}]},
        "output 'y': 'parameters' must be an object",
    ),
    "parameters not an object": ({**_x(), "parameters": [1]}, "'parameters' must be an object"),
    "id not a string": ({**_x(), "id": 7}, "'id' must be a string"),
    "negative timeout": (
        {**_x(), "parameters": {"timeout": -5}},
        "parameter 'timeout' must be a positive number of µs, got -5",
    ),
    "timeout not a number": (
        {**_x(), "parameters": {"timeout": "soon"}},
        "parameter 'timeout' must be a positive number of µs, got 'soon'",
    ),
}


@pytest.mark.parametrize(("body", "message"), JSON_CASES.values(), ids=JSON_CASES.keys())
def test_bad_json_request(http: Any, body: Any, message: str) -> None:
    response = http.post(TINY, content=orjson.dumps(body))
    assert response.status_code == 400, response.text
    assert response.json() == {"error": message}


def test_invalid_json_body(http: Any) -> None:
    response = http.post(TINY, content=b'{"inputs": [')
    assert response.status_code == 400
    assert response.json()["error"].startswith("the request body is not valid JSON: ")


def test_bad_input_on_a_version_path_and_the_classifier(http: Any) -> None:
    response = http.post("/v2/models/cancer/versions/1/infer", json=_x())
    assert response.status_code == 400
    assert response.json() == {
        "error": "unknown input 'x'; cancer takes input FP32 [-1, 30]",
    }
    response = http.post(
        "/v2/models/cancer/infer",
        json={"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": ROW}]},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "input 'input' expects shape [-1, 30], got [1, 3]"}


# Binary requests -------------------------------------------------------------------------------


def _binary_x(size: int, payload: bytes, shape: list[int] | None = None) -> Any:
    header = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": shape or [1, 3],
                "parameters": {"binary_data_size": size},
            }
        ]
    }
    return binary_body(header, payload)


ROW_BYTES = np.array([ROW], dtype="<f4").tobytes()

BINARY_CASES = {
    "too few bytes for the shape": (
        _binary_x(8, ROW_BYTES[:8]),
        "input 'x' has 8 bytes of binary data; shape [1, 3] of FP32 needs 12",
    ),
    "size beyond the body": (
        _binary_x(100, ROW_BYTES),
        "input 'x': binary_data_size 100 does not fit the 12 bytes left in the body",
    ),
    "size not an integer": (
        _binary_x("12", ROW_BYTES),  # type: ignore[arg-type]
        "input 'x': binary_data_size '12' does not fit the 12 bytes left in the body",
    ),
    "bytes nobody claims": (
        _binary_x(12, ROW_BYTES + b"\0\0\0\0"),
        "the body has 4 bytes of binary data no input claims",
    ),
}


@pytest.mark.parametrize(("request_", "message"), BINARY_CASES.values(), ids=BINARY_CASES.keys())
def test_bad_binary_request(http: Any, request_: Any, message: str) -> None:
    body, headers = request_
    response = http.post(TINY, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": message}


def test_valid_binary_request_for_contrast(http: Any) -> None:
    body, headers = _binary_x(12, ROW_BYTES)
    response = http.post(TINY, content=body, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "Inference-Header-Content-Length must be an integer"),
        ("99999", "Inference-Header-Content-Length is 99999; the body has 78 bytes"),
        ("-1", "Inference-Header-Content-Length is -1; the body has 78 bytes"),
    ],
)
def test_bad_header_length(http: Any, value: str, message: str) -> None:
    body = orjson.dumps(_x())
    assert len(body) == 78
    response = http.post(TINY, content=body, headers={"Inference-Header-Content-Length": value})
    assert response.status_code == 400
    assert response.json() == {"error": message}


# Text (BYTES) inputs ---------------------------------------------------------------------------


def _text(*elements: bytes) -> Any:
    header = {
        "inputs": [
            {
                "name": "text",
                "datatype": "BYTES",
                "shape": [len(elements)],
                "parameters": {"binary_data_size": len(bytes_elements(*elements))},
            }
        ]
    }
    return binary_body(header, bytes_elements(*elements))


def test_invalid_utf8_in_a_bytes_element(text_http: Any) -> None:
    body, headers = _text(b"fine", b"\xff\xfe broken", b"also fine")
    response = text_http.post("/v2/models/minilm/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"error": "input 'text' element 1 is not valid UTF-8"}


def test_truncated_bytes_element(text_http: Any) -> None:
    header = {
        "inputs": [
            {
                "name": "text",
                "datatype": "BYTES",
                "shape": [1],
                "parameters": {"binary_data_size": 6},
            }
        ]
    }
    body, headers = binary_body(header, (10).to_bytes(4, "little") + b"ab")
    response = text_http.post("/v2/models/minilm/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json() == {
        "error": "input 'text': a BYTES element claims 10 bytes, only 2 remain"
    }


def test_bytes_count_does_not_match_shape(text_http: Any) -> None:
    header = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": ["a", "b"]}]}
    response = text_http.post("/v2/models/minilm/infer", json=header)
    assert response.status_code == 400
    assert response.json() == {"error": "input 'text' has 2 elements; shape [3] needs 3"}


def test_numbers_for_a_bytes_input(text_http: Any) -> None:
    header = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a", 5]}]}
    response = text_http.post("/v2/models/minilm/infer", json=header)
    assert response.status_code == 400
    assert response.json() == {
        "error": "input 'text' is BYTES: its data must be strings, got int",
    }


# Not found -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/ghost/infer", "model 'ghost' is not served here"),
        ("/v2/models/ghost/versions/1/infer", "model 'ghost' is not served here"),
        (
            "/v2/models/tiny/versions/2/infer",
            "version 2 of 'tiny' is not loaded here; load it with "
            "POST /api/deployments/tiny/versions/2/load",
        ),
        ("/v1/models/ghost:predict", "model 'ghost' is not served here"),
        ("/v2/models/tiny/explode", "no route for /v2/models/tiny/explode"),
    ],
)
def test_unknown_model_or_version(http: Any, path: str, message: str) -> None:
    response = http.post(path, json=v2_tiny([ROW]))
    assert response.status_code == 404
    assert response.json() == {"error": message}


def test_version_that_is_not_a_number(http: Any) -> None:
    response = http.post("/v2/models/tiny/versions/latest/infer", json=v2_tiny([ROW]))
    assert response.status_code == 400
    assert response.json() == {"error": "version 'latest' is not a number"}


# Limits and headers ------------------------------------------------------------------------------


def test_body_over_the_limit_by_content_length(http: Any) -> None:
    body = b" " * (64 * 1024 + 1)
    response = http.post(TINY, content=body)
    assert response.status_code == 413
    assert response.json() == {"error": "the body has 65537 bytes; the limit is 65536"}


def test_streamed_body_over_the_limit(http: Any) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 8192

    response = http.post(TINY, content=chunks())
    assert response.status_code == 413
    assert response.json() == {"error": "the body has more than 65536 bytes (the limit)"}


def test_server_still_answers_after_refusing_a_large_body(http: Any) -> None:
    http.post(TINY, content=b" " * (100 * 1024))
    assert http.post(TINY, json=v2_tiny([ROW])).status_code == 200


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "X-Request-Timeout-Ms must be a number"),
        ("0", "X-Request-Timeout-Ms must be positive"),
        ("-10", "X-Request-Timeout-Ms must be positive"),
    ],
)
def test_bad_timeout_header(http: Any, value: str, message: str) -> None:
    response = http.post(TINY, json=v2_tiny([ROW]), headers={"X-Request-Timeout-Ms": value})
    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_bad_content_length_header(tensor_server: Server) -> None:
    """A hand-written request: the client library would not send this header wrong."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(tensor_server.url)
    assert parts.hostname is not None
    assert parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2x\r\n\r\n{}"
        )
        answer = sock.recv(65536)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500


# Fuzzing -----------------------------------------------------------------------------------------

ROUTES = [
    "/v2/models/tiny/infer",
    "/v2/models/cancer/infer",
    "/v2/models/cancer/versions/1/infer",
    "/v1/models/tiny:predict",
    "/v1/models/cancer:predict",
    "/v1/embeddings",
]
KEYS = [
    "inputs", "outputs", "parameters", "id", "name", "datatype", "shape", "data",
    "binary_data_size", "binary_data", "binary_data_output", "timeout", "instances", "model",
    "input", "encoding_format",
]  # fmt: skip
VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2.5, -1e30, 10**18, "", "x", "y", "z", "input", "FP32",
    "INT64", "BYTES", "tiny", "cancer", "float", "base64", "\u00e9\u6771", [], {}, [1, 3],
    [-1, 3], [0, 3], [1, 30], [[1, 2, 3]], [1.0, 2.0, 3.0], ["a", "b", "c"], [None], {"a": 1},
]  # fmt: skip


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.25:
        return {rng.choice(KEYS): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    if depth < 3 and roll < 0.45:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return rng.choice(VALUES)


def _mutated_request(rng: random.Random) -> Any:
    document: Any = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": ROW}],
        "outputs": [{"name": "y"}],
        "instances": [ROW],
        "model": "tiny",
        "input": "hello",
    }
    for _ in range(rng.randint(1, 4)):
        inputs = document.get("inputs")
        entry = inputs[0] if isinstance(inputs, list) and inputs else None
        target = entry if isinstance(entry, dict) and rng.random() < 0.6 else document
        target[rng.choice(KEYS)] = _random_value(rng)
    if rng.random() < 0.1:
        document = _random_value(rng)
    return document


def _garbage(rng: random.Random) -> tuple[bytes, dict[str, str]]:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 300)), {}
    if kind == 1:  # valid JSON text, cut short
        text = json.dumps(_mutated_request(rng)).encode()
        return text[: rng.randint(0, len(text))], {}
    if kind == 2:  # a binary request with a random header length
        head = json.dumps(_mutated_request(rng)).encode()
        body = head + rng.randbytes(rng.randint(0, 40))
        return body, {"Inference-Header-Content-Length": str(rng.randint(-5, len(body) + 5))}
    if kind == 3:
        return json.dumps(_random_value(rng)).encode(), {}
    return json.dumps(_mutated_request(rng)).encode(), {}


def test_fuzzed_bodies_never_get_a_server_error(http: Any) -> None:
    rng = random.Random(20240607)
    statuses: dict[int, int] = {}
    for i in range(400):
        body, headers = _garbage(rng)
        route = ROUTES[i % len(ROUTES)]
        response = http.post(route, content=body, headers=headers)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (route, body[:300], headers, response.text)
        if response.status_code != 200:
            document = response.json()
            assert "error" in document, response.text
    assert statuses.get(400, 0) > 100  # the fuzzing reached the validation, not only 404s


def test_fuzzed_text_requests_never_get_a_server_error(text_http: Any) -> None:
    rng = random.Random(7)
    routes = ["/v2/models/minilm/infer", "/v1/models/minilm:predict", "/v1/embeddings"]
    for i in range(60):
        if rng.random() < 0.5:
            elements = [rng.randbytes(rng.randint(0, 12)) for _ in range(rng.randint(1, 3))]
            raw = bytes_elements(*elements)
            header = {
                "inputs": [
                    {
                        "name": "text",
                        "datatype": "BYTES",
                        "shape": [rng.randint(0, 4)],
                        "parameters": {"binary_data_size": rng.randint(0, len(raw) + 2)},
                    }
                ]
            }
            body, headers = binary_body(header, raw)
        else:
            body, headers = _garbage(rng)
        route = routes[i % len(routes)]
        response = text_http.post(route, content=body, headers=headers)
        assert response.status_code < 500, (route, body[:300], response.text)
