"""Drift tests between a reference sketch and a window's, column by column.

The tests are those users know from Evidently, computed on the profile's bins, with its
known flaws fixed:

- numeric columns: the Wasserstein distance normed by the reference's standard deviation
  and the population stability index (reference-quantile bins, an epsilon for empty bins);
  the two-sample Kolmogorov-Smirnov test where a sample is small;
- categorical columns: the Jensen-Shannon distance (base 2) and the two-sample chi-square
  test on the 2 x k contingency table (not the goodness-of-fit form, which treats the
  reference's frequencies as exact and fires far too often);
- at large sample sizes a distance gates, never a p-value (any difference is "significant"
  with a million rows);
- a constant reference column is normed by its magnitude instead of a zero deviation, and
  an all-missing one is reported, never NaN.

The dataset drifts when the share of drifted input columns reaches ``drift_share``;
prediction drift is the same test on the output columns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError
from shipyard.monitor.profile import Profile
from shipyard.monitor.sketch import CategoricalSketch, NumericSketch, Sketch

PSI_EPSILON = 1e-4  # stands in for an empty bin's share, as Evidently does
KS_EXACT_LIMIT = 10_000  # effective rows up to which the KS p-value is SciPy's exact one
# The p-value below which a test finds drift. Not 0.05: a calibrated test at 0.05 alarms on
# one column in twenty with no drift at all, and every flush re-tests every column.
P_VALUE = 0.01


@dataclass(frozen=True)
class Statistic:
    """One drift statistic, as verdicts, reports and metrics name it."""

    name: str  # a verdict's method and a metric's method label; a distance's threshold setting
    kind: str  # the columns it applies to: numeric | categorical
    test: bool  # a two-sample test, gating on its p-value (else a distance, gating on itself)
    key: str  # its figure in ColumnDrift.statistics: a test's p-value, a distance itself
    threshold: float  # the default: a distance drifts at or above it, a p-value below it


# Each kind's first distance measures its prediction drift and is the drift score a column
# reports unless another distance gated it (chosen by the model's numeric_method).
STATISTICS = (
    Statistic("wasserstein", "numeric", False, "wasserstein", 0.1),
    Statistic("jensen_shannon", "categorical", False, "jensen_shannon", 0.1),
    Statistic("psi", "numeric", False, "psi", 0.2),
    Statistic("ks", "numeric", True, "ks_p_value", P_VALUE),
    Statistic("chi_square", "categorical", True, "chi_square_p_value", P_VALUE),
)
WASSERSTEIN, JENSEN_SHANNON, PSI, KS, CHI_SQUARE = STATISTICS
BY_NAME = {statistic.name: statistic for statistic in STATISTICS}
DISTANCES = tuple(s for s in STATISTICS if not s.test)
NUMERIC_DISTANCES = tuple(s.name for s in DISTANCES if s.kind == "numeric")


def distance_of(kind: str) -> Statistic:
    """The distance every column of ``kind`` reports."""
    return next(s for s in DISTANCES if s.kind == kind)


def p_value_test(kind: str) -> Statistic:
    """The two-sample test of the columns of ``kind``."""
    return next(s for s in STATISTICS if s.test and s.kind == kind)


def gated_by(method: str) -> Statistic | None:
    """The statistic a verdict's ``method`` names (None: the column was not tested)."""
    return BY_NAME.get(method)


@dataclass(frozen=True)
class Thresholds:
    """When a column, and the dataset, count as drifted (configurable per model)."""

    wasserstein: float = WASSERSTEIN.threshold  # normed Wasserstein distance, numeric columns
    jensen_shannon: float = JENSEN_SHANNON.threshold  # categorical columns
    psi: float = PSI.threshold  # reported with the Wasserstein distance; gates when chosen
    p_value: float = P_VALUE  # KS and chi-square, at small sample sizes
    small_sample: int = 1000  # below this many rows on either side, the p-value tests gate
    drift_share: float = 0.5  # share of drifted input columns that makes the dataset drift
    numeric_method: str = WASSERSTEIN.name  # or psi: the distance that gates numeric columns

    def __post_init__(self) -> None:
        for setting in fields(self):
            value = getattr(self, setting.name)
            if setting.name != "numeric_method" and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise InvalidInputError(f"drift setting {setting.name} must be a number: {value!r}")
        for distance in DISTANCES:
            if not getattr(self, distance.name) > 0:
                raise InvalidInputError(f"drift threshold {distance.name} must be positive")
        if not 0 < self.p_value < 1:
            raise InvalidInputError("drift threshold p_value must be between 0 and 1")
        if not 0 < self.drift_share <= 1:
            raise InvalidInputError("drift_share must be in (0, 1]")
        if not self.small_sample >= 0:
            raise InvalidInputError("small_sample must not be negative")
        if self.numeric_method not in NUMERIC_DISTANCES:
            raise InvalidInputError(
                f"numeric_method must be {' or '.join(repr(n) for n in NUMERIC_DISTANCES)}"
            )

    def of(self, statistic: Statistic) -> float:
        """The threshold ``statistic`` gates at."""
        if statistic.test:
            return self.p_value
        threshold: float = getattr(self, statistic.name)
        return threshold

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Thresholds:
        data = data or {}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown drift settings {unknown}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ColumnDrift:
    """One column's verdict: the gating method and score, and every statistic computed."""

    column: str
    role: str
    kind: str  # numeric | categorical
    method: str  # the statistic that decided: wasserstein, psi, ks, jensen_shannon, chi_square
    score: float  # that statistic (a p-value for ks and chi_square)
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    statistics: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DriftReport:
    columns: list[ColumnDrift]  # inputs
    predictions: list[ColumnDrift]  # outputs
    drifted_share: float
    dataset_drift: bool
    prediction_drift: float  # the largest output drift distance
    thresholds: Thresholds

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "predictions": [c.to_dict() for c in self.predictions],
            "drifted_share": self.drifted_share,
            "dataset_drift": self.dataset_drift,
            "prediction_drift": self.prediction_drift,
            "thresholds": self.thresholds.to_dict(),
        }


