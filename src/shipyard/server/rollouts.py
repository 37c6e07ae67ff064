"""A server's part in its models' rollouts: obey the routing, gather the evidence, and (on
the one replica holding a rollout's lease) drive it.

Every reload interval, after the aliases are followed:

1. the evidence this replica has gathered of each rollout's current step is written to
   the database (its own row; the controller sums every replica's);
2. the controller (``rollout.controller``) moves every rollout whose lease this replica
   holds — its candidate warmed here first;
3. each model's split and mirror are set from its unfinished rollout: the candidate loaded
   and warmed beside the current version before it takes any request, unloaded when the
   rollout ends without promoting it; and the rollout's weight, phase and latest checks go
   to the metrics.

On the request path a split model costs ``observe`` (a few counters) and a mirrored one a
task started after the client's answer is sent (``mirror``): the candidate runs the same
payload, its answer is compared with the one sent and then dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.errors import OverloadedError, ShipyardError
from shipyard.monitor.performance import task_of
from shipyard.registry import ModelRef, Registry, Signature
from shipyard.registry.rollouts import Rollout
from shipyard.rollout.controller import SHADOW_SUFFIX, RolloutController
from shipyard.rollout.evidence import StepEvidence
from shipyard.rollout.spec import RolloutSpec, Strategy
from shipyard.rollout.split import Split
from shipyard.rollout.states import State
from shipyard.runtime.runner import ModelRunner
from shipyard.server.metrics import Metrics
from shipyard.settings import Settings

if TYPE_CHECKING:
    from shipyard.server.deployments import Deployment, DeploymentManager

log = logging.getLogger("shipyard.server")

MIRRORED = (Strategy.SHADOW, Strategy.BLUE_GREEN)
SHADOW_ID = SHADOW_SUFFIX.encode()
LOAD_TIMEOUT_S = 600.0


@dataclass
class Following:
    """What this replica holds of one model's unfinished rollout."""

    rollout: int
    revision: int
    step: int
    baseline: int
    candidate: int
    signature: Signature
    task: str
    evidence: StepEvidence = field(default_factory=StepEvidence)
    mirror: float = 0.0  # the share of requests mirrored to the candidate (0: none)
    slice_input: str | None = None
    slice_column: int | None = None
    mirrors_running: int = 0


