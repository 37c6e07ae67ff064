"""The ASGI application: routes, the inference path, errors mapped once to HTTP.

The inference routes are plain ASGI (no framework between the socket and the batcher);
the management API under /api/ is a FastAPI app with OpenAPI docs at /api/docs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from shipyard import __version__
from shipyard.errors import (
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
    NotReadyError,
    OverloadedError,
    ShipyardError,
)
from shipyard.monitor.live import LiveMonitor
from shipyard.monitor.metrics import MonitorCollector
from shipyard.registry import ModelKind, Registry
from shipyard.runtime.predictor import TOKEN_COUNT
from shipyard.runtime.runner import ModelRunner, RunnerState
from shipyard.server import openai, v1, v2
from shipyard.server.accesslog import AccessLog
from shipyard.server.deployments import DeploymentManager
from shipyard.server.errors import plain_error, respond_error
from shipyard.server.feedback import record_feedback
from shipyard.server.http import (
    JSON,
    OCTETS,
    ClientDisconnected,
    Receive,
    RequestIds,
    Scope,
    Send,
    check_bearer,
    read_body,
    read_headers,
    respond,
)
from shipyard.server.interface import ModelInterface
from shipyard.server.management import build_management_app
from shipyard.server.metrics import CONTENT_TYPE, Metrics
from shipyard.settings import Settings

log = logging.getLogger("shipyard.server")

EXTENSIONS = ["binary_tensor_data", "model_repository"]


class ShipyardApp:
    """``ShipyardApp(settings, models=[...])`` is an ASGI app; see ``shipyard.server.Server``."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: Registry | None = None,
        models: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or Registry(settings)
        self.metrics = Metrics(lambda: self.manager.runners())
        self.monitor = LiveMonitor(
            self.registry,
            settings,
            lambda version: self.metrics.traffic(version.name, str(version.version)),
        )
        self.metrics.registry.register(MonitorCollector(self.monitor))
        self.manager = DeploymentManager(
            settings, self.registry, self.metrics, models, self.monitor
        )
        self.access_log = AccessLog(settings.access_log)
        self.ids = RequestIds()
        self._loading: asyncio.Task[None] | None = None
        self.management = build_management_app(self.manager, settings)

    # ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.manager.prepare()
                except ShipyardError as exc:
                    await send({"type": "lifespan.startup.failed", "message": exc.message})
                    return
                self.monitor.start()
                self._loading = asyncio.get_running_loop().create_task(self._load())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _load(self) -> None:
        try:
            await self.manager.start()
        except Exception:
            log.exception("the server could not load its models; it stays unready")

    async def shutdown(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        await self.manager.close()
        await asyncio.to_thread(self.monitor.close)
        self.access_log.flush()
        await asyncio.to_thread(self.registry.close)

    # Routing ----------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith("/v2/models/"):
            await self._v2_model(scope, receive, send, path[len("/v2/models/") :], method)
        elif path.startswith("/v1/models/") and path.endswith(":predict") and method == "POST":
            name = path[len("/v1/models/") : -len(":predict")]
            await self._infer(scope, receive, send, name, None, "v1")
        elif path == "/v1/embeddings" and method == "POST":
            await self._infer(scope, receive, send, None, None, "openai")
        elif path.startswith("/api/") or path == "/api":
            await self.management(scope, receive, send)
        elif method != "GET":
            body = plain_error(405, f"{method} is not allowed on {path}")
            await self._plain(scope, send, 405, body)
        elif path == "/v2/health/live":
            await self._plain(scope, send, 200, b'{"live":true}')
        elif path == "/v2/health/ready":
            ready = self.is_ready()
            await self._plain(scope, send, 200 if ready else 503, orjson.dumps({"ready": ready}))
        elif path == "/v2":
            body = orjson.dumps(
                {"name": "shipyard", "version": __version__, "extensions": EXTENSIONS}
            )
            await self._plain(scope, send, 200, body)
        elif path == "/metrics":
            await self._plain(scope, send, 200, self.metrics.render(), CONTENT_TYPE.encode())
        else:
            await self._plain(scope, send, 404, plain_error(404, f"no route for {path}"))

    def is_ready(self) -> bool:
        return self.manager.ready

    async def _plain(
        self, scope: Scope, send: Send, status: int, body: bytes, content_type: bytes = JSON
    ) -> None:
        request_id = self.ids.of(scope)
        await respond(send, status, body, content_type, [(b"x-request-id", request_id)])

    async def _v2_model(
        self, scope: Scope, receive: Receive, send: Send, rest: str, method: str
    ) -> None:
        parts = rest.split("/")
        name = parts[0]
        version: int | None = None
        tail = parts[1:]
        if len(tail) >= 2 and tail[0] == "versions":
            if not tail[1].isdigit():
                body = plain_error(400, f"version {tail[1]!r} is not a number")
                await self._plain(scope, send, 400, body)
                return
            version = int(tail[1])
            tail = tail[2:]
        action = "/".join(tail)
        if action == "infer" and method == "POST":
            await self._infer(scope, receive, send, name, version, "v2")
        elif action == "feedback" and method == "POST" and version is None:
            await self._feedback(scope, receive, send, name)
        elif action == "" and method == "GET":
            await self._guarded(scope, send, lambda: self._metadata(name, version))
        elif action == "ready" and method == "GET":
            await self._guarded(scope, send, lambda: self._model_ready(name, version))
        else:
            body = plain_error(404, f"no route for {scope['path']}")
            await self._plain(scope, send, 404, body)

    async def _guarded(self, scope: Scope, send: Send, answer: Any) -> None:
        try:
            status, body = answer()
        except ShipyardError as exc:
            await respond_error(send, exc, self.ids.of(scope))
            return
        await self._plain(scope, send, status, body)

    def _metadata(self, name: str, version: int | None) -> tuple[int, bytes]:
        runner, interface = self.manager.route(name, version)
        deployment = self.manager.deployments[name]
        return 200, orjson.dumps(
            {
                "name": name,
                "versions": [str(v) for v in sorted(deployment.runners)],
                "platform": "onnxruntime_onnx",
                "inputs": [s.to_dict() for s in interface.inputs],
                "outputs": [s.to_dict() for s in interface.outputs],
                "parameters": {
                    "version": str(runner.version.version),
                    "kind": runner.version.kind.value,
                    "flavor": runner.version.flavor,
                    "max_batch_size": runner.batching.max_batch_size,
                },
            }
        )

    def _model_ready(self, name: str, version: int | None) -> tuple[int, bytes]:
        try:
            runner, _ = self.manager.route(name, version)
        except NotReadyError:
            return 503, orjson.dumps({"name": name, "ready": False})
        ready = runner.state is RunnerState.READY
        return (200 if ready else 503), orjson.dumps({"name": name, "ready": ready})

    # Inference --------------------------------------------------------------------------

    async def _infer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        name: str | None,
        version: int | None,
        protocol: str,
    ) -> None:
        started = time.perf_counter()
        status = 200
        runner: ModelRunner | None = None
        rows = 0
        request_id = b""
        try:
            headers = read_headers(scope)
            request_id = headers.request_id or self.ids.new()
            check_bearer(headers.authorization, self.settings.inference_token)
            body = await read_body(receive, headers.content_length, self.settings.max_body_bytes)
            if protocol == "openai":
                name, texts, encoding = openai.parse_embeddings_request(body)
                runner, interface = self._text_model(name)
                payload: Any = texts
                rows = len(texts)
                deadline = self._deadline(None, headers.timeout_ms)
            else:
                assert name is not None
                runner, interface = self.manager.route(name, version)
                if protocol == "v2":
                    request = v2.parse_request(interface, body, headers.header_length)
                    payload, rows = request.payload, request.rows
                    deadline = self._deadline(request.timeout_s, headers.timeout_ms)
                else:
                    payload, rows = v1.parse_instances(interface, body)
                    deadline = self._deadline(None, headers.timeout_ms)
            outputs = await self._run(runner, payload, rows, deadline, receive, request_id)
            extra = [
                (b"x-request-id", request_id),
                (b"x-model-version", str(interface.version).encode()),
            ]
            content_type = JSON
            if protocol == "v2":
                body, header_length = v2.encode_response(interface, request, outputs)
                if header_length is not None:
                    extra.append((b"inference-header-content-length", str(header_length).encode()))
                    content_type = OCTETS
            elif protocol == "v1":
                body = v1.encode_predictions(interface, outputs)
            else:
                vectors = outputs[interface.outputs[0].name]
                body = openai.encode_embeddings(name, vectors, outputs[TOKEN_COUNT], encoding)
            await respond(send, 200, body, content_type, extra)
        except ClientDisconnected:
            status = 499  # nobody to answer
            if runner is not None:
                self._reject(runner, "disconnect")
        except Exception as exc:
            if runner is not None and isinstance(exc, OverloadedError | DeadlineExceededError):
                self._reject(runner, "overload" if isinstance(exc, OverloadedError) else "deadline")
            document = openai.error_document if protocol == "openai" else plain_error
            status = await respond_error(send, exc, request_id, document)
        finally:
            elapsed = time.perf_counter() - started
            label_model = runner.name if runner is not None else "_unknown"
            label_version = str(runner.version.version) if runner is not None else ""
            self.metrics.request_done(label_model, label_version, status, elapsed)
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

    async def _feedback(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        """Ground-truth labels for served request ids; unknown ids are reported, not fatal."""
        try:
            headers = read_headers(scope)
            check_bearer(headers.authorization, self.settings.inference_token)
            body = await read_body(receive, headers.content_length, self.settings.max_body_bytes)
            answer = await asyncio.to_thread(
                record_feedback, self.registry, self.monitor, name, body
            )
            await self._plain(scope, send, 200, orjson.dumps(answer))
        except ClientDisconnected:
            return  # nobody to answer
        except Exception as exc:
            await respond_error(send, exc, self.ids.of(scope))

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

    def _deadline(self, timeout_s: float | None, header_ms: float | None) -> float | None:
        candidates = [t for t in (timeout_s, header_ms and header_ms / 1000.0) if t]
        if not candidates and self.settings.request_timeout_s:
            candidates.append(self.settings.request_timeout_s)
        if not candidates:
            return None
        return asyncio.get_running_loop().time() + min(candidates)

    def _text_model(self, name: str) -> tuple[ModelRunner, ModelInterface]:
        try:
            runner, interface = self.manager.route(name, None)
        except NotFoundError:
            raise NotFoundError(f"no text-embedding model named {name!r} is served here") from None
        if runner.version.kind is not ModelKind.TEXT_EMBEDDING:
            raise InvalidInputError(f"model {name!r} is not a text-embedding model")
        return runner, interface

    def _reject(self, runner: ModelRunner, reason: str) -> None:
        self.metrics.rejected_request(runner.name, str(runner.version.version), reason)
