"""Always-valid statistics for a rollout that looks at its numbers every interval.

A fixed-sample test checked after every interval raises false alarms far above its level:
peek twenty times at a 5% z-test and about a quarter of identical versions "differ". The
tests here are mixture martingales (Robbins; Johari et al., "Always valid inference"; Howard
et al., "Time-uniform, nonparametric, nonasymptotic confidence sequences"): by Ville's
inequality the chance that one ever crosses 1/alpha, however often it is looked at, is at most
alpha. So a rollout may decide at any interval, and each decision records an estimate, its
confidence sequence (an interval valid at every look at once), an always-valid p-value and the
sample sizes.

- ``compare_means`` / ``compare_proportions``: candidate minus baseline, two samples, a
  normal mixture over the difference (asymptotically valid with plug-in variances);
  non-inferiority with a margin for guardrails, superiority for a goal metric.
- ``against_threshold``: one sample against a constant (agreement at least 0.99).
- ``sample_ratio_mismatch``: the split that was served against the split configured, a
  Dirichlet-multinomial mixture (Lindon and Malek, 2020); ``sample_ratio_check`` as a Decision.
- ``paired_disagreement``: McNemar's question (do the two versions err on different
  requests?) asked sequentially through a beta-binomial mixture over the discordant pairs;
  ``mcnemar_exact`` is the fixed-sample test, for the record.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from shipyard.errors import InvalidInputError

ALPHA = 0.05


class Outcome(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class Decision:
    """One check at one look: what was estimated, how sure, and what it decided."""

    outcome: Outcome
    estimate: float
    low: float  # the confidence sequence at this look
    high: float
    p_value: float  # always valid at this look (1/the mixture's likelihood ratio)
    n_candidate: int
    n_baseline: int
    reason: str = ""

    def with_p_value(self, previous: float) -> Decision:
        """The running always-valid p-value: the least seen so far (it may only fall)."""
        return self if previous >= self.p_value else replace(self, p_value=previous)


@dataclass(frozen=True, slots=True)
class Summary:
    """A sample reduced to what the tests need: count, mean and variance."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Summary:
        array = np.asarray(values, dtype=np.float64)
        n = int(array.size)
        if n == 0:
            return cls(0, 0.0, 0.0)
        variance = float(array.var(ddof=1)) if n > 1 else 0.0
        return cls(n, float(array.mean()), variance)

    @classmethod
    def proportion(cls, successes: int, n: int) -> Summary:
        """A share; its variance from a shrunk estimate, so 0 of n is not certainty."""
        if n < 0 or not 0 <= successes <= n:
            raise InvalidInputError(f"a proportion needs 0 <= successes <= n, got {successes}/{n}")
        if n == 0:
            return cls(0, 0.0, 0.0)
        shrunk = (successes + 0.5) / (n + 1.0)
        return cls(n, successes / n, shrunk * (1.0 - shrunk))


# The normal mixture ---------------------------------------------------------------------------


def mixture_ratio(estimate: float, null: float, variance: float, tau: float) -> float:
    """The likelihood ratio of N(null, variance) against a N(null, tau^2) mixture of
    alternatives, for an estimate with that variance: a martingale under the null."""
    v, t2 = variance, tau * tau
    log_ratio = 0.5 * math.log(v / (v + t2)) + t2 * (estimate - null) ** 2 / (2.0 * v * (v + t2))
    return math.exp(min(log_ratio, 700.0))


def radius(variance: float, tau: float, alpha: float = ALPHA) -> float:
    """Half the width of the confidence sequence: the nulls the mixture has not rejected."""
    v, t2 = variance, tau * tau
    return math.sqrt(
        2.0 * v * (v + t2) / t2 * (math.log(1.0 / alpha) + 0.5 * math.log((v + t2) / v))
    )


