"""A rollout's settings, validated with messages, and an analysis turned into the next move."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shipyard.errors import InvalidInputError
from shipyard.rollout.analysis import Check, Next, judge
from shipyard.rollout.sequential import (
    Summary,
    compare_means,
    compare_proportions,
    sample_ratio_check,
)
from shipyard.rollout.spec import DEFAULT_STEPS, RolloutSpec, Strategy

RISE = "canary steps must rise strictly within (0, 100] percent"
STRATEGIES = "canary, blue-green, ab, shadow"
SPEC = RolloutSpec(interval_s=1, deadline_s=10, failure_threshold=3)


def _errors(candidate_errors: int) -> Check:
    decision = compare_proportions(
        candidate_errors, 5000, 10, 5000, margin=0.01, higher_is_better=False
    )
    return Check("error_ratio", decision)


def _too_few() -> Check:
    return Check(
        "p99_latency", compare_means(Summary.of([1.0] * 3), Summary.of([1.0] * 3), margin=1)
    )


def _srm(baseline_served: int, candidate_served: int) -> Check:
    return Check(
        "sample_ratio", sample_ratio_check(baseline_served, candidate_served, 0.1), halts=True
    )


def test_the_defaults_are_flaggers() -> None:
    spec = RolloutSpec()
    assert (spec.strategy, spec.steps, spec.interval_s, spec.deadline_s) == (
        Strategy.CANARY, DEFAULT_STEPS, 60.0, 600.0,
    )  # fmt: skip
    assert spec.failure_threshold == 3
    assert RolloutSpec.from_document(spec.document()) == spec
    json.dumps(spec.document())


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"steps": [0.1, 0.05]}, f"{RISE}, got 10, 5"),
        ({"steps": [0.5, 1.5]}, f"{RISE}, got 50, 150"),
        ({"steps": [0, 0.5]}, f"{RISE}, got 0, 50"),
        ({"steps": []}, "a canary needs at least one step"),
        ({"interval_s": 0.5}, "interval_s must be at least 1 second, got 0.5"),
        ({"interval_s": 30, "deadline_s": 10}, "deadline_s (10) must be at least interval_s (30)"),
        ({"failure_threshold": 0}, "failure_threshold must be at least 1, got 0"),
        ({"mirror": 0}, "mirror must lie in (0, 1], got 0"),
        ({"strategy": "ab"}, "an A/B rollout needs a goal metric, one of accuracy, mae, latency"),
        ({"goal": "f1"}, "goal 'f1' is not one of accuracy, mae, latency"),
        ({"min_agreement": 1.5}, "min_agreement must lie in (0, 1], got 1.5"),
        ({"max_p99_ms": 0}, "max_p99_ms must be positive, got 0"),
        ({"strategy": "big-bang"}, f"strategy 'big-bang' is not one of {STRATEGIES}"),
        ({"weights": [1], "interval": 3}, "unknown rollout settings: interval, weights"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused(document: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        RolloutSpec.from_document(document)
    assert caught.value.message == message


def test_every_check_passing_advances() -> None:
    verdict = judge([_errors(10)], failures=0, spec=SPEC, step_age_s=1)
    assert (verdict.next, verdict.failures, verdict.reason) == (
        Next.ADVANCE,
        0,
        "every check passed",
    )
    evidence = verdict.evidence["error_ratio"]
    assert evidence["outcome"] == "pass"
    assert (evidence["n_candidate"], evidence["n_baseline"]) == (5000, 5000)
    assert evidence["low"] < evidence["estimate"] < evidence["high"]
    json.dumps(verdict.evidence, allow_nan=False)


def test_failures_accumulate_to_a_rollback() -> None:
    first = judge([_errors(200)], failures=0, spec=SPEC, step_age_s=1)
    assert (first.next, first.failures) == (Next.HOLD, 1)
    assert first.reason == "error_ratio failed (1 of 3 before a rollback)"
    third = judge([_errors(200), _too_few()], failures=2, spec=SPEC, step_age_s=2)
    assert (third.next, third.failures) == (Next.ROLL_BACK, 3)
    assert third.reason == "3 failed analyses (last: error_ratio): rolling back"


def test_too_little_traffic_waits_until_the_deadline_then_rolls_back() -> None:
    waiting = judge([_errors(10), _too_few()], failures=1, spec=SPEC, step_age_s=5)
    assert (waiting.next, waiting.failures, waiting.reason) == (
        Next.HOLD, 1, "inconclusive: p99_latency",
    )  # fmt: skip
    assert waiting.evidence["p99_latency"]["low"] is None  # unbounded, and valid JSON
    json.dumps(waiting.evidence, allow_nan=False)
    late = judge([_too_few()], failures=1, spec=SPEC, step_age_s=10)
    assert late.next is Next.ROLL_BACK
    assert (
        late.reason == "no decision within the progress deadline (10 s); inconclusive: p99_latency"
    )


def test_a_sample_ratio_mismatch_halts_even_when_the_rest_pass() -> None:
    honest = judge([_errors(10), _srm(9000, 1000)], failures=0, spec=SPEC, step_age_s=1)
    assert honest.next is not Next.PAUSE
    skewed = judge([_errors(10), _srm(8000, 2000)], failures=0, spec=SPEC, step_age_s=1)
    assert (skewed.next, skewed.failures) == (Next.PAUSE, 0)
    assert skewed.reason == "sample_ratio failed: the rollout halts"
    assert skewed.evidence["sample_ratio"]["reason"] == (
        "served 0.2000 to the candidate where 0.1 was configured"
    )
    assert skewed.evidence["sample_ratio"]["p_value"] < 0.001
