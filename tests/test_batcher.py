"""The dynamic batcher on its own: real asyncio, a plain batch function in its worker thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from shipyard.errors import DeadlineExceededError, OverloadedError
from shipyard.runtime.batcher import Batcher, Pending
from shipyard.settings import BatchingSettings


class Recorder:
    """A batch function that echoes each request's payload and remembers batch sizes."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = gate

    def __call__(self, batch: list[Pending]) -> list[Any]:
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        self.batches.append([p.rows for p in batch])
        return [p.payload for p in batch]


def settings(**values: Any) -> BatchingSettings:
    return BatchingSettings(**{"max_batch_size": 8, "max_batch_delay_ms": 0, **values})


def test_requests_queued_behind_a_busy_runtime_form_one_batch() -> None:
    async def scenario() -> tuple[list[Any], list[list[int]]]:
        gate = threading.Event()
        recorder = Recorder(gate)
        batcher = Batcher("m:1", recorder, settings())
        first = batcher.submit("a", 1, None)
        await asyncio.sleep(0.05)  # the first batch is running (blocked on the gate)
        rest = [batcher.submit(name, rows, None) for name, rows in (("b", 2), ("c", 3))]
        gate.set()
        results = await asyncio.gather(first, *rest)
        await batcher.close()
        return results, recorder.batches

    results, batches = asyncio.run(scenario())
    assert results == ["a", "b", "c"]  # each caller gets its own share
    assert batches == [[1], [2, 3]]  # batch size counts rows: 5 rows in the second batch


def test_a_batch_never_exceeds_max_rows() -> None:
    async def scenario() -> list[list[int]]:
        gate = threading.Event()
        recorder = Recorder(gate)
        batcher = Batcher("m:1", recorder, settings(max_batch_size=4))
        futures = [batcher.submit(i, 1, None) for i in range(3)]
        await asyncio.sleep(0.05)
        futures += [batcher.submit(i, 2, None) for i in range(3, 6)]
        gate.set()
        await asyncio.gather(*futures)
        await batcher.close()
        return recorder.batches

    batches = asyncio.run(scenario())
    assert all(sum(b) <= 4 for b in batches), batches
    assert sum(sum(b) for b in batches) == 3 + 6


def test_full_queue_refuses_at_once_with_retry_after() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        batcher = Batcher("m:1", Recorder(gate), settings(max_queue_rows=4))
        running = batcher.submit("a", 1, None)
        await asyncio.sleep(0.05)
        queued = batcher.submit("b", 4, None)
        with pytest.raises(OverloadedError, match="has 4 rows queued \\(limit 4\\)") as info:
            batcher.submit("c", 1, None)
        assert info.value.retry_after_s > 0
        assert info.value.http_status == 503
        gate.set()
        await asyncio.gather(running, queued)
        await batcher.close()

    asyncio.run(scenario())


def test_dropped_requests_stop_counting_at_once() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        recorder = Recorder(gate)
        batcher = Batcher("m:1", recorder, settings(max_queue_rows=4))
        running = batcher.submit("a", 1, None)
        await asyncio.sleep(0.05)
        expired = batcher.submit("late", 3, asyncio.get_running_loop().time() + 0.01)
        gone = batcher.submit("gone", 1, None)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(expired, 0.05)  # its caller gave up: the future is cancelled
        gone.cancel()  # a client that disconnected
        await asyncio.sleep(0)  # done-callbacks run
        assert batcher.queued_rows == 0
        assert batcher.in_flight == 1  # only the running one
        accepted = batcher.submit("fits again", 4, None)  # room that the dropped rows held
        gate.set()
        assert await running == "a"
        assert await accepted == "fits again"
        await batcher.close()
        assert [rows for batch in recorder.batches for rows in batch] == [1, 4]

    asyncio.run(scenario())


def test_a_deadline_passed_in_the_queue_answers_deadline_exceeded() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        recorder = Recorder(gate)
        batcher = Batcher("m:1", recorder, settings())
        running = batcher.submit("a", 1, None)
        await asyncio.sleep(0.05)
        late = batcher.submit("late", 1, asyncio.get_running_loop().time() + 0.01)
        await asyncio.sleep(0.05)
        gate.set()
        with pytest.raises(DeadlineExceededError, match="deadline passed while queued"):
            await late
        assert await running == "a"
        await batcher.close()
        assert recorder.batches == [[1]]  # the late request never ran

    asyncio.run(scenario())


def test_a_failing_batch_fails_each_of_its_requests() -> None:
    def broken(batch: list[Pending]) -> list[Any]:
        raise RuntimeError("the runtime fell over")

    async def scenario() -> None:
        batcher = Batcher("m:1", broken, settings())
        with pytest.raises(RuntimeError, match="fell over"):
            await batcher.submit("a", 1, None)
        await batcher.close()

    asyncio.run(scenario())


def test_inline_mode_runs_a_lone_request_without_the_worker() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        batcher = Batcher("m:1", recorder, settings())
        batcher.inline = True
        future = batcher.submit("now", 1, None)
        assert future.done()  # answered before submit returned
        assert await future == "now"
        await batcher.close()

    asyncio.run(scenario())