def compare_means(
    candidate: Summary,
    baseline: Summary,
    *,
    margin: float,
    higher_is_better: bool = True,
    superiority: bool = False,
    tau: float | None = None,
    alpha: float = ALPHA,
    min_samples: int = 30,
) -> Decision:
    """Candidate minus baseline. A guardrail (``superiority`` False) passes once the candidate
    is shown no worse than ``margin``, fails once it is shown worse by more; a goal metric
    passes once the candidate is shown better, fails once it is shown worse (its ``margin`` is
    the smallest effect worth finding). ``tau`` is the scale of the effects the test is
    tuned to find soonest (default: the margin)."""
    _check(alpha, margin)
    n_c, n_b = candidate.n, baseline.n
    estimate = candidate.mean - baseline.mean
    if min(n_c, n_b) < min_samples:
        return _too_few(estimate, n_c, n_b, min(n_c, n_b), min_samples)
    sign = 1.0 if higher_is_better else -1.0
    # a guardrail is judged against "worse by the margin", a goal against "no different"
    null = 0.0 if superiority else -sign * margin
    variance = candidate.variance / n_c + baseline.variance / n_b
    scale = tau if tau is not None else margin
    low, high, p_value, side = _locate(estimate, null, variance, scale, alpha, sign)
    if side > 0:
        outcome, reason = Outcome.PASS, _passed(superiority, margin)
    elif side < 0:
        outcome, reason = Outcome.FAIL, _failed(superiority, margin)
    else:
        outcome, reason = Outcome.INCONCLUSIVE, "the interval still spans the boundary"
    return Decision(outcome, estimate, low, high, p_value, n_c, n_b, reason)


def compare_proportions(
    candidate_successes: int,
    candidate_n: int,
    baseline_successes: int,
    baseline_n: int,
    **options: object,
) -> Decision:
    """``compare_means`` on two shares (errors, accuracy): pass ``higher_is_better=False``
    for a share of failures."""
    return compare_means(
        Summary.proportion(candidate_successes, candidate_n),
        Summary.proportion(baseline_successes, baseline_n),
        **options,  # type: ignore[arg-type]
    )


def against_threshold(
    sample: Summary,
    threshold: float,
    *,
    higher_is_better: bool = True,
    tau: float = 0.01,
    alpha: float = ALPHA,
    min_samples: int = 30,
) -> Decision:
    """One sample against a constant (agreement at least 0.99, cosine at least 0.98): passes
    once shown on the right side of it, fails once shown on the wrong side."""
    _check_alpha(alpha)
    if sample.n < min_samples:
        return _too_few(sample.mean, sample.n, 0, sample.n, min_samples)
    sign = 1.0 if higher_is_better else -1.0
    variance = sample.variance / sample.n
    low, high, p_value, side = _locate(sample.mean, threshold, variance, tau, alpha, sign)
    if side > 0:
        outcome, reason = Outcome.PASS, f"shown on the right side of {threshold:g}"
    elif side < 0:
        outcome, reason = Outcome.FAIL, f"shown on the wrong side of {threshold:g}"
    else:
        outcome, reason = Outcome.INCONCLUSIVE, f"the interval still spans {threshold:g}"
    return Decision(outcome, sample.mean, low, high, p_value, sample.n, 0, reason)


def _locate(
    estimate: float, null: float, variance: float, tau: float, alpha: float, sign: float
) -> tuple[float, float, float, int]:
    """The confidence sequence around ``estimate``, the always-valid p-value of ``null``, and
    the side of ``null`` the truth is shown on, in the better direction (``sign``): 1 better,
    -1 worse, 0 not yet."""
    variance = max(variance, 1e-18)  # a constant sample: the estimate is known exactly
    half = radius(variance, tau, alpha)
    low, high = estimate - half, estimate + half
    p_value = min(1.0, 1.0 / mixture_ratio(estimate, null, variance, tau))
    better_low, better_high = sorted((sign * (low - null), sign * (high - null)))
    side = 1 if better_low > 0 else -1 if better_high < 0 else 0
    return low, high, p_value, side


def _too_few(
    estimate: float, n_candidate: int, n_baseline: int, fewest: int, min_samples: int
) -> Decision:
    return Decision(
        Outcome.INCONCLUSIVE, estimate, -math.inf, math.inf, 1.0, n_candidate, n_baseline,
        f"too few samples yet ({fewest} < {min_samples})",
    )  # fmt: skip


