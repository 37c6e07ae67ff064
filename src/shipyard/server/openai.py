"""OpenAI-compatible ``POST /v1/embeddings`` for text-embedding models: the body names the
model, errors answer in OpenAI's error document."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.registry import ModelKind
from shipyard.runtime.predictor import TOKEN_COUNT
from shipyard.runtime.runner import ModelRunner
from shipyard.server.deployments import DeploymentManager
from shipyard.server.http import JSON, RequestHeaders, json_object
from shipyard.server.interface import ModelInterface
from shipyard.server.pipeline import InferenceProtocol

MAX_INPUTS = 2048


@dataclass(slots=True)
class EmbeddingsRequest:
    model: str
    payload: list[str]  # the texts
    rows: int
    encoding: str
    timeout_s: float | None = None  # the API has no deadline of its own


def parse_embeddings_request(body: bytes, headers: RequestHeaders) -> EmbeddingsRequest:
    document = json_object(body)
    model = document.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInputError("'model' must name a served text-embedding model")
    raw = document.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidInputError("'input' must be a string or a non-empty list of strings")
    if len(texts) > MAX_INPUTS:
        raise InvalidInputError(f"'input' has {len(texts)} strings; at most {MAX_INPUTS}")
    encoding = document.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise InvalidInputError("'encoding_format' must be 'float' or 'base64'")
    return EmbeddingsRequest(model, texts, len(texts), encoding)


def text_model(
    manager: DeploymentManager, request: EmbeddingsRequest
) -> tuple[ModelRunner, ModelInterface]:
    name = request.model
    try:
        runner, interface = manager.route(name, None)
    except NotFoundError:
        raise NotFoundError(f"no text-embedding model named {name!r} is served here") from None
    if runner.version.kind is not ModelKind.TEXT_EMBEDDING:
        raise InvalidInputError(f"model {name!r} is not a text-embedding model")
    return runner, interface


def encode_embeddings(
    interface: ModelInterface,
    request: EmbeddingsRequest,
    outputs: dict[str, np.ndarray],
    headers: list[tuple[bytes, bytes]],
) -> tuple[bytes, bytes]:
    vectors = outputs[interface.outputs[0].name]
    data: list[dict[str, Any]] = []
    for index, vector in enumerate(vectors):
        embedding: Any
        if request.encoding == "base64":
            embedding = base64.b64encode(vector.astype("<f4").tobytes()).decode()
        else:
            embedding = vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = int(outputs[TOKEN_COUNT].sum())
    document = {
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY), JSON


def error_document(status: int, message: str) -> bytes:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return orjson.dumps({"error": {"message": message, "type": kind, "code": status}})


class Embeddings(InferenceProtocol[EmbeddingsRequest]):
    model_in_body = True
    parse_body = staticmethod(parse_embeddings_request)
    route = staticmethod(text_model)
    encode = staticmethod(encode_embeddings)
    error_document = staticmethod(error_document)
