"""The rollout controller: each tick, every unfinished rollout one step further.

A server runs ``tick`` every reload interval. For each unfinished rollout of a model it
serves, it takes (or keeps) the rollout's lease, ``rollout:{id}``: of many replicas on one
database exactly one drives a rollout, and every write it makes is fenced by the lease's
token (``registry.leases``). What it does depends on the state the row is in, so a new
controller, after a restart or a kill -9 or on another replica, carries on from the row:

- pending: to validating;
- validating: the pre-flight (``preflight``) and a warm load of the candidate, then
  progressing at the strategy's first weight (canary: the first step; A/B: the split;
  shadow and blue-green: none, the candidate sees mirrored traffic), or rolling back;
- progressing: once per interval an analysis of the step's evidence, summed over every
  replica's (``evidence``, ``checks``, ``analysis.judge``): the next step, promoting after
  the last one, holding, pausing on a sample-ratio mismatch, or rolling back;
- promoting: the alias moves to the candidate, then succeeded;
- rolling back: the candidate's weight goes to 0 and the alias stays, then rolled back.

An operator's command (promote, abort, resume) is left in the row and carried out here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shipyard.errors import ConflictError, ShipyardError
from shipyard.monitor.performance import predicted_values, task_of
from shipyard.registry import ModelRef, ModelVersion, Registry
from shipyard.registry.leases import Lease
from shipyard.registry.rollouts import Rollout
from shipyard.registry.store import utcnow
from shipyard.rollout import preflight
from shipyard.rollout.analysis import Next, Verdict, decision_document, judge
from shipyard.rollout.checks import Feedback, LabelledPairs, analyse
from shipyard.rollout.evidence import StepEvidence
from shipyard.rollout.offline import offline_check, row_scores
from shipyard.rollout.sequential import Outcome, Summary
from shipyard.rollout.spec import RolloutSpec, Strategy
from shipyard.rollout.states import State, move

log = logging.getLogger("shipyard.rollout")

# A mirrored request runs, and is logged, under the request's id and this suffix, so its
# answer is never taken for the one the client got, and labels for the request reach both.
SHADOW_SUFFIX = ":shadow"
Warm = Callable[[str, int], None]  # load and warm a version, raising if it cannot
MOVES_PER_TICK = 6  # pending -> validating -> progressing in one tick; never a loop
COMMANDS = ("promote", "abort", "resume")


def lease_name(rollout_id: int) -> str:
    return f"rollout:{rollout_id}"


class RolloutController:
    def __init__(
        self,
        registry: Registry,
        holder: str,
        *,
        lease_s: float = 15.0,
        serves: Callable[[str], bool] | None = None,
        warm: Warm | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.registry = registry
        self.store = registry.rollouts
        self.holder = holder
        self.lease_s = lease_s
        self.serves = serves or (lambda model: True)
        self.warm = warm
        self.clock = clock

    def tick(self) -> list[Rollout]:
        """Drive every unfinished rollout this controller may; the rollouts as it left them."""
        driven = []
        for rollout in self.store.active():
            if not self.serves(rollout.model):
                continue
            lease = self.registry.leases.acquire(lease_name(rollout.id), self.holder, self.lease_s)
            if lease is None:
                continue  # another replica drives it
            try:
                driven.append(self.drive(rollout, lease))
            except ConflictError as exc:  # a lost lease, or another writer moved it first
                log.warning("rollout %s: %s", rollout.id, exc.message)
        return driven

    def drive(self, rollout: Rollout, lease: Lease) -> Rollout:
        for _ in range(MOVES_PER_TICK):
            moved = self._step(rollout, lease)
            if moved is None:
                break
            rollout = moved
            if rollout.finished_at is not None:
                self.registry.leases.release(lease)
                break
        return rollout

    # One move ----------------------------------------------------------------------------

    def _step(self, rollout: Rollout, lease: Lease) -> Rollout | None:
        """The rollout after one move, or None when it waits."""
        state = State(rollout.state)
        spec = RolloutSpec.from_document(rollout.spec)
        if rollout.command is not None:
            moved = self._command(rollout, lease, state, spec)
            if moved is not None:
                return moved
        if state is State.PENDING:
            return move(self.store, lease, rollout, State.VALIDATING, "pre-flight started")
        if state is State.VALIDATING:
            return self._validate(rollout, lease, spec)
        if state is State.PROGRESSING:
            return self._analyse(rollout, lease, spec)
        if state is State.PROMOTING:
            return self._promote(rollout, lease, spec)
        if state is State.ROLLING_BACK:
            return move(
                self.store, lease, rollout, State.ROLLED_BACK,
                f"{rollout.model}:{rollout.candidate} takes no traffic; "
                f"{spec.alias} stays at {rollout.baseline}",
                weight=0.0,
            )  # fmt: skip
        return None  # paused: an operator resumes, promotes or aborts it

    def _command(
        self, rollout: Rollout, lease: Lease, state: State, spec: RolloutSpec
    ) -> Rollout | None:
        command = rollout.command
        if command == "abort" and state not in (State.PROMOTING, State.ROLLING_BACK):
            return move(
                self.store, lease, rollout, State.ROLLING_BACK, "aborted by an operator",
                weight=0.0, command_done=True,
            )  # fmt: skip
        if command == "promote" and state in (State.VALIDATING, State.PROGRESSING, State.PAUSED):
            return move(
                self.store, lease, rollout, State.PROMOTING, "promoted by an operator",
                command_done=True,
            )  # fmt: skip
        if command == "resume" and state is State.PAUSED:
            return move(
                self.store, lease, rollout, State.PROGRESSING, "resumed by an operator",
                step=rollout.step + 1, restart_clock=True, command_done=True,
            )  # fmt: skip
        # a command that does not apply in this state is dropped, with its reason
        return self.store.drop_command(
            lease, rollout.id, f"{command} does not apply to a {state.value} rollout"
        )

    def _validate(self, rollout: Rollout, lease: Lease, spec: RolloutSpec) -> Rollout:
        try:
            baseline = self._version(rollout.model, rollout.baseline)
            candidate = self._version(rollout.model, rollout.candidate)
            preflight.require_compatible(baseline, candidate)
            if self.warm is not None:
                self.warm(rollout.model, rollout.candidate)
            offline = offline_check(self.registry, baseline, candidate, spec)
        except ShipyardError as exc:
            return self._refuse(rollout, lease, f"pre-flight: {exc.message}", {})
        evidence = {}
        if offline is not None:
            evidence["offline"] = decision_document(offline.decision) | offline.details
            if offline.decision.outcome is Outcome.FAIL:
                return self._refuse(
                    rollout, lease,
                    f"pre-flight: {offline.decision.reason}, worse by more than "
                    f"{offline.details['tolerance']:.4g}",
                    evidence,
                )  # fmt: skip
        weight = {Strategy.CANARY: spec.steps[0], Strategy.AB: spec.split}.get(spec.strategy, 0.0)
        how = (
            f"{weight * 100:g}% of traffic"
            if weight
            else f"{spec.mirror * 100:g}% of traffic mirrored"
        )
        return move(
            self.store, lease, rollout, State.PROGRESSING,
            f"pre-flight passed: {rollout.model}:{rollout.candidate} takes {how}", evidence,
            weight=weight, step=rollout.step + 1, restart_clock=True,
        )  # fmt: skip

    def _refuse(
        self, rollout: Rollout, lease: Lease, reason: str, checks: dict[str, Any]
    ) -> Rollout:
        """Roll back before any traffic; the pre-flight is the rollout's analysis, so its
        status and history say why."""
        analysis = {
            "at": self.clock().isoformat(), "step": rollout.step, "weight": 0.0,
            "next": Next.ROLL_BACK.value, "reason": reason, "checks": checks,
        }  # fmt: skip
        return move(
            self.store, lease, rollout, State.ROLLING_BACK, reason, checks,
            weight=0.0, analysis=analysis,
        )  # fmt: skip

    def _analyse(self, rollout: Rollout, lease: Lease, spec: RolloutSpec) -> Rollout | None:
        now = self.clock()
        started = rollout.step_started_at or rollout.updated_at
        last = _analysed_at(rollout) or started
        if (now - last).total_seconds() < spec.interval_s:
            return None
        evidence = StepEvidence.merge(self.store.evidence(rollout.id, rollout.step))
        baseline = self._version(rollout.model, rollout.baseline)
        task = task_of(baseline)
        feedback = self._feedback(rollout, spec, task, started)
        pairs = None
        if spec.strategy in (Strategy.SHADOW, Strategy.BLUE_GREEN) and task == "classification":
            pairs = self._labelled_pairs(rollout, started)
        checks = analyse(evidence, spec, task, rollout.weight, feedback, pairs)
        verdict = judge(checks, rollout.failures, spec, (now - started).total_seconds())
        verdict = _decide_goal(verdict, checks, spec)
        analysis = {
            "at": now.isoformat(), "step": rollout.step, "weight": rollout.weight,
            "next": verdict.next.value, "reason": verdict.reason, "checks": verdict.evidence,
            "requests": {
                "baseline": evidence.baseline.requests, "candidate": evidence.candidate.requests,
            },
        }  # fmt: skip
        if verdict.next is Next.ADVANCE:
            following = [w for w in spec.steps if w > rollout.weight + 1e-9]
            if spec.strategy is Strategy.CANARY and following:
                return move(
                    self.store, lease, rollout, State.PROGRESSING,
                    f"step passed: {following[0] * 100:g}% to {rollout.candidate}", analysis,
                    weight=following[0], step=rollout.step + 1, restart_clock=True,
                    analysis=analysis,
                )  # fmt: skip
            return move(
                self.store, lease, rollout, State.PROMOTING, verdict.reason, analysis,
                analysis=analysis,
            )  # fmt: skip
        if verdict.next is Next.ROLL_BACK:
            return move(
                self.store, lease, rollout, State.ROLLING_BACK, verdict.reason, analysis,
                weight=0.0, failures=verdict.failures, analysis=analysis,
            )  # fmt: skip
        if verdict.next is Next.PAUSE:
            return move(
                self.store, lease, rollout, State.PAUSED, verdict.reason, analysis,
                failures=verdict.failures, analysis=analysis,
            )  # fmt: skip
        if verdict.failures != rollout.failures:
            return move(
                self.store, lease, rollout, State.PROGRESSING, verdict.reason, analysis,
                failures=verdict.failures, analysis=analysis,
            )  # fmt: skip
        return self.store.record_analysis(lease, rollout.id, analysis)

    def _promote(self, rollout: Rollout, lease: Lease, spec: RolloutSpec) -> Rollout:
        if spec.strategy is Strategy.SHADOW and not spec.promote_shadow:
            return move(
                self.store, lease, rollout, State.SUCCEEDED,
                f"{rollout.model}:{rollout.candidate} passed in the shadow; "
                f"{spec.alias} stays at {rollout.baseline}",
                weight=0.0,
            )  # fmt: skip
        # the alias is not written under the lease: renewing it first narrows the window in
        # which a controller that lost its lease could still move it to a moment
        self.registry.leases.renew(lease, self.lease_s)
        self.registry.set_alias(
            rollout.model, spec.alias, rollout.candidate,
            reason=f"promoted by rollout {rollout.id}",
        )  # fmt: skip
        return move(
            self.store, lease, rollout, State.SUCCEEDED,
            f"{rollout.model}@{spec.alias} moved from {rollout.baseline} to {rollout.candidate}",
            weight=1.0,
        )  # fmt: skip

    # Reading ------------------------------------------------------------------------------

    def _version(self, model: str, version: int) -> ModelVersion:
        return self.registry.get_version(ModelRef(model, version=version))

    def _labelled_pairs(self, rollout: Rollout, since: datetime) -> LabelledPairs:
        """The baseline's labelled requests of the step beside the candidate's answers to
        their mirrors (logged under the request's id and SHADOW_SUFFIX), row by row."""
        baseline = self._version(rollout.model, rollout.baseline)
        candidate = self._version(rollout.model, rollout.candidate)
        mirrored = {
            record.request_id: record
            for record in self.registry.monitoring.predictions(candidate, since)
        }
        pairs = candidate_only = baseline_only = 0
        for record in self.registry.monitoring.predictions(baseline, since, labelled_only=True):
            shadow = mirrored.get(record.request_id + SHADOW_SUFFIX)
            if shadow is None or shadow.outputs is None or record.outputs is None:
                continue
            labels = record.label if isinstance(record.label, list) else [record.label]
            ours = predicted_values(baseline.signature, record.outputs, "classification")
            theirs = predicted_values(candidate.signature, shadow.outputs, "classification")
            if not len(labels) == len(ours) == len(theirs):
                continue
            for ours_right, theirs_right in zip(
                row_scores("accuracy", ours, labels), row_scores("accuracy", theirs, labels),
                strict=True,
            ):  # fmt: skip
                pairs += 1
                candidate_only += theirs_right > ours_right
                baseline_only += ours_right > theirs_right
        return LabelledPairs(pairs, candidate_only, baseline_only)

    def _feedback(
        self, rollout: Rollout, spec: RolloutSpec, task: str, since: datetime
    ) -> Feedback | None:
        """Labels that arrived for the step's requests, per version (None with none)."""
        metric = "accuracy" if task == "classification" else "mae" if spec.goal == "mae" else None
        if metric is None:
            return None
        summaries = []
        for number in (rollout.baseline, rollout.candidate):
            version = self._version(rollout.model, number)
            labelled = self.registry.monitoring.predictions(version, since, labelled_only=True)
            scores: list[float] = []
            for record in labelled:
                if record.outputs is None:
                    continue
                answers = predicted_values(version.signature, record.outputs, task)
                labels = record.label if isinstance(record.label, list) else [record.label]
                if len(labels) != len(answers):
                    continue
                scores.extend(row_scores(metric, answers, labels))
            summaries.append(Summary.of(scores))
        if summaries[1].n == 0:
            return None
        return Feedback(summaries[0], summaries[1], metric)


def _analysed_at(rollout: Rollout) -> datetime | None:
    analysis = rollout.analysis
    if not analysis or analysis.get("step") != rollout.step:
        return None
    return datetime.fromisoformat(str(analysis["at"]))


def _decide_goal(verdict: Verdict, checks: list[Any], spec: RolloutSpec) -> Verdict:
    """An A/B ends as soon as its goal is decided: a candidate shown worse loses at once,
    not after three failed analyses."""
    if spec.strategy is not Strategy.AB:
        return verdict
    for check in checks:
        if check.details.get("goal") and check.decision.outcome is Outcome.FAIL:
            reason = f"the baseline won on {spec.goal}: {check.decision.reason}"
            return Verdict(Next.ROLL_BACK, verdict.failures, reason, verdict.evidence)
    return verdict
