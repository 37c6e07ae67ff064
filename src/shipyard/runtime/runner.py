"""A loaded model version in a server: its Predictor, its batcher and its lifecycle state."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from typing import Any

from shipyard.errors import ConflictError, DeadlineExceededError, NotReadyError
from shipyard.registry.domain import ModelKind, ModelVersion
from shipyard.runtime.batcher import Batcher, Pending
from shipyard.runtime.batches import join_arrays, join_texts, split_arrays
from shipyard.runtime.predictor import Predictor, StageTimes
from shipyard.settings import BatchingSettings

# (runner, batch, seconds the batch took, stage times) -> None; called on the event loop.
BatchObserver = Callable[["ModelRunner", list[Pending], float, StageTimes], None]
# Sees a batch as it ran: its requests, its inputs (joined feeds, or the list of texts) and
# its outputs, in the thread that ran it; returns how many batches to skip before the next
# (1: the very next one). The monitor's windows and prediction log come from here. A call
# costs microseconds in a busy server (its code and data are out of the cache by the next
# batch), a countdown on the runner a few nanoseconds: at thousands of batches a second,
# most go by with only the countdown.
BatchTap = Callable[[list[Pending], Any, dict[str, Any]], int]

log = logging.getLogger("shipyard.runtime")


class RunnerState(enum.StrEnum):
    LOADING = "loading"
    WARMING = "warming"
    READY = "ready"
    DRAINING = "draining"
    UNLOADED = "unloaded"
    FAILED = "failed"


_ALLOWED = {
    RunnerState.LOADING: {RunnerState.WARMING, RunnerState.FAILED, RunnerState.UNLOADED},
    RunnerState.WARMING: {RunnerState.READY, RunnerState.FAILED, RunnerState.DRAINING},
    RunnerState.READY: {RunnerState.DRAINING},
    RunnerState.DRAINING: {RunnerState.UNLOADED},
    RunnerState.FAILED: {RunnerState.UNLOADED},
    RunnerState.UNLOADED: set(),
}


class ModelRunner:
    """Serves one version: requests in, batched through ONNX Runtime, each caller's rows out."""

    def __init__(
        self,
        version: ModelVersion,
        predictor: Predictor,
        batching: BatchingSettings,
        observer: BatchObserver | None = None,
    ) -> None:
        self.version = version
        self.predictor = predictor
        self.batching = batching
        self.state = RunnerState.LOADING
        self.text = version.kind is ModelKind.TEXT_EMBEDDING
        self._observer = observer
        self.tap: BatchTap | None = None
        self._tap_in = 0  # batches until the tap wants the next one
        self._last_stage_times = StageTimes(0.0, 0.0, 0.0)
        self.batch_seconds = 0.0  # median warm-up batch time
        self.batcher = Batcher(version.ref, self._run_batch, batching, self._batch_done)

    @property
    def name(self) -> str:
        return self.version.name

    def move_to(self, state: RunnerState) -> None:
        if state not in _ALLOWED[self.state]:
            raise ConflictError(f"{self.version.ref} cannot go from {self.state} to {state}")
        self.state = state

    def submit(
        self, payload: Any, rows: int, deadline: float | None, request_id: bytes = b""
    ) -> asyncio.Future[Any]:
        """Queue one request (validated: {name: array} or a list of strings)."""
        if self.state not in (RunnerState.READY, RunnerState.WARMING):
            raise NotReadyError(f"{self.version.ref} is {self.state.value}")
        return self.batcher.submit(payload, rows, deadline, request_id)

    async def result(self, future: asyncio.Future[Any], deadline: float | None) -> dict[str, Any]:
        """Wait for a submitted request; past its deadline it is dropped from the queue."""
        if deadline is None:
            return await future  # type: ignore[no-any-return]
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(future, max(remaining, 0.0))
        except TimeoutError:
            raise DeadlineExceededError(
                f"the deadline passed before {self.version.ref} answered"
            ) from None

    async def infer(self, payload: Any, rows: int, deadline: float | None = None) -> dict[str, Any]:
        """One request's outputs."""
        return await self.result(self.submit(payload, rows, deadline), deadline)

    async def warm_up(self, example: Any, runs: int = 5) -> None:
        """Run the example a few times; a model faster than a thread hop then runs inline."""
        self.move_to(RunnerState.WARMING)
        rows = _rows(example)
        pending = [Pending(example, rows, asyncio.get_running_loop().create_future(), 0.0, None)]
        await self.infer(example, rows)

        def timed() -> float:
            started = time.perf_counter()
            self._run_batch(pending)
            return time.perf_counter() - started

        timings = [await asyncio.to_thread(timed) for _ in range(runs)]
        self.batch_seconds = sorted(timings)[len(timings) // 2]
        self.batcher.inline = self.batch_seconds * 1000 < self.batching.inline_below_ms
        self.batcher.forget_batches()
        self.move_to(RunnerState.READY)

    async def drain(self) -> None:
        """Stop taking requests once the queue has run; free the runtime."""
        if self.state in (RunnerState.READY, RunnerState.WARMING):
            self.move_to(RunnerState.DRAINING)
        await self.batcher.close()
        if self.state in (RunnerState.DRAINING, RunnerState.FAILED, RunnerState.LOADING):
            self.state = RunnerState.UNLOADED

    # In the worker thread ---------------------------------------------------------------

    def _run_batch(self, batch: list[Pending]) -> list[dict[str, Any]]:
        if len(batch) == 1:
            ran = batch[0].payload
        else:
            payloads = [p.payload for p in batch]
            ran = join_texts(payloads) if self.text else join_arrays(payloads)
        outputs, times = self.predictor.run_batch(ran)
        self._last_stage_times = times
        if self.tap is not None:
            self._tap_in -= 1
            if self._tap_in <= 0:
                try:
                    self._tap_in = self.tap(batch, ran, outputs)
                except Exception:  # whatever taps the batch must not fail it
                    self._tap_in = 1
                    log.exception("a batch tap failed")
        if len(batch) == 1:
            return [outputs]
        return split_arrays(outputs, [p.rows for p in batch])

    def _batch_done(self, batch: list[Pending], seconds: float) -> None:
        if self._observer is not None:
            self._observer(self, batch, seconds, self._last_stage_times)


def _rows(example: Any) -> int:
    if isinstance(example, list):
        return len(example)
    first = next(iter(example.values()))
    return int(first.shape[0]) if getattr(first, "ndim", 0) else 1
