"""The access log: one JSON line per request, the keys FIELDS, written in batches."""

from __future__ import annotations

import asyncio
import io
import json

from shipyard.server import accesslog
from shipyard.server.accesslog import FIELDS, AccessLog


def _record(log: AccessLog, request_id: str) -> None:
    log.record(1.5, "POST", "/v2/models/m/infer", 200, 0.25, request_id, "m", "1", 2, "::1")


def test_lines_are_written_together_after_a_moment() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)

    async def serve() -> bytes:
        log = AccessLog(True, stream)
        for i in range(3):
            _record(log, f"id-{i}")
        before = raw.getvalue()
        await asyncio.sleep(accesslog.FLUSH_SECONDS * 3)
        assert raw.getvalue() != before
        return before

    assert asyncio.run(serve()) == b""  # nothing written on the request path
    lines = raw.getvalue().decode().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["id-0", "id-1", "id-2"]
    entry = json.loads(lines[0])
    assert tuple(entry) == FIELDS
    assert entry == {
        "time": 1.5, "method": "POST", "path": "/v2/models/m/infer", "status": 200, "ms": 0.25,
        "request_id": "id-0", "model": "m", "version": "1", "rows": 2, "client": "::1",
    }  # fmt: skip


def test_a_full_batch_is_written_at_once_and_text_streams_work_too() -> None:
    stream = io.StringIO()  # no binary buffer under it

    async def serve() -> int:
        log = AccessLog(True, stream)
        count = 0
        while not stream.getvalue():
            _record(log, f"id-{count}")
            count += 1
        return count

    count = asyncio.run(serve())
    lines = stream.getvalue().splitlines()
    assert len(lines) == count
    assert sum(len(line) + 1 for line in lines) >= accesslog.FLUSH_BYTES
    assert json.loads(lines[-1])["request_id"] == f"id-{count - 1}"


def test_an_escaped_request_id_stays_one_line() -> None:
    stream = io.StringIO()

    async def serve() -> None:
        log = AccessLog(True, stream)
        _record(log, 'evil"\nid')
        log.flush()

    asyncio.run(serve())
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["request_id"] == 'evil"\nid'


def test_disabled_writes_nothing() -> None:
    stream = io.StringIO()
    log = AccessLog(False, stream)
    _record(log, "id")
    log.flush()
    assert stream.getvalue() == ""


def test_a_closed_stream_does_not_raise() -> None:
    stream = io.StringIO()

    async def serve() -> None:
        log = AccessLog(True, stream)
        _record(log, "id")
        stream.close()
        log.flush()

    asyncio.run(serve())
