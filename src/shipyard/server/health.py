"""The routes that read the server's state: liveness, readiness and metadata of the server
and of each model (Open Inference Protocol), and the Prometheus scrape."""

from __future__ import annotations

import orjson

from shipyard.errors import NotReadyError
from shipyard.runtime.runner import RunnerState
from shipyard.server.deployments import DeploymentManager
from shipyard.server.http import JSON, Receive, RequestIds, Scope, Send, respond
from shipyard.server.metrics import CONTENT_TYPE, Metrics
from shipyard.version import __version__

EXTENSIONS = ["binary_tensor_data", "model_repository"]
_PROMETHEUS = CONTENT_TYPE.encode()


class HealthRoutes:
    def __init__(self, manager: DeploymentManager, metrics: Metrics, ids: RequestIds) -> None:
        self._manager = manager
        self._metrics = metrics
        self._ids = ids
        self._server_metadata = orjson.dumps(
            {"name": "shipyard", "version": __version__, "extensions": EXTENSIONS}
        )

    async def _answer(
        self, scope: Scope, send: Send, status: int, body: bytes, content_type: bytes = JSON
    ) -> None:
        await respond(send, status, body, content_type, [(b"x-request-id", self._ids.of(scope))])

    async def live(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: int | None
    ) -> None:
        await self._answer(scope, send, 200, b'{"live":true}')

    async def ready(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: int | None
    ) -> None:
        # Ready as long as the models are loaded, even while the registry is unreachable:
        # every replica shares it, so failing readiness would take them all out of service
        # at once although each can serve. The body says why new loads would fail.
        ready = self._manager.ready
        body: dict[str, object] = {"ready": ready}
        registry = self._manager.reachability.describe()
        if registry is not None:
            body["registry"] = registry
        await self._answer(scope, send, 200 if ready else 503, orjson.dumps(body))

    async def server_metadata(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: int | None
    ) -> None:
        await self._answer(scope, send, 200, self._server_metadata)

    async def metrics(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: int | None
    ) -> None:
        await self._answer(scope, send, 200, self._metrics.render(), _PROMETHEUS)

    async def model_metadata(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: int | None
    ) -> None:
        runner, interface = self._manager.route(name, version)
        deployment = self._manager.deployments[name]
        body = orjson.dumps(
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
        await self._answer(scope, send, 200, body)

    async def model_ready(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: int | None
    ) -> None:
        try:
            runner, _ = self._manager.route(name, version)
        except NotReadyError:
            ready = False
        else:
            ready = runner.state is RunnerState.READY
        await self._answer(
            scope, send, 200 if ready else 503, orjson.dumps({"name": name, "ready": ready})
        )
