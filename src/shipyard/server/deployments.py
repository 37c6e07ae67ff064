"""What the server serves: per model, the version its alias points at, loaded and warmed.

The registry is the control plane: a watcher polls it, and when a followed alias moves the
new version is loaded and warmed beside the old one, traffic switches in one assignment,
and the old version is drained (its queued and running requests finish) and unloaded. A
version that fails to load leaves the old one serving and records an event.

While the registry cannot be reached (``reachability``) every loaded version keeps serving:
the watcher retries each interval without counting the failures against the version, a new
load answers RegistryUnavailableError (503), and the first tick that goes through again
follows whatever moved meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.errors import (
    ConflictError,
    ModelNotFoundError,
    NotReadyError,
    RegistryUnavailableError,
    ShipyardError,
    StorageError,
    VersionNotFoundError,
)
from shipyard.monitor.live import LiveMonitor
from shipyard.registry import ModelKind, ModelRef, ModelVersion, Registry
from shipyard.rollout.split import Split
from shipyard.runtime.batcher import Pending
from shipyard.runtime.loading import load_version
from shipyard.runtime.predictor import MODEL_FILE, Predictor, StageTimes, coerce
from shipyard.runtime.runner import ModelRunner, RunnerState
from shipyard.runtime.session import Threading
from shipyard.server.interface import ModelInterface
from shipyard.server.metrics import Metrics
from shipyard.server.reachability import Reachability
from shipyard.server.rollouts import RolloutFollower
from shipyard.settings import Settings

log = logging.getLogger("shipyard.server")

# a request's headers as ASGI gives them
Headers = list[tuple[bytes, bytes]]

DEFAULT_ALIAS = "production"
SMALL_MODEL_BYTES = 1 << 20  # below this, one runtime thread beats a pool of spinning ones


@dataclass
class Deployment:
    """One served model name."""

    name: str
    follow: str | None  # the alias it follows, or None when pinned to a version
    current: ModelRunner | None = None
    interfaces: dict[int, ModelInterface] = field(default_factory=dict)
    runners: dict[int, ModelRunner] = field(default_factory=dict)  # every loaded version
    switching: bool = False
    # while a rollout moves traffic: its split, and the requests each side was routed
    # (baseline, candidate) in the rollout's current step
    split: Split | None = None
    routed: list[int] = field(default_factory=lambda: [0, 0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "follows": self.follow,
            "current_version": self.current.version.version if self.current else None,
            "split": (
                {
                    "candidate": self.split.candidate,
                    "weight": self.split.weight,
                    "routed": {"baseline": self.routed[0], "candidate": self.routed[1]},
                }
                if self.split is not None
                else None
            ),
            "versions": [
                {
                    "version": v,
                    "state": r.state.value,
                    "queued_rows": r.batcher.queued_rows,
                    "in_flight": r.batcher.in_flight,
                    "max_batch_size": r.batching.max_batch_size,
                    "max_batch_delay_ms": r.batching.max_batch_delay_ms,
                }
                for v, r in sorted(self.runners.items())
            ],
        }


class DeploymentManager:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        metrics: Metrics,
        models: list[str] | None = None,
        monitor: LiveMonitor | None = None,
    ) -> None:
        self.settings = settings
        self.monitor = monitor
        self.registry = registry
        self.metrics = metrics
        self.requested = models  # None: every model with a production alias
        self.deployments: dict[str, Deployment] = {}
        self.ready = False
        self.startup_error: str | None = None
        self.reachability = Reachability()
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False
        self._targets: list[tuple[str, str | None, int]] = []
        self.rollouts = RolloutFollower(self, registry, settings, metrics)
        self.observing = False  # some model's rollout gathers evidence from its requests
        self._baking: set[asyncio.Task[None]] = set()

    def runners(self) -> Iterator[ModelRunner]:
        for deployment in list(self.deployments.values()):
            yield from list(deployment.runners.values())

    # Start and stop ----------------------------------------------------------------------

    async def prepare(self) -> None:
        """Resolve what to serve (fails fast on a missing model, version or alias)."""
        self._targets = await asyncio.to_thread(self.resolve)

    async def start(self) -> None:
        """Load every model to serve, then follow the registry."""
        try:
            for name, follow, version in self._targets:
                deployment = self.deployments.setdefault(name, Deployment(name, follow))
                runner = await self.load(name, version)
                deployment.current = runner
            self.ready = True
        except ShipyardError as exc:
            self.startup_error = exc.message
            log.error("startup failed: %s", exc.message)
            raise
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="registry-watch")

    def resolve(self) -> list[tuple[str, str | None, int]]:
        """(name, alias followed or None, version) for every model to serve."""
        if self.requested is None:
            targets = self.registry.alias_targets(DEFAULT_ALIAS)
            return [(name, DEFAULT_ALIAS, version) for name, version in sorted(targets.items())]
        result: list[tuple[str, str | None, int]] = []
        for text in self.requested:
            ref = ModelRef.parse(text)
            if ref.version is not None:
                result.append((ref.name, None, ref.version))
                self.registry.get_version(ref)  # fail fast on a missing version
                continue
            alias = ref.alias or DEFAULT_ALIAS
            try:
                version = self.registry.get_version(ModelRef(ref.name, alias=alias)).version
            except ShipyardError:
                if ref.alias is not None:
                    raise
                # a bare name without a production alias serves its latest version, pinned
                result.append((ref.name, None, self.registry.get_version(ref).version))
                continue
            result.append((ref.name, alias, version))
        return result

    async def close(self) -> None:
        self._closing = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.rollouts.close()
        for task in list(self._baking):
            task.cancel()
        await asyncio.gather(*(runner.drain() for runner in self.runners()))

    # Loading -----------------------------------------------------------------------------

    async def load(self, name: str, version: int, *, current_if_none: bool = False) -> ModelRunner:
        """Load and warm ``name:version`` (kept beside whatever is already loaded).

        With ``current_if_none``, a model that has no current version yet (one loaded through
        the management API) takes this one as its current, pinned version.
        """
        deployment = self.deployments.get(name)
        existing = deployment.runners.get(version) if deployment is not None else None
        if existing is not None and existing.state is RunnerState.READY:
            return existing
        started = time.perf_counter()
        try:
            model_version, predictor = await asyncio.to_thread(self._read, name, version)
        except StorageError as exc:
            self.reachability.failed(exc)
            raise RegistryUnavailableError(
                f"cannot load {name}:{version} now: {exc.message}; the versions loaded here "
                "keep serving, retry once the registry is back"
            ) from exc
        # only now: a name the registry lacks must not linger as a deployment "still loading"
        deployment = self.deployments.setdefault(name, Deployment(name, None))
        batching = self.settings.batching_for(name)
        runner = ModelRunner(model_version, predictor, batching, self._observe_batch)
        deployment.interfaces[version] = ModelInterface.of(model_version)
        deployment.runners[version] = runner
        try:
            await runner.warm_up(self._warm_up_payload(model_version))
        except Exception as exc:
            runner.state = RunnerState.FAILED
            deployment.runners.pop(version, None)
            deployment.interfaces.pop(version, None)
            await runner.drain()
            message = exc.message if isinstance(exc, ShipyardError) else repr(exc)
            raise NotReadyError(f"{name}:{version} failed its warm-up: {message}") from exc
        if current_if_none and deployment.current is None:
            deployment.current = runner
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.watch, model_version)
            runner.tap = self.monitor.tap(model_version)
        seconds = time.perf_counter() - started
        self.metrics.model_loaded(name, str(version), seconds)
        log.info("loaded %s:%s in %.2fs", name, version, seconds)
        return runner

    def _read(self, name: str, version: int) -> tuple[ModelVersion, Predictor]:
        model_version = self.registry.get_version(ModelRef(name, version=version))
        model_file = model_version.file(MODEL_FILE)  # sized by the manifest load_version verifies
        threads = self._threading(name, model_file.size if model_file is not None else 0)
        return model_version, load_version(self.registry, model_version, threads)

    def _threading(self, name: str, model_bytes: int) -> Threading:
        configured = self.settings.batching_for(name).intra_op_threads
        if configured is None and self.settings.intra_op_threads:
            configured = self.settings.intra_op_threads
        if configured is None:
            configured = 1 if model_bytes < SMALL_MODEL_BYTES else 0
        return Threading(
            intra_op=configured,
            inter_op=self.settings.inter_op_threads,
            allow_spinning=self.settings.ort_spinning,
        )

    @staticmethod
    def _warm_up_payload(version: ModelVersion) -> Any:
        example = version.input_example
        if version.kind is ModelKind.TEXT_EMBEDDING:
            return [example] if isinstance(example, str) else [str(t) for t in example]
        specs = version.signature.inputs
        if not isinstance(example, dict):
            example = {specs[0].name: example}
        return {spec.name: coerce(np.asarray(example[spec.name]), spec) for spec in specs}

    async def unload(self, name: str, version: int) -> None:
        deployment = self.deployments.get(name)
        runner = deployment.runners.get(version) if deployment else None
        if deployment is None or runner is None:
            raise VersionNotFoundError(f"{name}:{version} is not loaded")
        if deployment.current is runner:
            raise ConflictError(
                f"{name}:{version} is the current version of {name}; move its alias first"
            )
        deployment.runners.pop(version, None)
        await runner.drain()
        deployment.interfaces.pop(version, None)

    async def _record_switch(
        self, name: str, kind: str, previous: ModelRunner | None, version: int, reason: str
    ) -> None:
        await asyncio.to_thread(
            self.registry.record_event,
            name,
            kind,
            from_version=previous.version.version if previous else None,
            to_version=version,
            reason=reason,
        )

    async def switch(self, name: str, version: int, reason: str) -> None:
        """Load ``version`` beside the current one, switch traffic, drain and unload the old."""
        deployment = self.deployments[name]
        previous = deployment.current
        if previous is not None and previous.version.version == version:
            return
        deployment.switching = True
        try:
            try:
                runner = await self.load(name, version)
            except RegistryUnavailableError:
                raise  # not the version's fault: the watcher tries again next interval
            except Exception as exc:
                message = exc.message if isinstance(exc, ShipyardError) else repr(exc)
                log.error(
                    "could not load %s:%s, %s keeps serving: %s",
                    name,
                    version,
                    previous.version.ref if previous else "nothing",
                    message,
                )
                await self._record_switch(
                    name, "deployment.load_failed", previous, version, message
                )
                return
            promoted = deployment.split is not None and deployment.split.candidate == version
            deployment.current = runner  # the switch: new requests go to the new version
            deployment.split = None  # a split is of the old current; a rollout sets its own
            await self._record_switch(name, "deployment.switched", previous, version, reason)
            if previous is not None and promoted and self.settings.rollout_bake_s > 0:
                self._bake(name, previous.version.version)  # kept loaded for an instant undo
            elif previous is not None and previous is not runner:
                deployment.runners.pop(previous.version.version, None)
                await previous.drain()  # requests already queued there finish first
                deployment.interfaces.pop(previous.version.version, None)
        finally:
            deployment.switching = False

    def _bake(self, name: str, version: int) -> None:
        """Unload a promoted rollout's old version once the bake period has passed, unless
        it has become current again (an undo)."""

        async def unload_later() -> None:
            await asyncio.sleep(self.settings.rollout_bake_s)
            deployment = self.deployments.get(name)
            runner = deployment.runners.get(version) if deployment else None
            if deployment is not None and runner is not None and deployment.current is not runner:
                await self.unload(name, version)

        task = asyncio.get_running_loop().create_task(unload_later())
        self._baking.add(task)
        task.add_done_callback(self._baking.discard)

    # Following the registry -------------------------------------------------------------

    async def _watch(self) -> None:
        failed: dict[tuple[str, int], int] = {}
        while not self._closing:
            await asyncio.sleep(self.settings.reload_interval_s)
            try:
                await self._follow_aliases(failed)
                await self.rollouts.poll()
            except asyncio.CancelledError:
                raise
            except (StorageError, RegistryUnavailableError) as exc:
                self.reachability.failed(exc)  # logged once per outage; keep serving
            except Exception:
                log.exception("could not follow the registry (alias moves, rollouts)")
            else:
                self.reachability.succeeded()

    async def _follow_aliases(self, failed: dict[tuple[str, int], int]) -> None:
        aliases = {d.follow for d in self.deployments.values() if d.follow}
        if self.requested is None:
            aliases.add(DEFAULT_ALIAS)
        for alias in aliases:
            targets = await asyncio.to_thread(self.registry.alias_targets, alias)
            for name, version in targets.items():
                deployment = self.deployments.get(name)
                if deployment is None:
                    if self.requested is not None or alias != DEFAULT_ALIAS:
                        continue
                    deployment = self.deployments[name] = Deployment(name, DEFAULT_ALIAS)
                if deployment.follow != alias or deployment.switching:
                    continue
                current = deployment.current.version.version if deployment.current else None
                if version == current or failed.get((name, version), 0) >= 3:
                    continue
                await self.switch(name, version, reason=f"{name}@{alias} moved to {version}")
                now = deployment.current.version.version if deployment.current else None
                if now != version:
                    failed[(name, version)] = failed.get((name, version), 0) + 1

    # Routing -----------------------------------------------------------------------------

    def route(
        self, name: str, version: int | None, headers: Headers | None = None
    ) -> tuple[ModelRunner, ModelInterface]:
        deployment = self.deployments.get(name)
        if deployment is None:
            raise ModelNotFoundError(f"model {name!r} is not served here")
        if version is None:
            runner = deployment.current
            if runner is None:
                raise NotReadyError(f"model {name!r} is still loading")
            split = deployment.split
            if split is not None:
                runner = self._split(deployment, split, runner, headers)
        else:
            runner = deployment.runners.get(version)
            if runner is None:
                raise VersionNotFoundError(
                    f"version {version} of {name!r} is not loaded here; load it with "
                    f"POST /api/deployments/{name}/versions/{version}/load"
                )
        return runner, deployment.interfaces[runner.version.version]

    @staticmethod
    def _split(
        deployment: Deployment, split: Split, current: ModelRunner, headers: Headers | None
    ) -> ModelRunner:
        key = None
        if split.sticky_header is not None and headers is not None:
            wanted = split.sticky_header.encode()
            key = next((value for name, value in headers if name == wanted), None)
        chosen = deployment.runners.get(split.choose(key), current)
        deployment.routed[chosen is not current] += 1
        return chosen

    # Metrics -----------------------------------------------------------------------------

    def _observe_batch(
        self, runner: ModelRunner, batch: list[Pending], seconds: float, stages: StageTimes
    ) -> None:
        version = str(runner.version.version)
        self.metrics.batch_done(
            runner.name,
            version,
            sum(p.rows for p in batch),
            (p.started - p.enqueued for p in batch),
            stages,
        )