def evaluate(reference: Profile, window: Profile, thresholds: Thresholds) -> DriftReport:
    """Every column of ``window`` tested against ``reference``."""
    inputs: list[ColumnDrift] = []
    outputs: list[ColumnDrift] = []
    for column in reference.columns:
        verdict = column_drift(
            column.name,
            column.role,
            reference.sketches[column.name],
            window.sketches[column.name],
            thresholds,
        )
        (inputs if column.role == "input" else outputs).append(verdict)
    tested = [c for c in inputs if c.method != "none"]
    share = sum(c.drifted for c in tested) / len(tested) if tested else 0.0
    distances = [_distance(c) for c in outputs if c.method != "none"]
    return DriftReport(
        inputs,
        outputs,
        share,
        bool(tested) and share >= thresholds.drift_share,
        max(distances) if distances else 0.0,
        thresholds,
    )


def column_drift(
    name: str, role: str, reference: Sketch, current: Sketch, thresholds: Thresholds
) -> ColumnDrift:
    if isinstance(reference, NumericSketch):
        assert isinstance(current, NumericSketch)
        return _numeric(name, role, reference, current, thresholds)
    assert isinstance(reference, CategoricalSketch)
    assert isinstance(current, CategoricalSketch)
    return _categorical(name, role, reference, current, thresholds)


def _undecided(name: str, role: str, kind: str, ref_count: int, cur_count: int) -> ColumnDrift:
    """A column's verdict before any test; its note says why none can run, if none can."""
    verdict = ColumnDrift(name, role, kind, "none", 0.0, 0.0, False, ref_count, cur_count)
    if not ref_count or not cur_count:
        verdict.note = "the reference has no values" if not ref_count else "no current values"
    return verdict


def _numeric(
    name: str, role: str, ref: NumericSketch, cur: NumericSketch, th: Thresholds
) -> ColumnDrift:
    verdict = _undecided(name, role, "numeric", ref.count, cur.count)
    if verdict.note:
        return verdict
    ks_statistic, ks_p = ks_test(ref.counts, cur.counts)
    verdict.statistics = {
        WASSERSTEIN.key: normed_wasserstein(ref, cur),
        PSI.key: psi(ref.counts, cur.counts),
        "ks_statistic": ks_statistic,
        KS.key: ks_p,
    }
    if min(ref.count, cur.count) < th.small_sample:
        _decide(verdict, KS, th)
    else:
        _decide(verdict, BY_NAME[th.numeric_method], th)
    if ref.std == 0:
        verdict.note = "constant in the reference: normed by its magnitude"
    return verdict


def _categorical(
    name: str, role: str, ref: CategoricalSketch, cur: CategoricalSketch, th: Thresholds
) -> ColumnDrift:
    verdict = _undecided(name, role, "categorical", ref.count, cur.count)
    if verdict.note:
        return verdict
    statistic, p_value = chi_square(ref.counts, cur.counts)
    verdict.statistics = {
        JENSEN_SHANNON.key: jensen_shannon(ref.counts, cur.counts),
        "chi_square": statistic,
        CHI_SQUARE.key: p_value,
    }
    if min(ref.count, cur.count) < th.small_sample:
        _decide(verdict, CHI_SQUARE, th)
    else:
        _decide(verdict, JENSEN_SHANNON, th)
    if len(ref.categories) == 1:
        verdict.note = "constant in the reference"
    return verdict


def _decide(verdict: ColumnDrift, statistic: Statistic, th: Thresholds) -> None:
    """The verdict gated by ``statistic``: a p-value below its threshold drifts, a distance
    at or above it."""
    verdict.method, verdict.threshold = statistic.name, th.of(statistic)
    verdict.score = verdict.statistics[statistic.key]
    if statistic.test:
        verdict.drifted = verdict.score < verdict.threshold
    else:
        verdict.drifted = verdict.score >= verdict.threshold


