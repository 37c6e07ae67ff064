"""One write per response: the corked transport, and the server's responses over real sockets."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from server_helpers import HANG_GUARD_S
from shipyard import Registry
from shipyard.server import Server
from shipyard.server.protocol import CorkedTransport, SingleWriteProtocol


class RecordingTransport:
    """Stands in for the event loop's socket transport: records what reaches it, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, pieces: Any) -> None:
        self.calls.append(("writelines", b"".join(bytes(piece) for piece in pieces)))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", b""))

    def write_eof(self) -> None:
        self.calls.append(("write_eof", b""))

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1234) if name == "peername" else default


def _corked(body: Any) -> list[tuple[str, bytes]]:
    """Run ``body(corked)`` inside a loop, let the loop turn twice, return what was written."""
    recording = RecordingTransport()

    async def main() -> None:
        corked = CorkedTransport(recording, asyncio.get_running_loop())  # type: ignore[arg-type]
        await body(corked, recording)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(main())
    return recording.calls


def test_two_writes_in_one_turn_leave_in_one_call() -> None:
    async def body(corked: CorkedTransport, recording: RecordingTransport) -> None:
        corked.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        assert recording.calls == []  # held for the rest of the turn
        corked.write(b"ok")

    assert _corked(body) == [("writelines", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")]


def test_a_lone_write_leaves_when_the_turn_ends() -> None:
    async def body(corked: CorkedTransport, recording: RecordingTransport) -> None:
        corked.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        assert recording.calls == []
        await asyncio.sleep(0)
        assert recording.calls == [("write", b"HTTP/1.1 204 No Content\r\n\r\n")]

    assert _corked(body) == [("write", b"HTTP/1.1 204 No Content\r\n\r\n")]


def test_writes_over_several_turns_go_out_as_they_come() -> None:
    async def body(corked: CorkedTransport, recording: RecordingTransport) -> None:
        for chunk in (b"head", b"one", b"two"):
            corked.write(chunk)
            await asyncio.sleep(0)

    assert _corked(body) == [("write", b"head"), ("write", b"one"), ("write", b"two")]


def test_close_and_eof_send_what_is_held_first() -> None:
    async def close(corked: CorkedTransport, recording: RecordingTransport) -> None:
        corked.write(b"last words")
        corked.close()

    async def eof(corked: CorkedTransport, recording: RecordingTransport) -> None:
        corked.write(b"last words")
        corked.write_eof()

    assert _corked(close) == [("write", b"last words"), ("close", b"")]
    assert _corked(eof) == [("write", b"last words"), ("write_eof", b"")]


def test_nothing_is_written_to_a_transport_that_is_closing() -> None:
    async def body(corked: CorkedTransport, recording: RecordingTransport) -> None:
        corked.write(b"too late")
        recording.closing = True  # the peer went away within the turn

    assert _corked(body) == []


def test_the_rest_of_the_transport_is_the_transport_itself() -> None:
    async def body(corked: CorkedTransport, recording: RecordingTransport) -> None:
        assert corked.get_extra_info("peername") == ("127.0.0.1", 1234)
        assert corked.is_closing() is False
        recording.closing = True
        assert corked.is_closing() is True

    assert _corked(body) == []


# The server over real sockets -----------------------------------------------------------------


class CountingProtocol(SingleWriteProtocol):
    """The server's protocol, with the calls that reach the socket's transport counted."""

    socket_calls: ClassVar[list[str]] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Counted(transport, self.socket_calls))  # type: ignore[arg-type]


class _Counted:
    def __init__(self, transport: asyncio.Transport, calls: list[str]) -> None:
        self._transport = transport
        self._calls = calls

    def write(self, data: bytes) -> None:
        self._calls.append("write")
        self._transport.write(data)

    def writelines(self, pieces: Any) -> None:
        self._calls.append("writelines")
        self._transport.writelines(pieces)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CountingServer(Server):
    http_protocol = CountingProtocol


@pytest.fixture(scope="module")
def counted_server(tensor_registry: Registry) -> Iterator[int]:
    """The real server with the counting protocol, on a free port; yields the port."""
    settings = tensor_registry.settings.model_copy(update={"port": 0, "access_log": False})
    server = CountingServer(settings, models=["tiny"], registry=tensor_registry)
    try:
        server.start(timeout_s=HANG_GUARD_S)
        server.wait_ready(timeout_s=HANG_GUARD_S)
        assert server.port is not None
        yield server.port
    finally:
        server.stop(timeout_s=HANG_GUARD_S)


def _request(path: str, body: bytes = b"", method: str = "POST", close: bool = False) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {len(body)}\r\n"
    if body:
        head += "content-type: application/json\r\n"
    if close:
        head += "connection: close\r\n"
    return head.encode() + b"\r\n" + body


def _read_response(stream: Any, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    status = int(stream.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head_only else int(headers.get("content-length", "0"))
    return status, headers, stream.read(length)


_INFER = json.dumps(
    {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}
).encode()


def test_each_response_reaches_the_socket_in_one_call(counted_server: int) -> None:
    with socket.create_connection(("127.0.0.1", counted_server), timeout=HANG_GUARD_S) as sock:
        stream = sock.makefile("rb")
        for path, body, method in [
            ("/v2/models/tiny/infer", _INFER, "POST"),
            ("/v2/models/tiny", b"", "GET"),
            ("/v2/models/nope/infer", _INFER, "POST"),
            ("/v2/health/ready", b"", "GET"),
        ]:
            CountingProtocol.socket_calls.clear()
            sock.sendall(_request(path, body, method))
            status, headers, payload = _read_response(stream)
            assert status in (200, 404)
            assert len(payload) == int(headers["content-length"])
            assert CountingProtocol.socket_calls == ["writelines"], (path, status)


def test_pipelined_requests_are_answered_whole_and_in_order(counted_server: int) -> None:
    with socket.create_connection(("127.0.0.1", counted_server), timeout=HANG_GUARD_S) as sock:
        stream = sock.makefile("rb")
        sock.sendall(
            _request("/v2/models/tiny/infer", _INFER) + _request("/v2/models/tiny", method="GET")
        )
        first = _read_response(stream)
        second = _read_response(stream)
    assert (first[0], json.loads(first[2])["outputs"][0]["name"]) == (200, "y")
    assert (second[0], json.loads(second[2])["name"]) == (200, "tiny")


def test_a_closing_request_gets_its_whole_answer_then_the_end(counted_server: int) -> None:
    with socket.create_connection(("127.0.0.1", counted_server), timeout=HANG_GUARD_S) as sock:
        stream = sock.makefile("rb")
        sock.sendall(_request("/v2/models/tiny/infer", _INFER, close=True))
        status, headers, payload = _read_response(stream)
        assert status == 200
        assert len(payload) == int(headers["content-length"])
        assert stream.read() == b""  # the server closed the connection after the response


def test_head_gets_headers_and_no_body(counted_server: int) -> None:
    with socket.create_connection(("127.0.0.1", counted_server), timeout=HANG_GUARD_S) as sock:
        stream = sock.makefile("rb")
        sock.sendall(_request("/v2/health/live", method="HEAD"))
        status, _headers, _ = _read_response(stream, head_only=True)
        sock.sendall(_request("/v2/health/live", method="GET"))
        after = _read_response(stream)
    assert status in (200, 405)
    assert after[0] == 200  # the HEAD response left no stray body on the connection


def test_a_large_answer_arrives_whole(counted_server: int) -> None:
    rows = 8000
    body = json.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [rows, 3], "datatype": "FP32", "data": [0.5] * (rows * 3)}
            ]
        }
    ).encode()
    with socket.create_connection(("127.0.0.1", counted_server), timeout=HANG_GUARD_S) as sock:
        stream = sock.makefile("rb")
        sock.sendall(_request("/v2/models/tiny/infer", body))
        status, headers, payload = _read_response(stream)
    assert status == 200
    assert len(payload) == int(headers["content-length"]) > 64 * 1024
    assert json.loads(payload)["outputs"][0]["shape"] == [rows, 2]
