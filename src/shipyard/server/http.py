"""The few ASGI pieces the hot path needs, without a framework in between: the request's
headers, its bearer token, its id, its body, and the response."""

from __future__ import annotations

import hmac
import itertools
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from shipyard.errors import (
    ForbiddenError,
    InvalidInputError,
    PayloadTooLargeError,
    UnauthorizedError,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = b"application/json"
OCTETS = b"application/octet-stream"
TIMEOUT_HEADER = b"x-request-timeout-ms"


class ClientDisconnected(Exception):
    """The client went away before its request was answered."""


@dataclass(slots=True)
class RequestHeaders:
    content_length: int | None = None
    header_length: int | None = None
    request_id: bytes | None = None
    authorization: bytes | None = None
    timeout_ms: float | None = None


def read_headers(scope: Scope) -> RequestHeaders:
    found = RequestHeaders()
    for key, value in scope["headers"]:
        if key == b"content-length":
            found.content_length = _int(value, "Content-Length")
        elif key == b"inference-header-content-length":
            found.header_length = _int(value, "Inference-Header-Content-Length")
        elif key == b"x-request-id":
            found.request_id = value[:128]
        elif key == b"authorization":
            found.authorization = value
        elif key == TIMEOUT_HEADER:
            try:
                found.timeout_ms = float(value)
            except ValueError:
                raise InvalidInputError("X-Request-Timeout-Ms must be a number") from None
            if found.timeout_ms <= 0:
                raise InvalidInputError("X-Request-Timeout-Ms must be positive")
    return found


def _int(value: bytes, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInputError(f"{name} must be an integer") from None


def check_bearer(header: bytes | str | None, token: str | None) -> None:
    """Nothing to check without a token; else 401 without credentials, 403 with wrong ones."""
    if not token:
        return
    if header is None:
        raise UnauthorizedError("this endpoint needs 'Authorization: Bearer <token>'")
    text = header.decode(errors="replace") if isinstance(header, bytes) else header
    scheme, _, given = text.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise UnauthorizedError("this endpoint needs 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ForbiddenError("the bearer token is not valid here")


class RequestIds:
    """The ``x-request-id`` of each answer: the client's own, else a new one of this server's."""

    __slots__ = ("_counter", "_prefix")

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._prefix = os.urandom(4).hex()  # ids stay distinct across replicas and restarts

    def new(self) -> bytes:
        return f"{self._prefix}-{next(self._counter):x}".encode()

    def of(self, scope: Scope) -> bytes:
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                return bytes(value[:128])
        return self.new()


async def read_body(receive: Receive, content_length: int | None, limit: int) -> bytes:
    if content_length is not None and content_length > limit:
        raise PayloadTooLargeError(f"the body has {content_length} bytes; the limit is {limit}")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLargeError(f"the body has more than {limit} bytes (the limit)")
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"the body has more than {limit} bytes (the limit)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    raw_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        raw_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def json_value(body: bytes | memoryview) -> Any:
    """Decode JSON, or raise the 400 every route answers for a malformed body."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"the request body is not valid JSON: {exc}") from None


def json_object(body: bytes | memoryview, expected: str = "a JSON object") -> dict[str, Any]:
    document = json_value(body)
    if not isinstance(document, dict):
        raise InvalidInputError(f"the request body must be {expected}")
    return document