# Counts -------------------------------------------------------------------------------------


def sample_ratio_mismatch(
    served: Sequence[int], configured: Sequence[float], *, concentration: float = 100.0
) -> float:
    """The always-valid p-value that requests were served in the configured split: a
    Dirichlet-multinomial mixture centred on the split, against the split itself."""
    if len(served) != len(configured) or len(served) < 2:
        raise InvalidInputError("the served counts and the configured split need one entry per arm")
    if any(count < 0 for count in served):
        raise InvalidInputError(f"served counts cannot be negative: {list(served)}")
    total_weight = math.fsum(configured)
    if total_weight <= 0 or any(weight <= 0 for weight in configured):
        raise InvalidInputError(f"every arm's weight must be positive: {list(configured)}")
    shares = [weight / total_weight for weight in configured]
    prior = [concentration * share for share in shares]
    n = sum(served)
    log_bayes = math.lgamma(concentration) - math.lgamma(concentration + n)
    for count, alpha_i, share in zip(served, prior, shares, strict=True):
        log_bayes += math.lgamma(alpha_i + count) - math.lgamma(alpha_i) - count * math.log(share)
    return min(1.0, math.exp(-log_bayes)) if log_bayes > 0 else 1.0


def sample_ratio_check(
    baseline_served: int, candidate_served: int, candidate_weight: float, *, alpha: float = 0.001
) -> Decision:
    """The sample-ratio check of a two-way split as a Decision: FAIL once the served split is
    shown to differ from the configured one (a strict alpha: a mismatch halts a rollout),
    PASS while it is not. The estimate is the candidate's served share."""
    served = baseline_served + candidate_served
    p_value = sample_ratio_mismatch(
        [baseline_served, candidate_served], [1.0 - candidate_weight, candidate_weight]
    )
    share = candidate_served / served if served else 0.0
    if p_value < alpha:
        outcome = Outcome.FAIL
        reason = f"served {share:.4f} to the candidate where {candidate_weight:g} was configured"
    else:
        outcome, reason = Outcome.PASS, "the served split matches the configured one"
    return Decision(
        outcome, share, -math.inf, math.inf, p_value, candidate_served, baseline_served, reason
    )


def paired_disagreement(
    candidate_only_right: int, baseline_only_right: int, *, prior: float = 1.0
) -> float:
    """McNemar's question asked sequentially: of the requests exactly one version got right,
    is the split even? The always-valid p-value of a beta-binomial mixture."""
    b, c = candidate_only_right, baseline_only_right
    if b < 0 or c < 0:
        raise InvalidInputError(f"discordant pair counts cannot be negative: {b}, {c}")
    log_bayes = _log_beta(prior + b, prior + c) - _log_beta(prior, prior) + (b + c) * math.log(2.0)
    return min(1.0, math.exp(-log_bayes)) if log_bayes > 0 else 1.0


def mcnemar_exact(candidate_only_right: int, baseline_only_right: int) -> float:
    """The fixed-sample two-sided exact McNemar p-value (a binomial test on the discordant
    pairs): valid at one look, recorded beside the sequential one."""
    b, c = candidate_only_right, baseline_only_right
    if b < 0 or c < 0:
        raise InvalidInputError(f"discordant pair counts cannot be negative: {b}, {c}")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = math.fsum(math.exp(_log_choose(n, i) - n * math.log(2.0)) for i in range(k + 1))
    return min(1.0, 2.0 * tail)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError(f"alpha must lie between 0 and 1, got {alpha}")


def _check(alpha: float, margin: float) -> None:
    _check_alpha(alpha)
    if not margin > 0:
        raise InvalidInputError(f"the margin must be positive, got {margin}")


def _passed(superiority: bool, margin: float) -> str:
    return "shown better than the baseline" if superiority else f"shown no worse than {margin:g}"


def _failed(superiority: bool, margin: float) -> str:
    return (
        "shown worse than the baseline" if superiority else f"shown worse by more than {margin:g}"
    )