# The statistics, on counts over the same bins ---------------------------------------------


def normed_wasserstein(ref: NumericSketch, cur: NumericSketch) -> float:
    """W1 between the two binned distributions (each bin at its own mean), over the
    reference's standard deviation, or its magnitude when it is constant."""
    distance = wasserstein(ref.bin_means, ref.counts, cur.bin_means, cur.counts)
    scale = ref.std
    if not scale > 0:
        scale = max(abs(ref.mean), 1.0)
    return distance / scale


def wasserstein(
    u_values: np.ndarray, u_weights: np.ndarray, v_values: np.ndarray, v_weights: np.ndarray
) -> float:
    """The first Wasserstein distance between two weighted samples: the area between CDFs."""
    u_values, v_values = np.asarray(u_values, float), np.asarray(v_values, float)
    u_weights, v_weights = np.asarray(u_weights, float), np.asarray(v_weights, float)
    points = np.concatenate([u_values, v_values])
    order = np.argsort(points, kind="mergesort")
    points = points[order]
    u_mass = np.concatenate([u_weights / u_weights.sum(), np.zeros(len(v_values))])[order]
    v_mass = np.concatenate([np.zeros(len(u_values)), v_weights / v_weights.sum()])[order]
    gaps = np.diff(points)
    return float(np.sum(np.abs(np.cumsum(u_mass - v_mass)[:-1]) * gaps))


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Population stability index: sum (q - p) ln(q / p), empty shares set to epsilon."""
    p = _shares(ref_counts)
    q = _shares(cur_counts)
    p = np.where(p == 0, PSI_EPSILON, p)
    q = np.where(q == 0, PSI_EPSILON, q)
    return float(np.sum((q - p) * np.log(q / p)))


def warm_up() -> None:
    """Import and first-call SciPy's distributions now: about a second of CPU, all of it
    holding the GIL. A server does this while loading a model, not on its first flush,
    where it would stall every request for that second."""
    counts = np.array([3.0, 5.0, 2.0])
    ks_test(counts, counts[::-1])
    chi_square(counts, counts[::-1])


def ks_test(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Two-sample KS on binned data: the largest gap between the binned CDFs, and its p-value
    from the Kolmogorov distribution at n*m/(n+m) (SciPy's asymptotic two-sided method).
    Past KS_EXACT_LIMIT effective rows the limiting distribution stands in for the exact
    one: within about 1% there, and thousands of times faster (the p-value gates only small
    samples; at large ones it is reported)."""
    from scipy.special import kolmogorov
    from scipy.stats import kstwo

    n, m = float(np.sum(ref_counts)), float(np.sum(cur_counts))
    gap = np.abs(np.cumsum(_shares(ref_counts)) - np.cumsum(_shares(cur_counts)))
    statistic = float(np.clip(gap.max(), 0.0, 1.0))
    effective = np.round(n * m / (n + m))
    if effective > KS_EXACT_LIMIT:
        p_value = float(kolmogorov(np.sqrt(effective) * statistic))
    else:
        p_value = float(kstwo.sf(statistic, effective))
    return statistic, float(np.clip(p_value, 0.0, 1.0))


def jensen_shannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """The Jensen-Shannon distance, base 2 (0: the same mix, 1: nothing in common)."""
    p, q = _shares(ref_counts), _shares(cur_counts)
    middle = (p + q) / 2
    divergence = (_kl(p, middle) + _kl(q, middle)) / 2
    return float(np.sqrt(max(divergence, 0.0)))


def chi_square(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Pearson's chi-square on the 2 x k table of the two samples' counts (categories that
    neither sample has are dropped), Yates-corrected at one degree of freedom as SciPy's
    ``chi2_contingency`` is; a single category cannot differ: (0, 1)."""
    from scipy.stats import chi2

    table = np.vstack([ref_counts, cur_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    dof = table.shape[1] - 1
    difference = table - expected
    if dof == 1:
        correction = np.minimum(0.5, np.abs(difference))
        difference = np.sign(difference) * (np.abs(difference) - correction)
    statistic = float(np.sum(difference**2 / expected))
    return statistic, float(chi2.sf(statistic, dof))


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total else counts


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / q[mask])))


def reported_distance(verdict: ColumnDrift) -> Statistic:
    """The distance a tested column reports as its drift score: the one that gated it, or
    its kind's first where a test gated it."""
    gating = BY_NAME[verdict.method]
    return distance_of(verdict.kind) if gating.test else gating


def _distance(verdict: ColumnDrift) -> float:
    """A column's drift as a distance, whichever method gated it (for prediction drift)."""
    return float(verdict.statistics.get(distance_of(verdict.kind).key, 0.0))
