"""Errors turned into HTTP answers, in one place, for every route and the management API.

A ShipyardError answers with the status its class carries; anything else is a bug, logged
and answered 500. The answer carries the request's ``x-request-id`` and, for an
OverloadedError, ``Retry-After``. Its body is the protocol's error document: OpenAI's for
``/v1/embeddings``, ``{"error": message}`` everywhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson

from shipyard.errors import OverloadedError, ShipyardError
from shipyard.server.http import JSON, Send, respond

log = logging.getLogger("shipyard.server")

ErrorDocument = Callable[[int, str], bytes]  # (status, message) -> body


def plain_error(status: int, message: str) -> bytes:
    return orjson.dumps({"error": message})


def error_answer(
    exc: Exception, request_id: bytes | None, document: ErrorDocument = plain_error
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) for ``exc``; no ``x-request-id`` where ``request_id`` is None."""
    if isinstance(exc, ShipyardError):
        status, message = exc.http_status, exc.message
    else:  # a bug, never bad input
        log.error("a request failed", exc_info=exc)
        status, message = 500, f"internal error ({type(exc).__name__}); see the server log"
    headers = [] if request_id is None else [(b"x-request-id", request_id)]
    if isinstance(exc, OverloadedError):
        headers.append((b"retry-after", str(max(1, round(exc.retry_after_s))).encode()))
    return status, headers, document(status, message)


async def respond_error(
    send: Send,
    exc: Exception,
    request_id: bytes,
    document: ErrorDocument = plain_error,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> int:
    """Answer ``exc`` (with ``extra`` headers, such as the version that failed); returns the
    status answered."""
    status, headers, body = error_answer(exc, request_id, document)
    await respond(send, status, body, JSON, headers + extra if extra else headers)
    return status
