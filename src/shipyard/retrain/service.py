"""``retrain``: the champion's own training command, run again on the traffic it served and
the labels that came back, its result gated offline against the champion and rolled out.

1. The champion (the version behind the alias, default ``production``) leads back to the
   run that trained it (through the versions it was optimized from) and that run's command.
2. One retrain of a model at a time: a lease in the database (409 while another holds it,
   on whichever machine).
3. The labelled traffic goes to a file, less a held-out share; the command runs as a new
   run (params ``retrain_data`` and ``retrain_of`` on top of the old run's) and must
   register a version of the model.
4. The candidate answers the held-out traffic beside the champion (``gate``); one that
   passes is rolled out (a strategy, or none). Every step is an event of the model.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.errors import ConflictError, InvalidInputError, RetrainError, ShipyardError
from shipyard.registry import ModelRef, ModelVersion, Registry
from shipyard.registry.leases import Lease
from shipyard.registry.rollouts import Rollout
from shipyard.registry.runs import Run
from shipyard.retrain.data import TrainingData, export_training_data
from shipyard.retrain.gate import GateResult, gate
from shipyard.rollout import service as rollouts
from shipyard.tracking.command import run_command

LEASE_TTL_S = 60.0
RENEW_EVERY_S = 20.0


@dataclass(frozen=True)
class RetrainOptions:
    alias: str = "production"
    since: datetime | None = None
    holdout: float = 0.3
    tolerance: float = 0.0  # how much worse than the champion the gate lets pass
    slice_feature: str | None = None
    strategy: str | None = "canary"  # None or "none": register and gate, roll out nothing
    rollout: dict[str, Any] = field(default_factory=dict)  # the rollout's settings
    trigger: str = "manual"  # what started it: manual, or the alert that did


@dataclass(frozen=True)
class RetrainResult:
    champion: ModelVersion
    run: Run
    data: TrainingData
    candidate: ModelVersion | None
    gate: GateResult | None
    rollout: Rollout | None

    @property
    def passed(self) -> bool:
        return self.gate is not None and self.gate.passed


def lease_name(model: str) -> str:
    return f"retrain:{model}"


def training_run(registry: Registry, version: ModelVersion) -> Run:
    """The run that trained ``version``, through the versions it was optimized from."""
    current: ModelVersion | None = version
    while current is not None:
        if current.run_id:
            return registry.runs.get(current.run_id)
        parent = current.parent_version
        current = registry.get_version(ModelRef(version.name, parent)) if parent else None
    raise InvalidInputError(
        f"{version.ref} was not registered from a run, so there is no training command to run "
        "again: register it with `run.register_model(...)` inside `shipyard.start_run(...)`, "
        "or train it with `shipyard run -- python train.py`"
    )


def retrain(
    registry: Registry,
    name: str,
    options: RetrainOptions | None = None,
    *,
    echo: Any = None,
    on_run: Callable[[Run], None] | None = None,
    on_spawn: Callable[[subprocess.Popen[str]], None] | None = None,
) -> RetrainResult:
    """Retrain ``name``'s champion on its labelled traffic; see the module's docstring.
    ``echo`` shows the training command's output as it comes (default: stdout)."""
    chosen = options or RetrainOptions()
    champion = registry.get_version(ModelRef(name, alias=chosen.alias))
    run = training_run(registry, champion)
    if not run.command:
        raise InvalidInputError(
            f"run {run.id} of {champion.ref} recorded no command (it was not started from a "
            "script): train it with `shipyard run -- COMMAND` so that a retrain can repeat it"
        )
    lease = registry.leases.acquire(lease_name(name), registry.actor or "shipyard", LEASE_TTL_S)
    if lease is None:
        holder = registry.leases.current(lease_name(name))
        raise ConflictError(
            f"a retrain of {name} is already running"
            + (f" ({holder.holder})" if holder else "")
            + ": one at a time per model; wait for it to finish"
        )
    stop = threading.Event()
    keeper = threading.Thread(target=_keep, args=(registry, lease, stop), daemon=True)
    keeper.start()
    try:
        return _retrain(registry, champion, run, chosen, echo, on_run, on_spawn)
    finally:
        stop.set()
        keeper.join()
        registry.leases.release(lease)


def _keep(registry: Registry, lease: Lease, stop: threading.Event) -> None:
    while not stop.wait(RENEW_EVERY_S):
        try:
            lease = registry.leases.renew(lease, LEASE_TTL_S)
        except ShipyardError:
            return  # lost: another may start; this one still finishes what it began


def _retrain(
    registry: Registry,
    champion: ModelVersion,
    old: Run,
    options: RetrainOptions,
    echo: Any,
    on_run: Callable[[Run], None] | None,
    on_spawn: Callable[[subprocess.Popen[str]], None] | None,
) -> RetrainResult:
    name = champion.name
    versions = registry.list_versions(name)
    with tempfile.TemporaryDirectory(prefix="shipyard-retrain-") as tmp:
        data = export_training_data(
            registry, versions, Path(tmp), since=options.since, holdout=options.holdout
        )
        registry.record_event(
            name,
            "retrain.started",
            from_version=champion.version,
            reason=f"{options.trigger}: {data.rows} rows of {data.requests} labelled requests",
            details={"trigger": options.trigger, "run": old.id, "rows": data.rows},
        )
        assert old.command is not None
        params = {**old.params, "retrain_data": str(data.path), "retrain_of": champion.ref}
        cwd = Path(old.command["cwd"])
        if not cwd.is_dir():
            raise _failed(registry, champion, f"the training command's folder {cwd} is gone")
        finished = run_command(
            registry,
            old.command["argv"],
            experiment=old.experiment,
            params=params,
            tags={"retrain_of": champion.ref, "trigger": options.trigger},
            cwd=cwd,
            echo=echo,
            on_start=on_run,
            on_spawn=on_spawn,
        )
    new_run = finished.run
    if finished.exit_code != 0:
        raise _failed(
            registry,
            champion,
            f"the training command failed ({new_run.error}); nothing was registered. Its "
            f"output is kept with run {new_run.id}: shipyard runs show {new_run.id[:8]}",
        )
    mine = [v for m, v in registry.runs.versions_of(new_run.id) if m == name]
    if not mine:
        raise _failed(
            registry,
            champion,
            f"the training command (run {new_run.id[:8]}) finished but registered no version "
            f"of {name}: it must call run.register_model(..., name={name!r})",
        )
    candidate = registry.get_version(ModelRef(name, max(mine)))
    result = gate(
        registry,
        champion,
        candidate,
        data.held_out,
        tolerance=options.tolerance,
        feature=options.slice_feature,
    )
    registry.record_event(
        name,
        "retrain.gated",
        from_version=champion.version,
        to_version=candidate.version,
        reason=("passed: " if result.passed else "refused: ") + result.reason,
        details=result.to_dict(),
    )
    rollout = None
    if result.passed and options.strategy not in (None, "none"):
        # The candidate learnt a changed world and answers differently from the champion by
        # design: its labels judge it in the rollout, not its likeness to the champion.
        settings = {
            "strategy": options.strategy,
            "alias": options.alias,
            "prediction_drift": False,
            **options.rollout,
        }
        rollout = rollouts.start(registry, name, candidate.version, settings, registry.actor)
    return RetrainResult(champion, new_run, data, candidate, result, rollout)


def _failed(registry: Registry, champion: ModelVersion, reason: str) -> RetrainError:
    registry.record_event(
        champion.name, "retrain.failed", from_version=champion.version, reason=reason
    )
    return RetrainError(reason)
