"""What a user asks of rollouts, through the CLI or the API: start one, read it, promote,
abort, resume or undo.

Starting checks everything before anything is written: the settings, that the model has the
alias to roll from, that the candidate exists, is not the baseline and can stand in for it
(``preflight``), and that no other rollout of the model is unfinished (409). Promote, abort
and resume are left in the rollout's row for its controller, the server replica holding its
lease, which carries them out at its next tick. ``undo`` needs no controller: it moves the
alias straight back to the version the last promotion replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.errors import AliasNotFoundError, ConflictError, InvalidInputError, NotFoundError
from shipyard.registry import ModelRef, Registry
from shipyard.registry.rollouts import Rollout
from shipyard.rollout import preflight
from shipyard.rollout.spec import RolloutSpec
from shipyard.rollout.states import State


@dataclass(frozen=True)
class Undone:
    model: str
    alias: str
    from_version: int
    to_version: int
    rollout: int


def start(
    registry: Registry,
    model: str,
    candidate: int,
    settings: dict[str, Any] | None = None,
    actor: str | None = None,
) -> Rollout:
    """A new rollout of ``model`` to version ``candidate``, from where its alias points."""
    spec = RolloutSpec.from_document(settings or {})
    try:
        current = registry.get_version(ModelRef(model, alias=spec.alias))
    except AliasNotFoundError as exc:
        raise AliasNotFoundError(
            f"{model} has no {spec.alias} alias to roll out from ({exc.message}); "
            f"set one with `shipyard models alias {model} {spec.alias} VERSION`"
        ) from exc
    target = registry.get_version(ModelRef(model, version=candidate))
    preflight.require_compatible(current, target)
    return registry.rollouts.create(
        model, current.version, target.version, spec.strategy.value, State.PENDING.value,
        spec.document(), actor,
    )  # fmt: skip


def latest(registry: Registry, model: str) -> Rollout:
    """The model's unfinished rollout, else its last one."""
    registry.get_model(model)  # 404 for an unknown model
    history = registry.rollouts.history(model)
    if not history:
        raise NotFoundError(f"{model} has no rollouts")
    active = [r for r in history if r.finished_at is None]
    return active[-1] if active else history[-1]


def request(registry: Registry, model: str, command: str, actor: str | None = None) -> Rollout:
    """Leave ``command`` (promote, abort, resume) for the controller of the active rollout."""
    if command not in ("promote", "abort", "resume"):
        raise InvalidInputError(f"unknown rollout command {command!r}")
    rollout = latest(registry, model)
    if rollout.finished_at is not None:
        raise ConflictError(
            f"{model} has no unfinished rollout: rollout {rollout.id} is {rollout.state}"
        )
    if command == "resume" and rollout.state != State.PAUSED.value:
        raise ConflictError(f"rollout {rollout.id} is {rollout.state}, not paused")
    return registry.rollouts.request(rollout.id, command, actor)


def undo(registry: Registry, model: str, actor: str | None = None) -> Undone:
    """Point the alias of the model's last promotion back at the version it replaced."""
    promoted = [r for r in registry.rollouts.history(model) if r.state == State.SUCCEEDED.value]
    if not promoted:
        registry.get_model(model)
        raise NotFoundError(f"{model} has no promoted rollout to undo")
    last = promoted[-1]
    alias = RolloutSpec.from_document(last.spec).alias
    now = registry.get_version(ModelRef(model, alias=alias)).version
    if now != last.candidate:
        raise ConflictError(
            f"{model}@{alias} points at {now}, not at {last.candidate} that rollout {last.id} "
            "promoted: undo only reverts the last promotion"
        )
    registry.set_alias(
        model, alias, last.baseline, reason=f"undo of rollout {last.id} by {actor or 'someone'}"
    )
    return Undone(model, alias, last.candidate, last.baseline, last.id)
