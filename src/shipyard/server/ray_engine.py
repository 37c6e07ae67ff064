"""Shipyard on Ray Serve: ``shipyard serve --engine ray`` (the ``ray`` extra).

Owns turning what ``shipyard serve`` would serve into Ray Serve applications, and running
them in the foreground. Each served model is one application, routed by Ray's ingress (its
proxy actor, or its HAProxy) on the prefix ``/v2/models/<name>``, of one deployment whose
replicas each run Shipyard's own app for that model alone: its DeploymentManager,
ModelRunner and Batcher. Shipyard's batcher is the only batcher (no ``@serve.batch``), the
routes and answers are Shipyard's, and every replica opens the registry itself, so alias
moves are followed as on the local engine. One more application, at ``/``, runs the app
with no model of its own: health, server metadata, ``/metrics`` of that process and the
management API. Ray routes by path prefix only, so the routes that name the model elsewhere
(V1 ``/v1/models/<name>:predict``, OpenAI ``/v1/embeddings``) reach the front, which serves
no model: they answer 404 on this engine.

Ray is imported only inside functions: without the extra, ``shipyard serve`` still works and
``--engine ray`` fails with a MissingDependencyError naming it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import tempfile
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from shipyard.errors import (
    InvalidInputError,
    MissingDependencyError,
    NotReadyError,
    ShipyardError,
    StorageError,
)
from shipyard.server.app import ShipyardApp
from shipyard.server.deployments import DeploymentManager
from shipyard.server.http import Receive, Scope, Send
from shipyard.server.metrics import Metrics
from shipyard.settings import Settings

log = logging.getLogger("shipyard.server")

FRONT = "shipyard"  # the application at "/": health, server metadata, the management API
LOAD_TIMEOUT_S = 600.0  # a replica still loading after this is reported failed to Ray


@dataclass(frozen=True)
class RayOptions:
    """How the models are spread over Ray: replicas per model, or bounds to autoscale in."""

    num_replicas: int = 1
    autoscale: tuple[int, int] | None = None  # (min, max) replicas
    address: str | None = None  # an existing cluster; None starts a local one
    replica_cpus: float = 1.0
    # "proxy": Ray Serve's Python HTTP proxy actor forwards each request to a replica;
    # "haproxy": Ray Serve's HAProxy ingress (a C proxy, bundled with ray[serve]) hands the
    # connection to the replica's own HTTP server ("direct ingress"), one Python hop fewer.
    # Shipyard can only choose it for a cluster it starts itself, and does by default there:
    # the Python proxy's hop costs more than the model for small requests (see the README).
    ingress: str | None = None  # None: haproxy for a cluster started here, else proxy
    # Ray's default (5) would hold every batch at 5 requests; Shipyard's own bounded queue
    # decides when a replica is full, so Ray lets plenty through.
    max_ongoing_requests: int = 1024

    def scaling(self, max_batch_size: int) -> dict[str, Any]:
        """The deployment options that decide how many replicas run."""
        if self.autoscale is None:
            return {"num_replicas": self.num_replicas}
        low, high = self.autoscale
        return {
            "autoscaling_config": {
                "min_replicas": low,
                "max_replicas": high,
                # a replica is busy, not overloaded, while its batches are full
                "target_ongoing_requests": float(max_batch_size),
            }
        }


def parse_autoscale(text: str) -> tuple[int, int]:
    """``MIN:MAX`` replicas, e.g. ``1:4``."""
    low, sep, high = text.partition(":")
    try:
        bounds = int(low), int(high)
    except ValueError:
        bounds = (-1, -1)
    if not sep or bounds[0] < 0 or bounds[1] < max(bounds[0], 1):
        raise InvalidInputError(
            f"--autoscale takes MIN:MAX replicas with 0 <= MIN <= MAX, not {text!r}"
        )
    return bounds


INGRESSES = ("proxy", "haproxy")


def ingress_environment(ingress: str, scratch: str) -> dict[str, str]:
    """The environment a local cluster is started with for ``ingress``.

    Ray Serve reads its ingress flags from the environment of every process of the cluster
    (they inherit the starting process's). HAProxy's files and side ports default to fixed
    places (/tmp/haproxy-serve, ports 8404 and 9101); each cluster gets its own here, so
    two servers on one machine do not collide.
    """
    if ingress not in INGRESSES:
        raise InvalidInputError(f"--ray-ingress is one of {', '.join(INGRESSES)}, not {ingress!r}")
    if ingress == "proxy":
        return {}
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{scratch}/haproxy.cfg",
        "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{scratch}/admin.sock",
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": scratch,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{scratch}/server-state",
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": f"{scratch}/metrics.sock",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(_free_port("127.0.0.1")),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(_free_port("127.0.0.1")),
        # a stopping replica keeps answering this long for load balancers still sending to
        # it (default 30 s); the only one here is this cluster's HAProxy, told at once
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
    }


def import_ray() -> tuple[Any, Any]:
    """(ray, ray.serve), or the error that names the extra."""
    try:
        import ray
        from ray import serve
    except ImportError:
        raise MissingDependencyError.for_extra("Ray Serve", "ray") from None
    return ray, serve


# In each replica --------------------------------------------------------------------------


class ModelReplica:
    """One replica's state: Shipyard's app for one model (or none, for the front)."""

    def __init__(self, settings: Settings, model: str | None) -> None:
        # (not "app": Ray's ingress wrapper owns that name)
        self.shipyard = ShipyardApp(settings, models=[model] if model is not None else [])

    def __serve_build_asgi_app__(self) -> WarmApp:
        return WarmApp(self.shipyard)

    def check_health(self) -> None:
        # Ray restarts a replica whose models could not be loaded
        if not self.shipyard.is_ready():
            raise NotReadyError(self.shipyard.manager.startup_error or "the replica is not ready")


class WarmApp:
    """The app as Ray runs it: lifespan startup completes only once the model is warm.

    Ray routes requests to a replica once its startup is complete; the local engine's app
    answers readiness 503 while it loads instead. Waiting here keeps a new replica (at start,
    or one the autoscaler adds) out of the route until it can answer.
    """

    def __init__(self, app: ShipyardApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_when_loaded(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                failure = await self._loaded()
                if failure is not None:
                    message = {"type": "lifespan.startup.failed", "message": failure}
            await send(message)

        await self.app(scope, receive, send_when_loaded)

    async def _loaded(self) -> str | None:
        """None once every model is loaded and warm, else why not."""
        manager = self.app.manager
        waited = 0.0
        while not manager.ready:
            if manager.startup_error is not None:
                return manager.startup_error
            if waited > LOAD_TIMEOUT_S:
                return f"the models were not loaded within {LOAD_TIMEOUT_S:.0f} s"
            await asyncio.sleep(0.02)
            waited += 0.02
        return None


# In the driver ----------------------------------------------------------------------------


def served_models(settings: Settings, models: list[str] | None) -> list[tuple[str, str]]:
    """(name, reference for its replicas) of every model to serve, as ``shipyard serve``
    resolves them: a missing model, version or alias fails here, before Ray starts."""
    from shipyard.registry import Registry

    registry = Registry(settings)
    try:
        manager = DeploymentManager(settings, registry, Metrics(lambda: iter(())), models)
        targets = manager.resolve()
    finally:
        registry.close()
    # an alias is followed by name, so the replicas follow its moves; a pin stays a pin
    return [
        (name, f"{name}@{follow}" if follow is not None else f"{name}:{version}")
        for name, follow, version in targets
    ]


def deploy(settings: Settings, models: list[str] | None, options: RayOptions) -> list[str]:
    """Deploy the models on the connected Ray cluster's Serve; returns the applications.

    Blocks until every replica is loaded and warm. The HTTP base is the settings' host and
    port (Ray's proxy binds them).
    """
    _, serve = import_ray()
    targets = served_models(settings, models)
    serve.start(
        http_options={"host": settings.host, "port": settings.port},
        # Shipyard writes its own access log (settings.access_log); one line a request is enough
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    replica_options: dict[str, Any] = {
        "max_ongoing_requests": options.max_ongoing_requests,
        "ray_actor_options": {"num_cpus": options.replica_cpus},
        "logging_config": {"enable_access_log": False, "log_level": "WARNING"},
        "health_check_period_s": 10.0,
        "graceful_shutdown_timeout_s": settings.shutdown_timeout_s,
        # how often Ray looks whether a stopping replica's requests are done (default 2 s)
        "graceful_shutdown_wait_loop_s": 0.2,
    }
    replica = serve.deployment(serve.ingress()(ModelReplica))
    applications: list[str] = []
    for name, reference in targets:
        scaling = options.scaling(settings.batching_for(name).max_batch_size)
        deployment = replica.options(name=name, **replica_options, **scaling)
        applications.append(name)
        serve.run(
            deployment.bind(settings, reference), name=name, route_prefix=f"/v2/models/{name}"
        )
        log.info("serving %s on Ray Serve (%s)", reference, scaling)
    front = replica.options(
        name=FRONT, **{**replica_options, "ray_actor_options": {"num_cpus": 0}}, num_replicas=1
    )
    applications.append(FRONT)
    serve.run(front.bind(settings, None), name=FRONT, route_prefix="/")
    return applications


def undeploy(applications: list[str], timeout_s: float = 60.0) -> None:
    """Delete the applications, all at once: each replica drains its batcher (Shipyard's
    lifespan shutdown) before Ray stops it. Returns once they are gone or after timeout_s."""
    _, serve = import_ray()
    for name in applications:
        try:
            serve.delete(name, _blocking=False)
        except Exception:  # one that cannot be deleted must not keep the others serving
            log.exception("could not delete the Ray Serve application %s", name)
    pause = threading.Event()
    waited = 0.0
    while waited < timeout_s and set(applications) & set(serve.status().applications):
        pause.wait(0.1)
        waited += 0.1


def run(settings: Settings, models: list[str] | None, options: RayOptions) -> None:
    """Serve on Ray in the foreground until SIGTERM/SIGINT, then shut Ray Serve down."""
    ingress = options.ingress or ("proxy" if options.address is not None else "haproxy")
    if ingress != "proxy" and options.address is not None:
        raise InvalidInputError(
            "--ray-ingress haproxy is for a cluster Shipyard starts; an existing cluster's "
            "ingress is set where it was started (RAY_SERVE_ENABLE_HA_PROXY=1)"
        )
    with tempfile.TemporaryDirectory(prefix="shipyard-ray-") as scratch:
        environment = ingress_environment(ingress, scratch)
        # before Ray is imported: ray.serve reads its flags once, on import
        saved = {key: os.environ.get(key) for key in environment}
        os.environ.update(environment)
        try:
            _run(settings, models, options)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _run(settings: Settings, models: list[str] | None, options: RayOptions) -> None:
    ray, serve = import_ray()
    if settings.port == 0:
        settings = settings.model_copy(update={"port": _free_port(settings.host)})
    served_models(settings, models)  # fail fast, before a cluster starts
    stop = threading.Event()
    started_ray = not ray.is_initialized()
    if started_ray:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if options.address is not None:
            ray.init(address=options.address, logging_level=logging.WARNING)
        else:
            # "local" starts a cluster of this machine's CPUs instead of joining one found
            ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    applications: list[str] = []
    try:
        applications = deploy(settings, models, options)
        host = settings.host if ":" not in settings.host else f"[{settings.host}]"
        print(f"serving on http://{host}:{settings.port} (Ray Serve)", flush=True)
        stop.wait()
        log.info("shutting Ray Serve down")
    except ShipyardError:
        raise
    except Exception as exc:
        raise StorageError(f"Ray Serve did not start the models: {exc}") from exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        undeploy(applications, settings.shutdown_timeout_s + 10)
        if options.address is None and started_ray:
            # the cluster is this process's own: its controller and proxy go with it (a
            # graceful serve.shutdown() would hold the proxy's 30 s draining period for a
            # load balancer there is none of)
            ray.shutdown()
        elif not serve.status().applications:  # a shared cluster: others' Serve apps stay
            serve.shutdown()


def _free_port(host: str) -> int:
    # Ray's proxy binds a given port; ask the OS for a free one first
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
