"""A rollout's states and the moves between them, checked before any is written.

    pending ─► validating ─► progressing ◄─► paused
                  │              │
                  │              ├─► promoting ─► succeeded
                  └──────────────┴─► rolling back ─► rolled back
    (any unfinished state) ─► failed     (the controller could not go on: a bug, a lost version)

``validating`` is the pre-flight and, for blue-green, the checks on mirrored traffic;
``progressing`` the steps of traffic; ``promoting`` moves the alias to the candidate.
Every move is written with the lease it is made under and an event with its evidence
(``registry.rollouts``), so a restarted or newly elected controller resumes from the row.
"""

from __future__ import annotations

import enum
from typing import Any

from shipyard.errors import ConflictError
from shipyard.registry.leases import Lease
from shipyard.registry.rollouts import Change, Rollout, RolloutStore


class State(enum.StrEnum):
    PENDING = "pending"
    VALIDATING = "validating"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    PROMOTING = "promoting"
    SUCCEEDED = "succeeded"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


FINAL = frozenset({State.SUCCEEDED, State.ROLLED_BACK, State.FAILED})

_MOVES: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.VALIDATING, State.ROLLING_BACK}),
    State.VALIDATING: frozenset({State.PROGRESSING, State.PROMOTING, State.ROLLING_BACK}),
    State.PROGRESSING: frozenset(
        {State.PROGRESSING, State.PAUSED, State.PROMOTING, State.ROLLING_BACK}
    ),
    State.PAUSED: frozenset({State.PROGRESSING, State.PROMOTING, State.ROLLING_BACK}),
    State.PROMOTING: frozenset({State.SUCCEEDED}),
    State.ROLLING_BACK: frozenset({State.ROLLED_BACK}),
}


def allowed(source: State, target: State) -> bool:
    """Whether a rollout may move from ``source`` to ``target``."""
    if target is State.FAILED:
        return source not in FINAL
    return target in _MOVES.get(source, frozenset())


def move(
    store: RolloutStore,
    lease: Lease,
    rollout: Rollout,
    target: State,
    reason: str,
    evidence: dict[str, Any] | None = None,
    *,
    weight: float | None = None,
    step: int | None = None,
    failures: int | None = None,
    actor: str | None = None,
    restart_clock: bool = False,
    analysis: dict[str, Any] | None = None,
    command_done: bool = False,
) -> Rollout:
    """Write one move of ``rollout`` (as last read) to ``target``, under ``lease``.
    ``restart_clock`` starts a new step's clock; ``analysis`` is kept as the latest;
    ``command_done`` clears the operator's command this move carries out."""
    source = State(rollout.state)
    if not allowed(source, target):
        raise ConflictError(f"rollout {rollout.id} cannot go from {source} to {target}")
    change = Change(
        target.value, weight, step, failures, finished=target in FINAL,
        restart_clock=restart_clock, analysis=analysis, command_done=command_done,
    )  # fmt: skip
    return store.transition(lease, rollout.id, source.value, change, reason, evidence or {}, actor)
