"""One mapping from an error to an HTTP answer: status, headers and the protocol's document."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

import shipyard.errors
from server_helpers import asgi_call, server_settings
from shipyard.errors import (
    ModelNotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    ShipyardError,
)
from shipyard.server import ShipyardApp, openai
from shipyard.server.errors import ErrorDocument, error_answer, plain_error, respond_error

ERROR_CLASSES = sorted(
    (
        cls
        for _, cls in inspect.getmembers(shipyard.errors, inspect.isclass)
        if issubclass(cls, ShipyardError)
    ),
    key=lambda cls: cls.__name__,
)
DOCUMENTS: dict[str, ErrorDocument] = {"plain": plain_error, "openai": openai.error_document}


def _plain_body(status: int, message: str) -> Any:
    return {"error": message}


def _openai_body(status: int, message: str) -> Any:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "code": status}}


EXPECTED_BODY = {"plain": _plain_body, "openai": _openai_body}


def test_every_error_class_is_covered() -> None:
    assert len(ERROR_CLASSES) >= 20
    assert {c.http_status for c in ERROR_CLASSES} == {
        400, 401, 403, 404, 409, 413, 422, 500, 503, 504, 507,
    }  # fmt: skip


@pytest.mark.parametrize("protocol", DOCUMENTS)
@pytest.mark.parametrize("error_class", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_each_error_class_and_protocol(error_class: type[ShipyardError], protocol: str) -> None:
    exc = error_class("what went wrong, and how to fix it")
    status, headers, body = error_answer(exc, b"req-7", DOCUMENTS[protocol])
    assert status == error_class.http_status
    if error_class is OverloadedError:
        assert headers == [(b"x-request-id", b"req-7"), (b"retry-after", b"1")]
    else:
        assert headers == [(b"x-request-id", b"req-7")]
    assert orjson.loads(body) == EXPECTED_BODY[protocol](status, exc.message)


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.2, b"1"), (1.4, b"1"), (2.6, b"3"), (30, b"30")]
)
def test_retry_after_is_whole_seconds_and_at_least_one(seconds: float, header: bytes) -> None:
    _, headers, _ = error_answer(OverloadedError("the queue is full", seconds), b"r")
    assert dict(headers)[b"retry-after"] == header


@pytest.mark.parametrize("protocol", DOCUMENTS)
def test_an_unexpected_exception_is_a_logged_500(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise KeyError("oops")
    except KeyError as exc:
        with caplog.at_level(logging.ERROR, logger="shipyard.server"):
            status, headers, body = error_answer(exc, b"req-8", DOCUMENTS[protocol])
    assert status == 500
    assert headers == [(b"x-request-id", b"req-8")]
    message = "internal error (KeyError); see the server log"
    assert orjson.loads(body) == EXPECTED_BODY[protocol](500, message)
    (record,) = caplog.records
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError


def test_a_shipyard_error_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="shipyard.server"):
        error_answer(PayloadTooLargeError("too big"), b"r")
    assert caplog.records == []


def test_without_a_request_id_there_is_no_request_id_header() -> None:
    _, headers, _ = error_answer(ModelNotFoundError("no such model"), None)
    assert headers == []
    _, headers, _ = error_answer(OverloadedError("full", 2.0), None)
    assert headers == [(b"retry-after", b"2")]


def test_respond_error_sends_the_answer() -> None:
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    exc = OverloadedError("the queue is full", 3.0)
    status = asyncio.run(respond_error(send, exc, b"req-9", openai.error_document))
    assert status == 503
    start, body = messages
    assert start["status"] == 503
    assert start["headers"] == [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body["body"])).encode()),
        (b"x-request-id", b"req-9"),
        (b"retry-after", b"3"),
    ]
    assert orjson.loads(body["body"]) == _openai_body(503, "the queue is full")


# The management API answers through the same mapping -------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShipyardApp]:
    server = ShipyardApp(server_settings(tmp_path_factory.mktemp("errors") / "home"), models=[])
    try:
        yield server
    finally:
        asyncio.run(server.shutdown())


def test_the_management_api_maps_errors_the_same_way(app: ShipyardApp) -> None:
    status, headers, body = asgi_call(app, "GET", "/api/deployments/ghost")
    expected = error_answer(ModelNotFoundError("model 'ghost' is not served here"), None)
    assert (status, body) == (expected[0], expected[2])
    assert headers[b"content-type"] == b"application/json"
    assert b"x-request-id" not in headers

    status, _, body = asgi_call(app, "POST", "/api/deployments/ghost/versions/1/unload")
    assert status == 404
    assert orjson.loads(body) == {"error": "ghost:1 is not loaded"}
