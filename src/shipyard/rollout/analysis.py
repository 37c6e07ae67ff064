"""One analysis of a rollout step: its checks' decisions become what the rollout does next.

- a failed check that halts (the sample-ratio mismatch) pauses the rollout: the split it was
  judged on is not the split that was configured, so no verdict on it can be trusted;
- a failed check counts one failure; at ``failure_threshold`` failures in all the rollout
  rolls back, below it the step holds;
- every check passing advances the step;
- otherwise the step waits (too little traffic is inconclusive, not a failure) until the
  progress deadline, when it rolls back.

Each verdict carries the evidence as a JSON document: every check's estimate, interval,
p-value and sample sizes, for the event that records the move.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from shipyard.rollout.sequential import Decision, Outcome
from shipyard.rollout.spec import RolloutSpec


class Next(enum.StrEnum):
    ADVANCE = "advance"
    HOLD = "hold"
    PAUSE = "pause"
    ROLL_BACK = "roll_back"


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # e.g. "error_ratio", "p99_latency", "agreement", "sample_ratio"
    decision: Decision
    halts: bool = False  # a failure pauses the rollout instead of counting
    details: dict[str, Any] = field(default_factory=dict)  # figures beside the decision's


@dataclass(frozen=True, slots=True)
class Verdict:
    next: Next
    failures: int  # failed analyses so far, this one included
    reason: str
    evidence: dict[str, Any]


def judge(checks: list[Check], failures: int, spec: RolloutSpec, step_age_s: float) -> Verdict:
    """What the rollout does after this analysis; ``step_age_s`` is how long the current
    step has run."""
    evidence = {check.name: decision_document(check.decision) | check.details for check in checks}
    failed = [check for check in checks if check.decision.outcome is Outcome.FAIL]
    halting = [check.name for check in failed if check.halts]
    if halting:
        return Verdict(
            Next.PAUSE, failures, f"{', '.join(halting)} failed: the rollout halts", evidence
        )
    if failed:
        failures += 1
        names = ", ".join(check.name for check in failed)
        if failures >= spec.failure_threshold:
            reason = f"{failures} failed analyses (last: {names}): rolling back"
            return Verdict(Next.ROLL_BACK, failures, reason, evidence)
        reason = f"{names} failed ({failures} of {spec.failure_threshold} before a rollback)"
        return Verdict(Next.HOLD, failures, reason, evidence)
    if checks and all(check.decision.outcome is Outcome.PASS for check in checks):
        return Verdict(Next.ADVANCE, failures, "every check passed", evidence)
    waiting = ", ".join(
        check.name for check in checks if check.decision.outcome is Outcome.INCONCLUSIVE
    )
    if step_age_s >= spec.deadline_s:
        reason = (
            f"no decision within the progress deadline ({spec.deadline_s:g} s); "
            f"inconclusive: {waiting or 'no checks'}"
        )
        return Verdict(Next.ROLL_BACK, failures, reason, evidence)
    return Verdict(Next.HOLD, failures, f"inconclusive: {waiting or 'no checks'}", evidence)


def decision_document(decision: Decision) -> dict[str, Any]:
    """A decision as JSON (an unbounded interval end is null)."""
    return {
        "outcome": decision.outcome.value,
        "estimate": _finite(decision.estimate),
        "low": _finite(decision.low),
        "high": _finite(decision.high),
        "p_value": _finite(decision.p_value),
        "n_candidate": decision.n_candidate,
        "n_baseline": decision.n_baseline,
        "reason": decision.reason,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
