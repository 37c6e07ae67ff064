"""The ASGI application: its parts wired together, its routing table, its lifecycle.

The inference routes are plain ASGI (no framework between the socket and the batcher); the
management API under /api/ is a FastAPI app with OpenAPI docs at /api/docs.
"""

from __future__ import annotations

import asyncio
import logging

from shipyard.errors import ShipyardError
from shipyard.monitor.live import LiveMonitor
from shipyard.monitor.metrics import MonitorCollector
from shipyard.registry import Registry
from shipyard.server.accesslog import AccessLog
from shipyard.server.deployments import DeploymentManager
from shipyard.server.feedback import FeedbackRoute
from shipyard.server.health import HealthRoutes
from shipyard.server.http import Receive, RequestIds, Scope, Send
from shipyard.server.management import build_management_app
from shipyard.server.metrics import Metrics
from shipyard.server.openai import Embeddings
from shipyard.server.pipeline import InferencePipeline, InferenceProtocol, R
from shipyard.server.retraining import Retraining
from shipyard.server.routing import ANY, Route, Router, mount, no_route
from shipyard.server.v1 import V1Predict
from shipyard.server.v2 import V2Infer
from shipyard.settings import Settings

log = logging.getLogger("shipyard.server")


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
        self.metrics = Metrics(
            lambda: self.manager.runners(), lambda: self.manager.reachability.reachable
        )
        self.monitor = LiveMonitor(
            self.registry,
            settings,
            lambda version: self.metrics.traffic(version.name, str(version.version)),
        )
        self.metrics.registry.register(MonitorCollector(self.monitor))
        self.manager = DeploymentManager(
            settings, self.registry, self.metrics, models, self.monitor
        )
        self.retraining = Retraining(self.registry, settings)
        self.monitor.on_evaluations = self.retraining.consider
        self.access_log = AccessLog(settings.access_log)
        self.ids = RequestIds()
        self.management = build_management_app(self.manager, settings, self.retraining)
        self._router = Router(self._routes(), self.ids)
        self._loading: asyncio.Task[None] | None = None

    def _routes(self) -> list[Route]:
        """The routing table: every route the server answers, and its handler."""
        health = HealthRoutes(self.manager, self.metrics, self.ids)
        feedback = FeedbackRoute(self.settings, self.registry, self.monitor, self.ids)
        management = mount(self.management)
        model = "/v2/models/{name}[/versions/{version}]"
        return [
            Route("GET", "/v2/health/live", health.live),
            Route("GET", "/v2/health/ready", health.ready),
            Route("GET", "/v2", health.server_metadata),
            Route("GET", "/metrics", health.metrics),
            Route("GET", model, health.model_metadata),
            Route("GET", f"{model}/ready", health.model_ready),
            Route("POST", f"{model}/infer", self._inference(V2Infer())),
            Route("POST", "/v2/models/{name}/feedback", feedback),
            Route(ANY, "/v2/models/{path}", no_route),
            Route("POST", "/v1/models/{name}:predict", self._inference(V1Predict())),
            Route("POST", "/v1/embeddings", self._inference(Embeddings())),
            Route(ANY, "/api", management),
            Route(ANY, "/api/{path}", management),
        ]

    def _inference(self, protocol: InferenceProtocol[R]) -> InferencePipeline[R]:
        return InferencePipeline(
            protocol,
            settings=self.settings,
            manager=self.manager,
            metrics=self.metrics,
            access_log=self.access_log,
            ids=self.ids,
        )

    def is_ready(self) -> bool:
        return self.manager.ready

    # ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._router(scope, receive, send)
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
        await asyncio.to_thread(self.retraining.close)
        await self.manager.close()
        await asyncio.to_thread(self.monitor.close)
        self.access_log.flush()
        await asyncio.to_thread(self.registry.close)
