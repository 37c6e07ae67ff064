"""The checks of one analysis: a step's evidence, candidate against baseline, as decisions.

- ``error_ratio``: the share of server errors, a non-inferiority test with a margin;
- ``p99_latency``: the share of the candidate's requests slower than the baseline's p99 plus
  a margin (a share of it, or a few milliseconds where that is more), against the
  baseline's own share over that line (non-inferiority), and, with an absolute SLO, the
  candidate's share over it against 1% (its p99 under the SLO);
- ``prediction_drift``: the candidate's answers against the baseline's on the same window —
  a classifier's class mix by the Jensen-Shannon distance, gated as the monitor gates it and
  confirmed by a strict chi-square; a regressor's mean by the shift in baseline deviations
  (a lower bound of the normed Wasserstein distance the monitor uses);
- ``sample_ratio``: the split served against the split configured; a mismatch halts;
- ``agreement`` (mirrored traffic): agreement rate, mean cosine or relative error against
  a floor, broken down by the chosen feature's top values;
- ``mcnemar`` (mirrored traffic, a classifier): once labels arrive for mirrored requests,
  whether the candidate is wrong where the baseline is right more often than the reverse;
- ``feedback``: once labels have arrived, accuracy (or error) candidate against baseline —
  a guardrail in a canary, the goal (a superiority test) in an A/B, where ``latency`` may
  also be the goal.

A check that cannot apply (no labels yet, an embedding's class mix) is left out rather than
reported inconclusive, so it never holds a step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shipyard.monitor.drift import chi_square, jensen_shannon
from shipyard.rollout.analysis import Check
from shipyard.rollout.evidence import Comparison, Side, StepEvidence
from shipyard.rollout.sequential import (
    ALPHA,
    Decision,
    Outcome,
    Summary,
    against_threshold,
    compare_means,
    compare_proportions,
    mcnemar_exact,
    paired_disagreement,
    sample_ratio_check,
)
from shipyard.rollout.spec import RolloutSpec, Strategy

TAIL = 0.01  # the share over a p99
# How much more of the candidate's traffic may lie over the line than the baseline's: two
# identical versions sharing a busy machine differ by a point in their tails.
TAIL_MARGIN = 0.02
DRIFT_P_VALUE = 0.001  # strict: the chi-square is a fixed-sample test, looked at each interval


@dataclass(frozen=True, slots=True)
class Feedback:
    """Labelled requests of each version in the step: rows and how many were right (a
    classifier) or the sum and sum of squares of the absolute error (a regressor)."""

    baseline: Summary
    candidate: Summary
    metric: str  # accuracy | mae


@dataclass(frozen=True, slots=True)
class LabelledPairs:
    """Mirrored rows whose label has arrived: how many, and of those exactly one version
    answered right, how many each (McNemar's discordant pairs)."""

    pairs: int
    candidate_only_right: int
    baseline_only_right: int


def analyse(
    evidence: StepEvidence,
    spec: RolloutSpec,
    task: str,
    weight: float,
    feedback: Feedback | None = None,
    labelled_pairs: LabelledPairs | None = None,
) -> list[Check]:
    """Every check that applies to this step."""
    base, cand = evidence.baseline, evidence.candidate
    mirrored = spec.strategy in (Strategy.SHADOW, Strategy.BLUE_GREEN)
    checks = [error_ratio(cand, base, spec)]
    if not mirrored:
        # a mirrored request waits behind the production traffic it copies: its latency says
        # little against production's, so a mirrored candidate answers only to the SLO
        checks.append(p99_latency(cand, base, spec))
    if spec.max_p99_ms is not None:
        checks.append(p99_slo(cand, spec))
    # an A/B is run because the answers are meant to differ: its goal judges them, not drift
    differ = spec.strategy is Strategy.AB or not spec.prediction_drift
    drift = None if differ else prediction_drift(cand, base, spec, task)
    if drift is not None:
        checks.append(drift)
    if mirrored:
        paired = evidence.paired
        checks.append(paired_check(paired.measure, paired.overall, paired.slices, spec))
    elif spec.sticky_header is None and 0.0 < weight < 1.0:
        # requests per user vary: a sticky split is judged by users, not by requests
        checks.append(
            Check(
                "sample_ratio", sample_ratio_check(base.requests, cand.requests, weight), halts=True
            )
        )
    if feedback is not None:
        checks.append(feedback_check(feedback, spec))
    if labelled_pairs is not None and (
        labelled_pairs.pairs >= spec.min_samples or spec.goal == "accuracy"
    ):  # a mirrored rollout with accuracy as its goal waits for its labels
        checks.append(mcnemar_check(labelled_pairs, spec.min_samples))
    if spec.goal == "latency":
        checks.append(latency_goal(cand, base, spec))
    return checks


def error_ratio(cand: Side, base: Side, spec: RolloutSpec) -> Check:
    decision = compare_proportions(
        cand.errors, cand.requests, base.errors, base.requests,
        margin=spec.max_error_ratio_increase, higher_is_better=False,
        min_samples=spec.min_samples,
    )  # fmt: skip
    return Check(
        "error_ratio",
        decision,
        details={
            "candidate_errors": cand.errors,
            "baseline_errors": base.errors,
        },
    )


def p99_latency(cand: Side, base: Side, spec: RolloutSpec) -> Check:
    baseline_p99 = base.p99()
    line = 0.0
    if math.isfinite(baseline_p99):
        line = max(
            baseline_p99 * (1.0 + spec.max_p99_increase), baseline_p99 + spec.p99_slack_ms / 1000
        )
    decision = compare_proportions(
        cand.slower_than(line), cand.requests, base.slower_than(line), base.requests,
        margin=TAIL_MARGIN, higher_is_better=False, min_samples=spec.min_samples,
    )  # fmt: skip
    return Check("p99_latency", decision, details=_p99s(cand, base) | {"line_ms": line * 1000})


def p99_slo(cand: Side, spec: RolloutSpec) -> Check:
    assert spec.max_p99_ms is not None
    over = cand.slower_than(spec.max_p99_ms / 1000.0)
    decision = against_threshold(
        Summary.proportion(over, cand.requests), TAIL, higher_is_better=False, tau=TAIL,
        min_samples=spec.min_samples,
    )  # fmt: skip
    return Check("p99_slo", decision, details={"candidate_p99_ms": _ms(cand.p99())})


def prediction_drift(cand: Side, base: Side, spec: RolloutSpec, task: str) -> Check | None:
    if task == "classification":
        return _class_drift(cand, base, spec)
    if task == "regression":
        return _value_drift(cand, base, spec)
    return None  # an embedding's answers are compared pairwise, on mirrored traffic


def _class_drift(cand: Side, base: Side, spec: RolloutSpec) -> Check:
    names = sorted(set(cand.classes) | set(base.classes))
    ours = np.asarray([base.classes.get(n, 0) for n in names], dtype=np.float64)
    theirs = np.asarray([cand.classes.get(n, 0) for n in names], dtype=np.float64)
    n_c, n_b = int(theirs.sum()), int(ours.sum())
    details = {"candidate_classes": dict(cand.classes), "baseline_classes": dict(base.classes)}
    if min(n_c, n_b) < spec.min_samples:
        decision = _undecided(math.nan, n_c, n_b, f"too few answers yet ({min(n_c, n_b)})")
        return Check("prediction_drift", decision, details=details)
    distance = jensen_shannon(ours, theirs)
    _, p_value = chi_square(ours, theirs)
    threshold = spec.max_prediction_drift
    if distance >= threshold and p_value < DRIFT_P_VALUE:
        outcome = Outcome.FAIL
        reason = f"the class mix drifted: Jensen-Shannon {distance:.3f} >= {threshold:g}"
    elif distance < threshold:
        outcome, reason = Outcome.PASS, f"Jensen-Shannon {distance:.3f} < {threshold:g}"
    else:
        outcome = Outcome.INCONCLUSIVE
        reason = f"Jensen-Shannon {distance:.3f}, not yet significant (p {p_value:.3g})"
    decision = Decision(outcome, distance, -math.inf, math.inf, p_value, n_c, n_b, reason)
    return Check("prediction_drift", decision, details=details)


def _value_drift(cand: Side, base: Side, spec: RolloutSpec) -> Check:
    ours = _summary(base.value_n, base.value_sum, base.value_squares)
    theirs = _summary(cand.value_n, cand.value_sum, cand.value_squares)
    scale = math.sqrt(ours.variance) if ours.variance > 0 else max(abs(ours.mean), 1.0)
    margin = spec.max_prediction_drift * scale
    options = {"margin": margin, "min_samples": spec.min_samples}
    lower = compare_means(theirs, ours, higher_is_better=True, **options)  # type: ignore[arg-type]
    upper = compare_means(theirs, ours, higher_is_better=False, **options)  # type: ignore[arg-type]
    outcomes = {lower.outcome, upper.outcome}
    if Outcome.FAIL in outcomes:
        outcome, reason = Outcome.FAIL, f"the mean answer moved by over {margin:.4g}"
    elif outcomes == {Outcome.PASS}:
        outcome, reason = Outcome.PASS, f"the mean answer moved by under {margin:.4g}"
    else:
        outcome, reason = Outcome.INCONCLUSIVE, lower.reason or upper.reason
    p_value = min(lower.p_value, upper.p_value)
    decision = Decision(
        outcome, lower.estimate, lower.low, lower.high, p_value, theirs.n, ours.n, reason
    )
    return Check("prediction_drift", decision, details={"scale": scale})


def paired_check(
    measure: str, overall: Comparison, slices: dict[str, Comparison], spec: RolloutSpec
) -> Check:
    """``agreement`` by the pairs' measure: agreement, cosine or relative_error."""
    floors = {
        "agreement": (spec.min_agreement, True),
        "cosine": (spec.min_cosine, True),
        "relative_error": (spec.max_relative_error, False),
    }
    floor, higher = floors.get(measure, floors["agreement"])
    sample = Summary(overall.n, overall.mean if overall.n else 0.0, overall.variance)
    details: dict[str, object] = {
        "measure": measure,
        "slices": {name: {"n": part.n, "mean": part.mean} for name, part in slices.items()},
    }
    return _paired(measure, sample, floor, higher, spec, details)


def _paired(
    measure: str,
    sample: Summary,
    floor: float,
    higher: bool,
    spec: RolloutSpec,
    details: dict[str, object],
) -> Check:
    decision = against_threshold(
        sample, floor, higher_is_better=higher, tau=0.01, min_samples=spec.min_samples
    )
    return Check("agreement", decision, details=details)


def mcnemar_check(labelled: LabelledPairs, min_samples: int) -> Check:
    """Do the two versions err on different requests, the candidate more often? Fails once
    the sequential McNemar test (``paired_disagreement``) shows the baseline right where the
    candidate is wrong more often than the reverse; the fixed-sample exact p-value is
    recorded beside it."""
    b, c = labelled.candidate_only_right, labelled.baseline_only_right
    p_value = paired_disagreement(b, c)
    estimate = (b - c) / labelled.pairs if labelled.pairs else 0.0  # accuracy: cand - base
    if labelled.pairs < min_samples:
        outcome = Outcome.INCONCLUSIVE
        reason = f"too few labelled mirrored rows yet ({labelled.pairs} < {min_samples})"
    elif p_value < ALPHA and c > b:
        outcome = Outcome.FAIL
        reason = f"the baseline alone was right on {c} rows, the candidate alone on {b}"
    else:
        outcome, reason = Outcome.PASS, f"not shown to err more ({b} against {c} rows)"
    decision = Decision(
        outcome, estimate, -math.inf, math.inf, p_value, labelled.pairs, labelled.pairs, reason
    )
    details = {
        "candidate_only_right": b, "baseline_only_right": c,
        "exact_p_value": mcnemar_exact(b, c),
    }  # fmt: skip
    return Check("mcnemar", decision, details=details)


def feedback_check(feedback: Feedback, spec: RolloutSpec) -> Check:
    higher = feedback.metric == "accuracy"
    goal = spec.strategy is Strategy.AB and spec.goal == feedback.metric
    margin = spec.min_effect if goal else spec.max_accuracy_drop
    decision = compare_means(
        feedback.candidate, feedback.baseline, margin=margin, higher_is_better=higher,
        superiority=goal, min_samples=spec.min_samples,
    )  # fmt: skip
    details = {
        "metric": feedback.metric,
        "candidate": feedback.candidate.mean,
        "baseline": feedback.baseline.mean,
        "goal": goal,
    }
    return Check("feedback", decision, details=details)


def latency_goal(cand: Side, base: Side, spec: RolloutSpec) -> Check:
    ours = _summary(base.requests, base.latency_sum, base.latency_squares)
    theirs = _summary(cand.requests, cand.latency_sum, cand.latency_squares)
    margin = max(spec.min_effect * ours.mean, 1e-6) if ours.n else 1e-6
    decision = compare_means(
        theirs, ours, margin=margin, higher_is_better=False, superiority=True,
        min_samples=spec.min_samples,
    )  # fmt: skip
    return Check("latency_goal", decision, details=_p99s(cand, base) | {"goal": True})


def _summary(n: int, total: float, squares: float) -> Summary:
    if n == 0:
        return Summary(0, 0.0, 0.0)
    mean = total / n
    variance = max(0.0, (squares - total * total / n) / (n - 1)) if n > 1 else 0.0
    return Summary(n, mean, variance)


def _undecided(estimate: float, n_c: int, n_b: int, reason: str) -> Decision:
    return Decision(Outcome.INCONCLUSIVE, estimate, -math.inf, math.inf, 1.0, n_c, n_b, reason)


def _p99s(cand: Side, base: Side) -> dict[str, float | None]:
    return {"candidate_p99_ms": _ms(cand.p99()), "baseline_p99_ms": _ms(base.p99())}


def _ms(seconds: float) -> float | None:
    return round(seconds * 1000.0, 3) if math.isfinite(seconds) else None