class RolloutFollower:
    def __init__(
        self,
        manager: DeploymentManager,
        registry: Registry,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.manager = manager
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self.replica = settings.monitor.replica or f"{socket.gethostname()}:{os.getpid()}"
        self.following: dict[str, Following] = {}  # by model name
        self.mirrored: dict[str, Following] = {}  # the models whose requests are mirrored
        self.last: dict[str, int] = {}  # each model's latest rollout, finished or not
        self.controller = RolloutController(
            registry,
            self.replica,
            lease_s=settings.rollout_lease_s,
            serves=lambda model: model in manager.deployments,
            warm=self._warm,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # Each reload interval ---------------------------------------------------------------

    async def poll(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._write_evidence)
        if self.settings.rollouts:
            await asyncio.to_thread(self.controller.tick)
        rollouts = await asyncio.to_thread(self.registry.rollouts.active)
        await self._follow({r.model: r for r in rollouts if r.model in self.manager.deployments})

    def _write_evidence(self) -> None:
        for following in list(self.following.values()):
            evidence = following.evidence
            for side in (evidence.baseline, evidence.candidate):
                side.digest(following.signature, following.task)
            self.registry.rollouts.write_evidence(
                following.rollout, following.step, self.replica, evidence.document()
            )

    def _warm(self, model: str, version: int) -> None:
        """The controller's pre-flight load (from its thread): the candidate warmed here."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self.manager.load(model, version), self._loop)
        future.result(LOAD_TIMEOUT_S)

    async def _follow(self, rollouts: dict[str, Rollout]) -> None:
        for name, deployment in self.manager.deployments.items():
            rollout = rollouts.get(name)
            current = deployment.current
            if rollout is None or current is None or current.version.version != rollout.baseline:
                await self._end(name, deployment)
                continue
            self.last[name] = rollout.id
            self._publish(rollout)
            held = self.following.get(name)
            if held is not None and (held.rollout, held.revision) == (rollout.id, rollout.revision):
                continue
            try:
                await self._obey(name, deployment, rollout, held)
            except ShipyardError as exc:
                log.error("%s: cannot follow rollout %s: %s", name, rollout.id, exc.message)

    async def _obey(
        self, name: str, deployment: Deployment, rollout: Rollout, held: Following | None
    ) -> None:
        spec = RolloutSpec.from_document(rollout.spec)
        mirror = (
            spec.mirror
            if spec.strategy in MIRRORED and rollout.state == State.PROGRESSING.value
            else 0.0
        )
        if (rollout.weight > 0 or mirror > 0) and rollout.candidate not in deployment.runners:
            await self.manager.load(name, rollout.candidate)
        if held is None or (held.rollout, held.step) != (rollout.id, rollout.step):
            held = self._hold(rollout, spec)
            self.following[name] = held
            deployment.routed = [0, 0]
        held.revision, held.mirror = rollout.revision, mirror
        if mirror > 0:
            self.mirrored[name] = held
        else:
            self.mirrored.pop(name, None)
        if rollout.weight > 0:
            sticky = spec.sticky_header
            deployment.split = Split(
                rollout.baseline, rollout.candidate, min(rollout.weight, 1.0),
                salt=f"rollout-{rollout.id}",
                sticky_header=sticky.lower() if sticky is not None else None,
            )  # fmt: skip
            log.info("%s: %.2f%% to version %s", name, rollout.weight * 100, rollout.candidate)
        else:
            deployment.split = None
        self.manager.observing = bool(self.following)

    def _hold(self, rollout: Rollout, spec: RolloutSpec) -> Following:
        baseline = self.registry.get_version(ModelRef(rollout.model, version=rollout.baseline))
        slice_input, slice_column = _slice(spec.slice_feature)
        return Following(
            rollout.id, rollout.revision, rollout.step, rollout.baseline, rollout.candidate,
            baseline.signature, task_of(baseline), slice_input=slice_input,
            slice_column=slice_column,
        )  # fmt: skip

    async def _end(self, name: str, deployment: Deployment) -> None:
        held = self.following.pop(name, None)
        self.mirrored.pop(name, None)
        self.manager.observing = bool(self.following)
        if held is None:
            if name in self.last:
                await self._publish_finished(name)
            return
        finished = await self._publish_finished(name)
        current = deployment.current
        if (
            finished is not None
            and finished.state == State.SUCCEEDED.value
            and finished.weight >= 1.0
            and held.candidate in deployment.runners
            and RolloutSpec.from_document(finished.spec).alias == deployment.follow
        ):
            # promoted: every request goes to the candidate from now, not back to the
            # baseline until this replica follows the alias (the switch ends the split)
            deployment.split = Split(
                held.baseline, held.candidate, 1.0, salt=f"rollout-{finished.id}"
            )
            return
        deployment.split = None
        log.info("%s: the rollout's split ended", name)
        if (
            held.candidate in deployment.runners
            and current is not None
            and current.version.version != held.candidate
        ):
            await self.manager.unload(name, held.candidate)

    # Metrics --------------------------------------------------------------------------------

    def _publish(self, rollout: Rollout) -> None:
        weights = {
            str(rollout.baseline): 1.0 - rollout.weight,
            str(rollout.candidate): rollout.weight,
        }
        checks = {
            name: str(check.get("outcome"))
            for name, check in ((rollout.analysis or {}).get("checks") or {}).items()
        }
        self.metrics.rollout_state(rollout.model, rollout.state, weights, checks)

    async def _publish_finished(self, name: str) -> Rollout | None:
        """The model's last rollout, finished, its final phase published once."""
        rollout_id = self.last.pop(name, None)
        if rollout_id is None:
            return None
        try:
            rollout = await asyncio.to_thread(self.registry.rollouts.get, rollout_id)
        except ShipyardError:
            self.metrics.rollout_state(name, None, {}, {})
            return None
        self._publish(rollout)
        return rollout

    # The request path ---------------------------------------------------------------------

    def observe(
        self, runner: ModelRunner, status: int, seconds: float, outputs: dict[str, Any] | None
    ) -> None:
        """One request of a split model answered (or failed) by ``runner``."""
        held = self.following.get(runner.name)
        if held is None or held.mirror > 0:
            return
        version = runner.version.version
        if version == held.candidate:
            held.evidence.candidate.record(status, seconds, outputs)
        elif version == held.baseline:
            held.evidence.baseline.record(status, seconds, outputs)

    def mirror(
        self,
        runner: ModelRunner,
        payload: Any,
        rows: int,
        outputs: dict[str, Any],
        seconds: float,
        request_id: bytes,
    ) -> None:
        """After the client has its answer: maybe send the same payload to the candidate."""
        held = self.mirrored.get(runner.name)
        if held is None or runner.version.version != held.baseline:
            return
        if held.mirror < 1.0 and np.random.random() >= held.mirror:
            return
        deployment = self.manager.deployments.get(runner.name)
        candidate = deployment.runners.get(held.candidate) if deployment else None
        if candidate is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._shadow(held, candidate, payload, rows, outputs, seconds, request_id)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(
        self,
        held: Following,
        candidate: ModelRunner,
        payload: Any,
        rows: int,
        outputs: dict[str, Any],
        seconds: float,
        request_id: bytes,
    ) -> None:
        started = time.perf_counter()
        answer: dict[str, Any] | None = None
        try:
            future = candidate.submit(payload, rows, None, request_id + SHADOW_ID)
            answer = await candidate.result(future, None)
            status = 200
        except OverloadedError:
            return  # the candidate's queue is full: a mirrored request is dropped, not judged
        except Exception:
            status = 500
        evidence = held.evidence
        evidence.baseline.record(200, seconds, outputs)
        evidence.candidate.record(status, time.perf_counter() - started, answer)
        if answer is None:
            evidence.paired.failed += 1
            return
        try:
            evidence.paired.compare(
                held.signature, held.task, outputs, answer, _slice_values(held, payload, rows)
            )
        except (KeyError, ValueError, TypeError, IndexError):
            evidence.paired.failed += 1

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _slice(feature: str | None) -> tuple[str | None, int | None]:
    """``name`` or ``name[i]``: an input, or one column of a two-dimensional input."""
    if feature is None:
        return None, None
    name, bracket, rest = feature.partition("[")
    if bracket and rest.endswith("]") and rest[:-1].isdigit():
        return name, int(rest[:-1])
    return feature, None


def _slice_values(held: Following, payload: Any, rows: int) -> list[str] | None:
    if held.slice_input is None or not isinstance(payload, dict):
        return None
    values = payload.get(held.slice_input)
    if values is None:
        return None
    array = np.asarray(values).reshape(rows, -1)
    column = array[:, held.slice_column or 0]
    return [str(value.item() if hasattr(value, "item") else value) for value in column]
