"""OpenAI-compatible ``POST /v1/embeddings`` through the official ``openai`` client."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import numpy as np
import openai
import pytest

from helpers import MINILM_REFERENCE
from server_helpers import HANG_GUARD_S, client
from shipyard.server import Server


def _openai(server: Server) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=HANG_GUARD_S
    )


@pytest.fixture(scope="module")
def embeddings(minilm_server: Server) -> Iterator[openai.OpenAI]:
    with _openai(minilm_server) as c:
        yield c


def _cosine(a: Any, b: Any) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.asarray((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))


def test_one_string_with_the_default_encoding(
    embeddings: openai.OpenAI, minilm_reference: Any
) -> None:
    """The client asks for base64 unless told otherwise, and decodes it itself."""
    result = embeddings.embeddings.create(model="minilm", input=MINILM_REFERENCE[0])
    assert result.object == "list"
    assert result.model == "minilm"
    assert len(result.data) == 1
    assert result.data[0].index == 0
    assert result.data[0].object == "embedding"
    vector = np.asarray(result.data[0].embedding)
    assert vector.shape == (384,)
    expected = minilm_reference.predict(MINILM_REFERENCE[0])["embedding"][0]
    assert _cosine(vector, expected) > 0.9999
    assert result.usage.prompt_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_a_list_of_strings(embeddings: openai.OpenAI, minilm_reference: Any, encoding: Any) -> None:
    texts = [*MINILM_REFERENCE, "Ein kurzer Satz mit Umlauten: äöü ß."]
    result = embeddings.embeddings.create(model="minilm", input=texts, encoding_format=encoding)
    assert [d.index for d in result.data] == list(range(len(texts)))
    if encoding == "base64":  # asked for explicitly, the client hands the strings over as sent
        assert all(isinstance(d.embedding, str) for d in result.data)
        vectors = np.asarray(
            [np.frombuffer(base64.b64decode(str(d.embedding)), dtype="<f4") for d in result.data]
        )
    else:
        vectors = np.asarray([d.embedding for d in result.data])
    assert vectors.shape == (len(texts), 384)
    expected = minilm_reference.predict(texts)["embedding"]
    assert (_cosine(vectors, expected) > 0.9999).all()
    single = embeddings.embeddings.create(model="minilm", input=texts[:1])
    assert 0 < single.usage.prompt_tokens < result.usage.prompt_tokens


def test_raw_base64_is_little_endian_float32(minilm_server: Server, minilm_reference: Any) -> None:
    with client(minilm_server) as http:
        response = http.post(
            "/v1/embeddings",
            json={"model": "minilm", "input": ["hello world"], "encoding_format": "base64"},
        )
    assert response.status_code == 200, response.text
    raw = base64.b64decode(response.json()["data"][0]["embedding"])
    vector = np.frombuffer(raw, dtype="<f4")
    expected = minilm_reference.predict("hello world")["embedding"][0]
    assert _cosine(vector, expected) > 0.9999


def test_a_tensor_model_is_refused(tensor_server: Server) -> None:
    with _openai(tensor_server) as c, pytest.raises(openai.BadRequestError) as info:
        c.embeddings.create(model="cancer", input="hello")
    assert info.value.status_code == 400
    assert info.value.body == {
        "message": "model 'cancer' is not a text-embedding model",
        "type": "invalid_request_error",
        "code": 400,
    }


def test_unknown_model(embeddings: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        embeddings.embeddings.create(model="ada-002", input="hello")
    assert info.value.status_code == 404
    assert isinstance(info.value.body, dict)
    assert info.value.body["message"] == "no text-embedding model named 'ada-002' is served here"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": "hi"}, "'model' must name a served text-embedding model"),
        (
            {"model": "minilm", "input": []},
            "'input' must be a string or a non-empty list of strings",
        ),
        (
            {"model": "minilm", "input": [1, 2]},
            "'input' must be a string or a non-empty list of strings",
        ),
        (
            {"model": "minilm", "input": "hi", "encoding_format": "int8"},
            "'encoding_format' must be 'float' or 'base64'",
        ),
        (["minilm"], "the request body must be a JSON object"),
    ],
)
def test_bad_requests(minilm_server: Server, body: Any, message: str) -> None:
    with client(minilm_server) as http:
        response = http.post("/v1/embeddings", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "error": {"message": message, "type": "invalid_request_error", "code": 400}
    }
