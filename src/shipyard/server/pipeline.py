"""The inference pipeline every inference protocol shares.

Read the headers, check the bearer token, read the body, route to a runner, submit with a
deadline while watching for the client leaving, answer, and record the request's metrics
and access-log line. A protocol (V2, V1, OpenAI) supplies only how its requests parse, how
its responses encode and its error document.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Generic, Protocol, TypeVar

from shipyard.errors import DeadlineExceededError, OverloadedError
from shipyard.runtime.runner import ModelRunner
from shipyard.server.accesslog import AccessLog
from shipyard.server.deployments import DeploymentManager
from shipyard.server.errors import plain_error, respond_error
from shipyard.server.http import (
    ClientDisconnected,
    Receive,
    RequestHeaders,
    RequestIds,
    Scope,
    Send,
    check_bearer,
    read_body,
    read_headers,
    respond,
)
from shipyard.server.interface import ModelInterface
from shipyard.server.metrics import Metrics
from shipyard.settings import Settings


class Parsed(Protocol):
    """A parsed request, as the pipeline submits it."""

    @property
    def payload(self) -> Any: ...
    @property
    def rows(self) -> int: ...
    @property
    def timeout_s(self) -> float | None: ...  # the protocol's own deadline, if it has one


R = TypeVar("R", bound=Parsed)


class InferenceProtocol(Generic[R]):
    """How one protocol's requests read, answer and fail.

    The path names the model (V2, V1): the pipeline routes, then ``parse`` reads the body
    for that model. Or the body names it (OpenAI, ``model_in_body``): ``parse_body`` reads
    it first, then ``route`` finds the runner.
    """

    model_in_body = False

    def parse(self, interface: ModelInterface, body: bytes, headers: RequestHeaders) -> R:
        raise NotImplementedError

    def parse_body(self, body: bytes, headers: RequestHeaders) -> R:
        raise NotImplementedError

    def route(self, manager: DeploymentManager, request: R) -> tuple[ModelRunner, ModelInterface]:
        raise NotImplementedError

    def encode(
        self,
        interface: ModelInterface,
        request: R,
        outputs: dict[str, Any],
        headers: list[tuple[bytes, bytes]],
    ) -> tuple[bytes, bytes]:
        """(body, content type); protocol headers are appended to ``headers``."""
        raise NotImplementedError

    def error_document(self, status: int, message: str) -> bytes:
        return plain_error(status, message)


class InferencePipeline(Generic[R]):
    """The handler of one inference protocol's route."""

    def __init__(
        self,
        protocol: InferenceProtocol[R],
        *,
        settings: Settings,
        manager: DeploymentManager,
        metrics: Metrics,
        access_log: AccessLog,
        ids: RequestIds,
    ) -> None:
        self.protocol = protocol
        self.settings = settings
        self.manager = manager
        self.metrics = metrics
        self.access_log = access_log
        self.ids = ids

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: int | None
    ) -> None:
        started = time.perf_counter()
        protocol = self.protocol
        status = 200
        runner: ModelRunner | None = None
        rows = 0
        request_id = b""
        outputs: dict[str, Any] | None = None
        try:
            headers = read_headers(scope)
            request_id = headers.request_id or self.ids.new()
            check_bearer(headers.authorization, self.settings.inference_token)
            body = await read_body(receive, headers.content_length, self.settings.max_body_bytes)
            if protocol.model_in_body:
                request = protocol.parse_body(body, headers)
                rows = request.rows
                runner, interface = protocol.route(self.manager, request)
            else:
                runner, interface = self.manager.route(name, version, scope["headers"])
                request = protocol.parse(interface, body, headers)
                rows = request.rows
            budget = time_budget(
                request.timeout_s, headers.timeout_ms, self.settings.request_timeout_s
            )
            deadline = None if budget is None else asyncio.get_running_loop().time() + budget
            submitted = time.perf_counter()
            outputs = await self._run(runner, request.payload, rows, deadline, receive, request_id)
            ran = time.perf_counter() - submitted
            extra = [
                (b"x-request-id", request_id),
                (b"x-model-version", str(interface.version).encode()),
            ]
            body, content_type = protocol.encode(interface, request, outputs, extra)
            await respond(send, 200, body, content_type, extra)
            if self.manager.rollouts.mirrored:  # a rollout mirrors requests to its candidate
                self.manager.rollouts.mirror(
                    runner, request.payload, rows, outputs, ran, request_id
                )
        except ClientDisconnected:
            status = 499  # nobody to answer
            if runner is not None:
                self._reject(runner, "disconnect")
        except Exception as exc:
            if runner is not None and isinstance(exc, OverloadedError | DeadlineExceededError):
                self._reject(runner, "overload" if isinstance(exc, OverloadedError) else "deadline")
            answered = [] if runner is None else [(b"x-model-version", _version_of(runner))]
            status = await respond_error(send, exc, request_id, protocol.error_document, answered)
        finally:
            elapsed = time.perf_counter() - started
            label_model = runner.name if runner is not None else "_unknown"
            label_version = str(runner.version.version) if runner is not None else ""
            self.metrics.request_done(label_model, label_version, status, elapsed)
            if runner is not None and self.manager.observing:
                self.manager.rollouts.observe(runner, status, elapsed, outputs)
            if self.access_log.enabled:
                self.access_log.record(
                    time.time(),
                    scope["method"],
                    scope["path"],
                    status,
                    round(elapsed * 1000, 3),
                    request_id.decode(errors="replace"),
                    label_model,
                    label_version,
                    rows,
                    (scope.get("client") or ("", 0))[0],
                )

    async def _run(
        self,
        runner: ModelRunner,
        payload: Any,
        rows: int,
        deadline: float | None,
        receive: Receive,
        request_id: bytes,
    ) -> dict[str, Any]:
        """Submit to the batcher; if the request has to wait, watch for its client leaving."""
        idle = runner.batcher.in_flight == 0
        future = runner.submit(payload, rows, deadline, request_id)
        if idle:
            return await runner.result(future, deadline)
        watcher: asyncio.Future[Any] = asyncio.ensure_future(receive())

        def client_left(task: asyncio.Future[Any]) -> None:
            if task.cancelled() or future.done():
                return
            if task.exception() is None and task.result().get("type") == "http.disconnect":
                future.set_exception(ClientDisconnected())

        watcher.add_done_callback(client_left)
        try:
            return await runner.result(future, deadline)
        finally:
            watcher.cancel()

    def _reject(self, runner: ModelRunner, reason: str) -> None:
        self.metrics.rejected_request(runner.name, str(runner.version.version), reason)


def _version_of(runner: ModelRunner) -> bytes:
    return str(runner.version.version).encode()


def time_budget(
    timeout_s: float | None, header_ms: float | None, default_s: float | None
) -> float | None:
    """Seconds a request may take: the shorter of the protocol's timeout and the
    X-Request-Timeout-Ms header, else the server's default; None for no limit."""
    budget = timeout_s or None
    if header_ms:
        header_s = header_ms / 1000.0
        if header_s and (budget is None or header_s < budget):
            budget = header_s
    return budget or default_s or None
