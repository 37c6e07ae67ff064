"""Dynamic batching for one model version.

Requests queue while the runtime is busy and go together when it frees up. A lone request
on an idle model runs at once. Right after a batch, when the queue holds fewer rows than
that batch had (closed-loop clients are about to send their next requests), the batcher
may wait for company, but never longer than ``max_batch_delay_ms`` counted from the oldest
queued request. Batch size counts rows, not requests. The queue is bounded (full
means OverloadedError at once); a request whose deadline passes or whose caller goes away
is dropped before its batch runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import DeadlineExceededError, OverloadedError
from shipyard.settings import BatchingSettings

log = logging.getLogger("shipyard.batcher")


@dataclass(slots=True, eq=False)
class Pending:
    """One request waiting for its batch."""

    payload: Any  # {input name: array} for tensor models, [str] for text models
    rows: int
    future: asyncio.Future[Any]
    enqueued: float  # loop time
    deadline: float | None  # loop time
    started: float = field(default=0.0)  # loop time its batch began
    queued: bool = field(default=True)  # still counted in the queue's rows
    request_id: bytes = b""  # the caller's id for it, for whoever taps the batches


# Runs in the batcher's worker thread: one batch in, one result per request out.
BatchFunction = Callable[[list[Pending]], list[Any]]


class Batcher:
    def __init__(
        self,
        name: str,
        run_batch: BatchFunction,
        settings: BatchingSettings,
        on_batch: Callable[[list[Pending], float], None] | None = None,
    ) -> None:
        self.name = name
        self._run_batch = run_batch
        self.max_rows = settings.max_batch_size
        self.max_delay = settings.max_batch_delay_ms / 1000.0
        self.max_queue_rows = settings.max_queue_rows
        self._on_batch = on_batch
        # Tiny models run on the event loop: handing them to a thread costs more than they do.
        self.inline = False
        self._queue: deque[Pending] = deque()
        self.queued_rows = 0
        self.queued_requests = 0
        self.running_requests = 0
        self._expected_rows = 1  # rows of the last batch: how much company is worth waiting for
        self._last_batch_end = 0.0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"shipyard-{name}")
        self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{name}")

    @property
    def in_flight(self) -> int:
        return self.queued_requests + self.running_requests

    def submit(
        self, payload: Any, rows: int, deadline: float | None, request_id: bytes = b""
    ) -> asyncio.Future[Any]:
        """Queue one request; the future resolves to its share of the batch's result."""
        if self._closing:
            raise OverloadedError(f"{self.name} is being unloaded; retry", retry_after_s=0.1)
        if self.queued_rows + rows > self.max_queue_rows and self.queued_requests:
            raise OverloadedError(
                f"{self.name} has {self.queued_rows} rows queued (limit {self.max_queue_rows}); "
                "retry later",
                retry_after_s=1.0,
            )
        loop = asyncio.get_running_loop()
        pending = Pending(
            payload, rows, loop.create_future(), loop.time(), deadline, request_id=request_id
        )
        if self.inline and not self.queued_requests and not self.running_requests:
            self._run_now(loop, [pending])  # idle and cheap: no queue, no worker round trip
            return pending.future
        self._queue.append(pending)
        self.queued_rows += rows
        self.queued_requests += 1
        # a request dropped while queued (deadline, client gone) stops counting at once
        pending.future.add_done_callback(lambda _: self._dequeue(pending))
        self._wakeup.set()
        return pending.future

    def forget_batches(self) -> None:
        """Warm-up batches are not traffic: the next lone request finds the model idle."""
        self._expected_rows = 1
        self._last_batch_end = 0.0

    async def close(self) -> None:
        """Finish what is queued and running, then stop the worker thread."""
        self._closing = True
        self._wakeup.set()
        await self._worker
        self._executor.shutdown(wait=True)

    # The worker --------------------------------------------------------------------------

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._wait_for_company(loop)
            batch = self._take(loop)
            if not batch:
                continue
            if self.inline:
                self._run_now(loop, batch)
                continue
            self._expected_rows = min(sum(p.rows for p in batch), self.max_rows)
            self.running_requests = len(batch)
            started = loop.time()
            for pending in batch:
                pending.started = started
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, batch)
            except Exception as exc:  # the whole batch failed: every caller hears why
                self._fail(batch, exc)
            else:
                self._resolve(batch, results)
            finally:
                self.running_requests = 0
                self._last_batch_end = loop.time()
            self._observe(batch, loop.time() - started)

    def _run_now(self, loop: asyncio.AbstractEventLoop, batch: list[Pending]) -> None:
        started = loop.time()
        for pending in batch:
            pending.started = started
        try:
            results = self._run_batch(batch)
        except Exception as exc:
            self._fail(batch, exc)
        else:
            self._resolve(batch, results)
        self._last_batch_end = end = loop.time()
        self._observe(batch, end - started)

    @staticmethod
    def _resolve(batch: list[Pending], results: list[Any]) -> None:
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)

    @staticmethod
    def _fail(batch: list[Pending], exc: Exception) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)

    def _observe(self, batch: list[Pending], seconds: float) -> None:
        if self._on_batch is not None:
            try:
                self._on_batch(batch, seconds)
            except Exception:  # observers never break inference
                log.exception("batch observer failed")

    async def _wait_for_company(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.time() - self._last_batch_end > self.max_delay:
            return  # the model was idle: a lone request is not held back
        target = min(self._expected_rows, self.max_rows)
        if self.queued_rows >= target or self.max_delay <= 0:
            return
        give_up = self._queue[0].enqueued + self.max_delay
        while self.queued_rows < target and not self._closing:
            remaining = give_up - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self, loop: asyncio.AbstractEventLoop) -> list[Pending]:
        batch: list[Pending] = []
        rows = 0
        now = loop.time()
        queue = self._queue
        while queue:
            pending = queue[0]
            if pending.future.done():  # timed out or its caller went away
                queue.popleft()
                self._dequeue(pending)
                continue
            if pending.deadline is not None and now >= pending.deadline:
                queue.popleft()
                self._dequeue(pending)
                pending.future.set_exception(
                    DeadlineExceededError(f"the deadline passed while queued for {self.name}")
                )
                continue
            if batch and rows + pending.rows > self.max_rows:
                break
            queue.popleft()
            self._dequeue(pending)
            batch.append(pending)
            rows += pending.rows
        return batch

    def _dequeue(self, pending: Pending) -> None:
        if pending.queued:
            pending.queued = False
            self.queued_rows -= pending.rows
            self.queued_requests -= 1
