"""The few ASGI pieces the hot path needs, without a framework in between."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from shipyard.errors import (
    InvalidInputError,
    OverloadedError,
    PayloadTooLargeError,
    ShipyardError,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = b"application/json"
OCTETS = b"application/octet-stream"


class ClientDisconnected(Exception):
    """The client went away before its request was answered."""


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


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def error_headers(exc: ShipyardError) -> list[tuple[bytes, bytes]]:
    if isinstance(exc, OverloadedError):
        return [(b"retry-after", str(max(1, round(exc.retry_after_s))).encode())]
    return []


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
