"""Always-valid tests: false alarms stay under alpha however often one looks, real effects
are found, and bad inputs are refused with a message."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import pytest
from scipy import stats

from shipyard.errors import InvalidInputError
from shipyard.rollout.sequential import (
    Outcome,
    Summary,
    against_threshold,
    compare_means,
    compare_proportions,
    mcnemar_exact,
    paired_disagreement,
    sample_ratio_mismatch,
)

LOOKS = range(100, 3001, 100)  # thirty looks at the data, one per "interval"


def _ever_decides(candidate: np.ndarray, baseline: np.ndarray, **options: object) -> Outcome:
    """The first decision a rollout that looks every 100 samples would take."""
    for n in LOOKS:
        decision = compare_means(Summary.of(candidate[:n]), Summary.of(baseline[:n]), **options)  # type: ignore[arg-type]
        if decision.outcome is not Outcome.INCONCLUSIVE:
            return decision.outcome
    return Outcome.INCONCLUSIVE


def test_peeking_thirty_times_keeps_false_alarms_under_alpha() -> None:
    rng = np.random.default_rng(7)
    trials = 300
    sequential_alarms = naive_alarms = 0
    for _ in range(trials):
        candidate = rng.normal(0.0, 1.0, LOOKS[-1])
        baseline = rng.normal(0.0, 1.0, LOOKS[-1])
        # a goal metric with no real difference: any decision at all is a false alarm
        outcome = _ever_decides(candidate, baseline, margin=0.1, superiority=True)
        sequential_alarms += outcome is not Outcome.INCONCLUSIVE
        naive_alarms += any(
            stats.ttest_ind(candidate[:n], baseline[:n]).pvalue < 0.05 for n in LOOKS
        )
    # the fixed-sample test, peeked at thirty times, cries wolf far above its 5%...
    assert naive_alarms / trials > 0.15
    # ...the always-valid one stays under it (binomial slack: 300 trials)
    assert sequential_alarms / trials <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / trials)


def test_a_real_improvement_is_found_and_its_interval_covers_it() -> None:
    rng = np.random.default_rng(3)
    candidate = rng.normal(0.3, 1.0, 3000)
    baseline = rng.normal(0.0, 1.0, 3000)
    decision = compare_means(
        Summary.of(candidate), Summary.of(baseline), margin=0.1, superiority=True
    )
    assert decision.outcome is Outcome.PASS
    assert decision.low < 0.3 < decision.high
    assert decision.low > 0
    assert decision.p_value < 0.05
    assert (decision.n_candidate, decision.n_baseline) == (3000, 3000)


def test_a_guardrail_passes_when_no_worse_and_fails_when_worse_by_more_than_the_margin() -> None:
    rng = np.random.default_rng(11)
    baseline = rng.normal(10.0, 1.0, 2000)  # latency-like: lower is better
    same = rng.normal(10.0, 1.0, 2000)
    slower = rng.normal(10.5, 1.0, 2000)
    ok = compare_means(Summary.of(same), Summary.of(baseline), margin=0.3, higher_is_better=False)
    bad = compare_means(
        Summary.of(slower), Summary.of(baseline), margin=0.3, higher_is_better=False
    )
    assert ok.outcome is Outcome.PASS, ok
    assert bad.outcome is Outcome.FAIL, bad
    assert bad.reason == "shown worse by more than 0.3"
    assert bad.low > 0.3  # the candidate's latency minus the baseline's


def test_error_shares_compare_as_proportions() -> None:
    worse = compare_proportions(60, 1000, 10, 1000, margin=0.01, higher_is_better=False)
    fine = compare_proportions(10, 5000, 11, 5000, margin=0.01, higher_is_better=False)
    assert worse.outcome is Outcome.FAIL
    assert worse.estimate == pytest.approx(0.05)
    assert fine.outcome is Outcome.PASS


def test_too_little_traffic_is_inconclusive_and_says_so() -> None:
    decision = compare_means(Summary.of([1.0] * 5), Summary.of([0.0] * 5), margin=0.1)
    assert decision.outcome is Outcome.INCONCLUSIVE
    assert decision.reason == "too few samples yet (5 < 30)"
    assert decision.p_value == 1.0


def test_the_running_p_value_only_falls() -> None:
    decision = compare_proportions(50, 100, 50, 100, margin=0.05)
    assert decision.with_p_value(0.01).p_value == 0.01
    assert decision.with_p_value(1.0).p_value == decision.p_value


def test_a_sample_against_a_threshold() -> None:
    agreeing = Summary.proportion(1990, 2000)
    disagreeing = Summary.proportion(1900, 2000)
    assert against_threshold(agreeing, 0.98, tau=0.01).outcome is Outcome.PASS
    failed = against_threshold(disagreeing, 0.98, tau=0.01)
    assert failed.outcome is Outcome.FAIL
    assert failed.high < 0.98


def test_sample_ratio_mismatch_is_found_and_an_honest_split_is_not() -> None:
    assert sample_ratio_mismatch([5000, 5000], [0.5, 0.5]) == 1.0
    assert sample_ratio_mismatch([950, 50], [95, 5]) > 0.5  # weights need not sum to 1
    assert sample_ratio_mismatch([5300, 4700], [0.5, 0.5]) < 0.001
    # peeking at an honest 90/10 split every 200 requests: false alarms stay under alpha
    rng = np.random.default_rng(5)
    trials, alarms = 300, 0
    for _ in range(trials):
        arms = rng.random(4000) < 0.1
        alarms += any(
            sample_ratio_mismatch([int((~arms[:n]).sum()), int(arms[:n].sum())], [0.9, 0.1]) < 0.05
            for n in range(200, 4001, 200)
        )
    assert alarms / trials <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / trials)


def test_paired_disagreement_sequential_and_exact() -> None:
    assert paired_disagreement(20, 20) == 1.0
    assert paired_disagreement(10, 60) < 0.001
    assert mcnemar_exact(10, 60) == pytest.approx(stats.binomtest(10, 70, 0.5).pvalue)
    assert mcnemar_exact(0, 0) == 1.0
    # the sequential test asks for more evidence than one look's exact test
    assert paired_disagreement(15, 35) > mcnemar_exact(15, 35)


_SAMPLE = Summary(40, 0.0, 1.0)
BAD_INPUTS = [
    (partial(compare_means, _SAMPLE, _SAMPLE, margin=0), "the margin must be positive, got 0"),
    (
        partial(compare_means, _SAMPLE, _SAMPLE, margin=1, alpha=1.5),
        "alpha must lie between 0 and 1, got 1.5",
    ),
    (partial(Summary.proportion, 5, 3), "a proportion needs 0 <= successes <= n, got 5/3"),
    (
        partial(sample_ratio_mismatch, [1, 2], [1.0]),
        "the served counts and the configured split need one entry per arm",
    ),
    (
        partial(sample_ratio_mismatch, [1, -2], [1, 1]),
        "served counts cannot be negative: [1, -2]",
    ),
    (
        partial(sample_ratio_mismatch, [1, 2], [1, 0]),
        "every arm's weight must be positive: [1, 0]",
    ),
    (partial(paired_disagreement, -1, 2), "discordant pair counts cannot be negative: -1, 2"),
]


@pytest.mark.parametrize(("call", "message"), BAD_INPUTS)
def test_bad_inputs_are_refused(call: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        call()
    assert caught.value.message == message
