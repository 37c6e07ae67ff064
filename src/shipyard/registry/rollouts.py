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
from shipyard.registry.schema import RolloutEvidenceRow, RolloutRow
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
    step_started_at: datetime | None = None
    analysis: dict[str, Any] | None = None  # the latest analysis, as the controller wrote it
    command: str | None = None  # an operator's request the controller has not carried out


@dataclass(frozen=True, slots=True)
class Change:
    """What a transition writes: the new state and, where they change, the traffic figures."""

    state: str
    weight: float | None = None
    step: int | None = None
    failures: int | None = None
    finished: bool = False  # the state is final: the model may start another rollout
    restart_clock: bool = False  # a new step (or phase) starts its clock now
    analysis: dict[str, Any] | None = None
    command_done: bool = False  # the operator's pending command is carried out by this move


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
                created_at=now, updated_at=now, step_started_at=now,
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
            if change.analysis is not None:
                row.analysis = change.analysis
            if change.command_done:
                row.command = None
            row.revision += 1
            row.updated_at = utcnow()
            if change.restart_clock:
                row.step_started_at = row.updated_at
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

    def record_analysis(self, lease: Lease, rollout_id: int, analysis: dict[str, Any]) -> Rollout:
        """Keep the latest analysis of a step that neither moved nor failed (no event: one
        per interval would drown the history), under ``lease``."""
        with self.database.session() as session:
            self.leases.check(session, lease)
            row = session.get(RolloutRow, rollout_id)
            if row is None:
                raise NotFoundError(f"rollout {rollout_id} does not exist")
            row.analysis = analysis
            session.flush()
            return _rollout(row)

    def request(self, rollout_id: int, command: str, actor: str | None) -> Rollout:
        """Leave an operator's command (promote, abort, resume) for the controller."""
        with self.database.session() as session:
            row = session.scalars(
                select(RolloutRow).where(RolloutRow.id == rollout_id).with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"rollout {rollout_id} does not exist")
            if row.finished_at is not None:
                raise ConflictError(f"rollout {rollout_id} is already {row.state}")
            row.command = command
            add_event(
                session, row.model, "rollout.requested", actor=actor, from_version=row.baseline,
                to_version=row.candidate, reason=f"{command} requested",
                details={"rollout": row.id, "command": command},
            )  # fmt: skip
            session.flush()
            return _rollout(row)

    def drop_command(self, lease: Lease, rollout_id: int, reason: str) -> Rollout:
        """Clear an operator's command that does not apply, recording why, under ``lease``."""
        with self.database.session() as session:
            self.leases.check(session, lease)
            row = session.get(RolloutRow, rollout_id)
            if row is None:
                raise NotFoundError(f"rollout {rollout_id} does not exist")
            command, row.command = row.command, None
            add_event(
                session, row.model, "rollout.dropped", actor=None, from_version=row.baseline,
                to_version=row.candidate, reason=reason,
                details={"rollout": row.id, "command": command, "lease_token": lease.token},
            )  # fmt: skip
            session.flush()
            return _rollout(row)

    def write_evidence(
        self, rollout_id: int, step: int, replica: str, document: dict[str, Any]
    ) -> None:
        """Replace what ``replica`` has seen of one step so far."""
        with self.database.session() as session:
            row = session.get(RolloutEvidenceRow, (rollout_id, step, replica))
            if row is None:
                session.add(
                    RolloutEvidenceRow(
                        rollout_id=rollout_id,
                        step=step,
                        replica=replica,
                        document=document,
                        updated_at=utcnow(),
                    )
                )
            else:
                row.document = document
                row.updated_at = utcnow()

    def evidence(self, rollout_id: int, step: int) -> list[dict[str, Any]]:
        """Every replica's evidence of one step."""
        query = select(RolloutEvidenceRow.document).where(
            RolloutEvidenceRow.rollout_id == rollout_id, RolloutEvidenceRow.step == step
        )
        with self.database.session() as session:
            return [dict(document) for document in session.scalars(query)]


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
        step_started_at=as_utc(row.step_started_at) if row.step_started_at is not None else None,
        analysis=dict(row.analysis) if row.analysis is not None else None,
        command=row.command,
    )
