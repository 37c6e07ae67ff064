"""OpenAI-compatible ``POST /v1/embeddings`` for text-embedding models."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson

from shipyard.errors import InvalidInputError
from shipyard.server.http import json_object

MAX_INPUTS = 2048


def parse_embeddings_request(body: bytes) -> tuple[str, list[str], str]:
    """(model name, texts, encoding format)."""
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
    return model, texts, encoding


def encode_embeddings(
    model: str, vectors: np.ndarray, token_counts: np.ndarray, encoding: str
) -> bytes:
    data: list[dict[str, Any]] = []
    for index, vector in enumerate(vectors):
        embedding: Any
        if encoding == "base64":
            embedding = base64.b64encode(vector.astype("<f4").tobytes()).decode()
        else:
            embedding = vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = int(token_counts.sum())
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def error_document(status: int, message: str) -> bytes:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return orjson.dumps({"error": {"message": message, "type": kind, "code": status}})
