"""The rollouts table: each rollout's state, the share of traffic its candidate takes, and its
configuration, with every change fenced by the controller's lease and written beside the
event that records why.

What the states mean and which moves are allowed is the rollout package's business; here a
change names the state it expects to find (so that two writers cannot both move a rollout
from the same state) and carries the lease it is made under.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from shipyard.errors import ConflictError, NotFoundError
from shipyard.registry.database import Database
from shipyard.registry.leases import Lease, LeaseStore
from shipyard.registry.schema import RolloutRow
from shipyard.registry.store import add_event, as_utc, utcnow


@dataclass(frozen=True, slots=True)
class Rollout:
    id: int
    model: str
    baseline: int
    candidate: int
    strategy: str
    state: str
    weight: float
    step: int
    failures: int
    revision: int
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class Change:
    """What a transition writes: the new state and, where they change, the traffic figures."""

    state: str
    weight: float | None = None
    step: int | None = None
    failures: int | None = None
    finished: bool = False  # the state is final: the model may start another rollout


class RolloutStore:
    def __init__(self, database: Database, leases: LeaseStore) -> None:
        self.database = database
        self.leases = leases

    def create(
        self,
        model: str,
        baseline: int,
        candidate: int,
        strategy: str,
        state: str,
        spec: dict[str, Any],
        actor: str | None,
    ) -> Rollout:
        """A new rollout of ``model``; refused while another of its rollouts is unfinished."""
        now = utcnow()
        with self.database.session() as session:
            active = session.scalars(
                select(RolloutRow)
                .where(RolloutRow.model == model, RolloutRow.finished_at.is_(None))
                .with_for_update()
            ).first()
            if active is not None:
                raise ConflictError(
                    f"{model} already has rollout {active.id} ({active.state}) of version "
                    f"{active.candidate}; abort it or let it finish first"
                )
            row = RolloutRow(
                model=model, baseline=baseline, candidate=candidate, strategy=strategy,
                state=state, weight=0.0, step=0, failures=0, revision=1, spec=spec,
                created_at=now, updated_at=now,
            )  # fmt: skip
            session.add(row)
            session.flush()
            add_event(
                session, model, f"rollout.{state}", actor=actor, from_version=baseline,
                to_version=candidate, reason=f"rollout {row.id} created ({strategy})",
                details={"rollout": row.id, "spec": spec},
            )  # fmt: skip
            return _rollout(row)

    def get(self, rollout_id: int) -> Rollout:
        with self.database.session() as session:
            row = session.get(RolloutRow, rollout_id)
            if row is None:
                raise NotFoundError(f"rollout {rollout_id} does not exist")
            return _rollout(row)

    def active(self, model: str | None = None) -> list[Rollout]:
        """The rollouts not finished (of one model, or of all), oldest first."""
        query = select(RolloutRow).where(RolloutRow.finished_at.is_(None))
        if model is not None:
            query = query.where(RolloutRow.model == model)
        with self.database.session() as session:
            return [_rollout(row) for row in session.scalars(query.order_by(RolloutRow.id))]

    def history(self, model: str) -> list[Rollout]:
        query = select(RolloutRow).where(RolloutRow.model == model).order_by(RolloutRow.id)
        with self.database.session() as session:
            return [_rollout(row) for row in session.scalars(query)]

    def transition(
        self,
        lease: Lease,
        rollout_id: int,
        expected: str,
        change: Change,
        reason: str,
        evidence: dict[str, Any],
        actor: str | None,
    ) -> Rollout:
        """Move a rollout from ``expected`` as ``change`` says, under ``lease``, with an
        event carrying the evidence that decided it; all in one transaction."""
        with self.database.session() as session:
            self.leases.check(session, lease)
            row = session.scalars(
                select(RolloutRow).where(RolloutRow.id == rollout_id).with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"rollout {rollout_id} does not exist")
            if row.state != expected:
                raise ConflictError(
                    f"rollout {rollout_id} is {row.state}, not {expected}: another writer moved it"
                )
            previous = {"state": row.state, "weight": row.weight, "step": row.step}
            row.state = change.state
            if change.weight is not None:
                row.weight = change.weight
            if change.step is not None:
                row.step = change.step
            if change.failures is not None:
                row.failures = change.failures
            row.revision += 1
            row.updated_at = utcnow()
            if change.finished:
                row.finished_at = row.updated_at
            add_event(
                session, row.model, f"rollout.{change.state}", actor=actor,
                from_version=row.baseline, to_version=row.candidate, reason=reason,
                details={
                    "rollout": row.id, "from": previous, "weight": row.weight, "step": row.step,
                    "failures": row.failures, "lease_token": lease.token, "evidence": evidence,
                },
            )  # fmt: skip
            session.flush()
            return _rollout(row)


def _rollout(row: RolloutRow) -> Rollout:
    return Rollout(
        id=row.id,
        model=row.model,
        baseline=row.baseline,
        candidate=row.candidate,
        strategy=row.strategy,
        state=row.state,
        weight=row.weight,
        step=row.step,
        failures=row.failures,
        revision=row.revision,
        spec=dict(row.spec),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        finished_at=as_utc(row.finished_at) if row.finished_at is not None else None,
    )
