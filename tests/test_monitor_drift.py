"""Drift statistics against SciPy, false-alarm rates without drift, and detection of shifts."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

from shipyard.errors import InvalidInputError
from shipyard.monitor.drift import (
    BY_NAME,
    PSI_EPSILON,
    STATISTICS,
    ColumnDrift,
    DriftReport,
    Thresholds,
    chi_square,
    column_drift,
    distance_of,
    evaluate,
    gated_by,
    jensen_shannon,
    ks_test,
    normed_wasserstein,
    p_value_test,
    psi,
    reported_distance,
    wasserstein,
)
from shipyard.monitor.profile import Profile
from shipyard.monitor.sketch import CategoricalSketch, NumericSketch
from shipyard.registry.domain import ModelKind, Signature, TensorSpec

TOLERANCE = 1e-9
Draw = Callable[[np.random.Generator, int], np.ndarray]


def _close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def _close_p(actual: float, expected: float) -> bool:
    """p-values can be tiny: compare them relatively, with no absolute slack to hide in."""
    return math.isclose(actual, expected, rel_tol=TOLERANCE, abs_tol=1e-300)


# Reference and current distributions: the same, shifted, scaled, skewed ------------------

PAIRS: dict[str, tuple[Draw, Draw]] = {
    "same-normal": (lambda r, n: r.normal(0, 1, n), lambda r, n: r.normal(0, 1, n)),
    "shifted-normal": (lambda r, n: r.normal(0, 1, n), lambda r, n: r.normal(0.7, 1, n)),
    "scaled-normal": (lambda r, n: r.normal(2, 1, n), lambda r, n: r.normal(2, 3, n)),
    "skewed-lognormal": (
        lambda r, n: r.lognormal(0, 1, n),
        lambda r, n: r.lognormal(0.3, 0.8, n),
    ),
    "exponential-gamma": (lambda r, n: r.exponential(2, n), lambda r, n: r.gamma(2, 1.5, n)),
    "uniform-past-range": (lambda r, n: r.uniform(0, 1, n), lambda r, n: r.uniform(0.5, 1.5, n)),
}
BIN_COUNTS = [3, 10, 20, 40]


def _sketches(
    pair: str, bins: int, seed: int, n_ref: int = 3000, n_cur: int = 800
) -> tuple[np.ndarray, NumericSketch, NumericSketch]:
    rng = np.random.default_rng(seed)
    draw_ref, draw_cur = PAIRS[pair]
    values = draw_ref(rng, n_ref)
    reference = NumericSketch.fit(values, bins=bins)
    current = reference.like()
    current.update(draw_cur(rng, n_cur))
    return values, reference, current


# Numeric statistics against SciPy ---------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_wasserstein_matches_scipy_on_weighted_samples(seed: int) -> None:
    rng = np.random.default_rng(seed)
    u = np.round(rng.normal(0, 2, rng.integers(1, 30)), 1)  # rounding makes ties
    v = np.round(rng.standard_t(3, rng.integers(1, 30)) + seed / 4, 1)
    u_weights = rng.integers(0, 50, u.size).astype(float)
    v_weights = rng.exponential(1.0, v.size)
    u_weights[0] = max(u_weights[0], 1.0)  # at least one positive weight
    expected = wasserstein_distance(u, v, u_weights, v_weights)
    assert _close(wasserstein(u, u_weights, v, v_weights), expected)
    assert _close(wasserstein(v, v_weights, u, u_weights), expected)
    assert wasserstein(u, u_weights, u, u_weights) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("bins", BIN_COUNTS)
@pytest.mark.parametrize("pair", list(PAIRS))
def test_normed_wasserstein_matches_scipy_on_the_bins(pair: str, bins: int) -> None:
    values, reference, current = _sketches(pair, bins, seed=bins)
    assert _close(reference.std, float(np.std(values)))  # population std (ddof=0)
    distance = wasserstein_distance(
        reference.bin_means, current.bin_means, reference.counts, current.counts
    )
    assert _close(normed_wasserstein(reference, current), distance / float(np.std(values)))


def _numpy_psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    p = ref_counts / ref_counts.sum()
    q = cur_counts / cur_counts.sum()
    p[p == 0] = 1e-4
    q[q == 0] = 1e-4
    return float(np.sum((q - p) * np.log(q / p)))


@pytest.mark.parametrize("bins", BIN_COUNTS)
@pytest.mark.parametrize("pair", list(PAIRS))
def test_psi_matches_the_numpy_formula(pair: str, bins: int) -> None:
    _, reference, current = _sketches(pair, bins, seed=100 + bins)
    assert PSI_EPSILON == 1e-4
    expected = _numpy_psi(reference.counts.astype(float), current.counts.astype(float))
    assert _close(psi(reference.counts, current.counts), expected)


def test_psi_with_empty_bins_on_either_side() -> None:
    ref = np.array([50, 30, 0, 20, 0])
    cur = np.array([0, 10, 40, 50, 0])
    expected = _numpy_psi(ref.astype(float), cur.astype(float))
    assert _close(psi(ref, cur), expected)
    assert psi(ref, ref) == 0.0


def _ks_scipy(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    k = len(ref_counts)
    result = ks_2samp(
        np.repeat(np.arange(k), ref_counts), np.repeat(np.arange(k), cur_counts), method="asymp"
    )
    return float(result.statistic), float(result.pvalue)


@pytest.mark.parametrize("current_rows", [60, 800, 5000])
@pytest.mark.parametrize("bins", BIN_COUNTS)
@pytest.mark.parametrize("pair", list(PAIRS))
def test_ks_matches_scipy(pair: str, bins: int, current_rows: int) -> None:
    _, reference, current = _sketches(pair, bins, seed=200 + bins, n_cur=current_rows)
    statistic, p_value = ks_test(reference.counts, current.counts)
    expected_statistic, expected_p = _ks_scipy(reference.counts, current.counts)
    assert _close(statistic, expected_statistic)
    assert _close_p(p_value, expected_p)


def test_ks_with_empty_bins() -> None:
    ref = np.array([0, 40, 30, 0, 30])
    cur = np.array([5, 0, 0, 3, 2])
    statistic, p_value = ks_test(ref, cur)
    expected_statistic, expected_p = _ks_scipy(ref, cur)
    assert _close(statistic, expected_statistic)
    assert _close_p(p_value, expected_p)


# Categorical statistics against SciPy -----------------------------------------------------


def _category_counts(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 25))
    mix = rng.dirichlet(np.ones(k))
    shifted = rng.dirichlet(np.ones(k)) if seed % 2 else mix
    ref = rng.multinomial(int(rng.integers(50, 5000)), mix)
    cur = rng.multinomial(int(rng.integers(20, 3000)), shifted)
    return ref, cur


@pytest.mark.parametrize("seed", range(12))
def test_jensen_shannon_matches_scipy(seed: int) -> None:
    ref, cur = _category_counts(seed)
    assert _close(jensen_shannon(ref, cur), float(jensenshannon(ref, cur, base=2)))


def test_jensen_shannon_with_zero_shares() -> None:
    cases = [
        ([10, 0, 5, 0], [0, 3, 5, 0]),  # empty on one side, and on both
        ([1, 0], [0, 1]),  # nothing in common: 1
        ([4, 4, 2], [2, 2, 1]),  # the same mix: 0
    ]
    for ref, cur in cases:
        expected = float(jensenshannon(np.array(ref), np.array(cur), base=2))
        assert _close(jensen_shannon(np.array(ref), np.array(cur)), expected)
    assert _close(jensen_shannon(np.array([1, 0]), np.array([0, 1])), 1.0)
    assert jensen_shannon(np.array([4, 4, 2]), np.array([2, 2, 1])) == 0.0


def _chi2_scipy(table: np.ndarray) -> tuple[float, float]:
    result = chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


@pytest.mark.parametrize("seed", range(12))
def test_chi_square_matches_scipy(seed: int) -> None:
    ref, cur = _category_counts(seed)
    kept = (ref + cur) > 0
    statistic, p_value = chi_square(ref, cur)
    expected_statistic, expected_p = _chi2_scipy(np.vstack([ref, cur])[:, kept])
    assert _close(statistic, expected_statistic)
    assert _close_p(p_value, expected_p)


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        ([120, 80], [45, 55]),  # two categories: Yates' correction applies
        ([30, 20], [10, 40]),
        ([10, 10], [10, 10]),  # no difference: the correction is capped at the difference
        ([100, 100], [101, 99]),  # differences under 0.5 after the expected counts
        ([900, 100], [3, 2]),
    ],
)
def test_chi_square_two_categories_with_yates_correction(ref: list[int], cur: list[int]) -> None:
    table = np.array([ref, cur])
    statistic, p_value = chi_square(table[0], table[1])
    expected_statistic, expected_p = _chi2_scipy(table)
    assert _close(statistic, expected_statistic)
    assert _close_p(p_value, expected_p)
    uncorrected = chi2_contingency(table, correction=False).statistic
    if not np.array_equal(table[0] / table[0].sum(), table[1] / table[1].sum()):
        assert statistic < uncorrected  # the correction did apply


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        ([30, 0, 50, 20], [10, 0, 25, 5]),  # category 1 in neither sample
        ([0, 40, 10, 0, 25], [0, 12, 9, 0, 14]),  # two empty categories
        ([50, 0, 30], [20, 0, 40]),  # dropping one leaves two: Yates applies
        ([0, 7, 0], [0, 3, 0]),  # dropping leaves one category: no difference possible
    ],
)
def test_chi_square_drops_categories_present_in_neither_sample(
    ref: list[int], cur: list[int]
) -> None:
    table = np.array([ref, cur])
    kept = table.sum(axis=0) > 0
    statistic, p_value = chi_square(table[0], table[1])
    if kept.sum() < 2:
        assert (statistic, p_value) == (0.0, 1.0)
        return
    expected_statistic, expected_p = _chi2_scipy(table[:, kept])
    assert _close(statistic, expected_statistic)
    assert _close_p(p_value, expected_p)


def test_column_drift_reports_the_same_statistics() -> None:
    _, reference, current = _sketches("shifted-normal", 20, seed=5)
    verdict = column_drift("x", "input", reference, current, Thresholds())
    ks_statistic, ks_p = ks_test(reference.counts, current.counts)
    assert verdict.statistics == {
        "wasserstein": normed_wasserstein(reference, current),
        "psi": psi(reference.counts, current.counts),
        "ks_statistic": ks_statistic,
        "ks_p_value": ks_p,
    }
    assert (verdict.method, verdict.threshold) == ("ks", ALPHA)  # 800 current rows: small
    ref_cat = CategoricalSketch.fit(np.array(["a"] * 60 + ["b"] * 40))
    cur_cat = ref_cat.like()
    cur_cat.update(np.array(["a"] * 20 + ["b"] * 30 + ["c"] * 5))
    categorical = column_drift("c", "input", ref_cat, cur_cat, Thresholds())
    statistic, p_value = chi_square(ref_cat.counts, cur_cat.counts)
    assert categorical.statistics == {
        "jensen_shannon": jensen_shannon(ref_cat.counts, cur_cat.counts),
        "chi_square": statistic,
        "chi_square_p_value": p_value,
    }
    assert categorical.method == "chi_square"
    assert categorical.score == p_value


# The statistics' declaration ----------------------------------------------------------------


def _gated_by(name: str) -> ColumnDrift:
    """A verdict that the statistic ``name`` decided."""
    if BY_NAME[name].kind == "numeric":
        current_rows = 800 if name == "ks" else 3000  # below small_sample the test gates
        _, reference, current = _sketches("shifted-normal", 20, seed=5, n_cur=current_rows)
        method = "psi" if name == "psi" else "wasserstein"
        return column_drift("x", "input", reference, current, Thresholds(numeric_method=method))
    rng = np.random.default_rng(5)
    ref_cat = CategoricalSketch.fit(rng.choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2]))
    cur_cat = ref_cat.like()
    cur_cat.update(rng.choice(["a", "b", "c"], 50 if name == "chi_square" else 3000))
    return column_drift("c", "input", ref_cat, cur_cat, Thresholds())


def test_each_kind_has_one_test_and_reports_one_distance_first() -> None:
    names = [s.name for s in STATISTICS]
    assert names == ["wasserstein", "jensen_shannon", "psi", "ks", "chi_square"]
    assert (distance_of("numeric").name, distance_of("categorical").name) == (
        "wasserstein",
        "jensen_shannon",
    )
    assert (p_value_test("numeric").key, p_value_test("categorical").key) == (
        "ks_p_value",
        "chi_square_p_value",
    )
    assert gated_by("none") is None


def test_the_default_thresholds_are_the_declared_ones() -> None:
    defaults = Thresholds()
    for statistic in STATISTICS:
        assert defaults.of(statistic) == statistic.threshold, statistic.name
    assert (defaults.wasserstein, defaults.jensen_shannon, defaults.psi, defaults.p_value) == (
        0.1,
        0.1,
        0.2,
        0.01,
    )
    chosen = Thresholds(psi=0.3, p_value=0.05)
    assert (chosen.of(BY_NAME["psi"]), chosen.of(BY_NAME["ks"])) == (0.3, 0.05)


@pytest.mark.parametrize("name", [s.name for s in STATISTICS])
def test_a_verdict_is_decided_by_its_declared_statistic(name: str) -> None:
    statistic = BY_NAME[name]
    verdict = _gated_by(name)
    assert (verdict.method, verdict.kind) == (statistic.name, statistic.kind)
    assert verdict.score == verdict.statistics[statistic.key]
    assert verdict.threshold == statistic.threshold
    assert verdict.drifted == (
        verdict.score < verdict.threshold if statistic.test else verdict.score >= verdict.threshold
    )
    assert gated_by(verdict.method) is statistic
    # a test's verdict reports its kind's first distance as its score, a distance itself
    reported = reported_distance(verdict)
    assert reported is (distance_of(statistic.kind) if statistic.test else statistic)
    assert reported.key in verdict.statistics
    assert p_value_test(statistic.kind).key in verdict.statistics


# False alarms without drift ----------------------------------------------------------------

TRIALS = 100
REFERENCE_ROWS = 5000
ALPHA = Thresholds().p_value

NUMERIC_SIGNATURE = Signature((TensorSpec("x", "FP32", (-1, 5)),), ())
CATEGORICAL_SIGNATURE = Signature((TensorSpec("c", "INT64", (-1, 3)),), ())
MIXES = [
    np.array([0.5, 0.3, 0.2]),
    np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.05]),
    np.full(12, 1 / 12),
]


def _numeric_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.column_stack(
        [
            rng.normal(0, 1, n),
            rng.lognormal(0, 1, n),
            rng.uniform(-2, 3, n),
            rng.exponential(2, n),
            rng.standard_t(5, n),
        ]
    ).astype(np.float32)


def _categorical_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.column_stack([rng.choice(len(mix), n, p=mix) for mix in MIXES]).astype(np.int64)


def _false_alarms(
    signature: Signature, draw: Draw, current_rows: int, seed: int
) -> tuple[dict[str, float], set[str]]:
    """Per column: the share of no-drift trials flagged as drifted; and the gating methods."""
    rng = np.random.default_rng(seed)
    name = signature.inputs[0].name
    flagged: dict[str, int] = {}
    methods: set[str] = set()
    for _ in range(TRIALS):
        reference = Profile.build(
            signature, ModelKind.TENSOR, {name: draw(rng, REFERENCE_ROWS)}, {}
        )
        window = reference.like()
        window.update({name: draw(rng, current_rows)}, {})
        report = evaluate(reference, window, Thresholds())
        for verdict in report.columns:
            flagged[verdict.column] = flagged.get(verdict.column, 0) + verdict.drifted
            methods.add(verdict.method)
    return {column: count / TRIALS for column, count in flagged.items()}, methods


def _noise_limit(trials: int) -> float:
    """A p-value test at level ALPHA flags ALPHA of no-drift trials by design: its measured
    rate may exceed ALPHA by sampling noise (3 binomial standard deviations), no more."""
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / trials)


@pytest.mark.parametrize(
    ("signature", "draw", "method"),
    [
        (NUMERIC_SIGNATURE, _numeric_rows, "wasserstein"),
        (CATEGORICAL_SIGNATURE, _categorical_rows, "jensen_shannon"),
    ],
    ids=["numeric", "categorical"],
)
def test_no_false_alarms_at_large_sample_sizes(
    signature: Signature, draw: Draw, method: str
) -> None:
    rates, methods = _false_alarms(signature, draw, current_rows=2000, seed=11)
    assert methods == {method}
    assert all(rate <= 0.05 for rate in rates.values()), f"false-alarm rates: {rates}"


@pytest.mark.parametrize(
    ("signature", "draw", "method"),
    [
        (NUMERIC_SIGNATURE, _numeric_rows, "ks"),
        (CATEGORICAL_SIGNATURE, _categorical_rows, "chi_square"),
    ],
    ids=["numeric", "categorical"],
)
def test_false_alarms_at_small_sample_sizes_are_the_test_level(
    signature: Signature, draw: Draw, method: str
) -> None:
    rates, methods = _false_alarms(signature, draw, current_rows=300, seed=12)
    assert methods == {method}
    pooled = sum(rates.values()) / len(rates)
    message = f"false-alarm rates: {rates}, pooled {pooled:.3f}"
    assert all(rate <= _noise_limit(TRIALS) for rate in rates.values()), message
    assert pooled <= _noise_limit(TRIALS * len(rates)), message
    # the bar the monitor promises: at most 5% false alarms per column
    assert all(rate <= 0.05 for rate in rates.values()), message


# Known shifts are detected ----------------------------------------------------------------

ONE_NUMERIC = Signature((TensorSpec("x", "FP32", (-1, 1)),), ())
ONE_CATEGORICAL = Signature((TensorSpec("c", "INT64", (-1,)),), ())
SHIFTS: dict[str, tuple[Signature, Draw, Draw]] = {
    "mean+0.5std": (
        ONE_NUMERIC,
        lambda r, n: r.normal(0, 1, (n, 1)),
        lambda r, n: r.normal(0.5, 1, (n, 1)),
    ),
    "variance*2": (
        ONE_NUMERIC,
        lambda r, n: r.normal(0, 1, (n, 1)),
        lambda r, n: r.normal(0, math.sqrt(2), (n, 1)),
    ),
    "category-mix": (
        ONE_CATEGORICAL,
        lambda r, n: r.choice(3, n, p=[0.5, 0.3, 0.2]),
        lambda r, n: r.choice(3, n, p=[0.2, 0.3, 0.5]),
    ),
}
SHIFT_TRIALS = 30


@pytest.mark.parametrize(
    ("current_rows", "methods"),
    [(2000, {"wasserstein", "jensen_shannon"}), (300, {"ks", "chi_square"})],
    ids=["large", "small"],
)
@pytest.mark.parametrize("shift", list(SHIFTS))
def test_known_shifts_are_detected(shift: str, current_rows: int, methods: set[str]) -> None:
    signature, draw_ref, draw_cur = SHIFTS[shift]
    name = signature.inputs[0].name
    rng = np.random.default_rng(21)
    detected = 0
    for _ in range(SHIFT_TRIALS):
        reference = Profile.build(
            signature, ModelKind.TENSOR, {name: draw_ref(rng, REFERENCE_ROWS)}, {}
        )
        window = reference.like()
        window.update({name: draw_cur(rng, current_rows)}, {})
        report = evaluate(reference, window, Thresholds())
        (verdict,) = report.columns
        assert verdict.method in methods
        detected += verdict.drifted
        assert report.dataset_drift is verdict.drifted  # one column: all or nothing
    rate = detected / SHIFT_TRIALS
    # KS at the 1% level sees a doubled variance in 300 rows about two times in three;
    # everything else always
    minimum = 0.5 if (shift, current_rows) == ("variance*2", 300) else 1.0
    assert rate >= minimum, f"{shift} detected in {rate:.0%} of {SHIFT_TRIALS} trials"


def _four_columns(rng: np.random.Generator, n: int, shifted: int) -> np.ndarray:
    data = rng.normal(0, 1, (n, 4))
    data[:, :shifted] += 2.0
    return data.astype(np.float32)


def _report(shifted: int, thresholds: Thresholds, seed: int = 31) -> DriftReport:
    rng = np.random.default_rng(seed)
    signature = Signature(
        (TensorSpec("x", "FP32", (-1, 4)),), (TensorSpec("score", "FP32", (-1,)),)
    )
    ref_x = _four_columns(rng, REFERENCE_ROWS, 0)
    reference = Profile.build(
        signature, ModelKind.TENSOR, {"x": ref_x}, {"score": rng.normal(size=REFERENCE_ROWS)}
    )
    window = reference.like()
    window.update({"x": _four_columns(rng, 2000, shifted)}, {"score": rng.normal(5, 1, 2000)})
    return evaluate(reference, window, thresholds)


@pytest.mark.parametrize("shifted", range(5))
def test_dataset_drift_is_the_share_of_drifted_inputs(shifted: int) -> None:
    report = _report(shifted, Thresholds())
    assert [c.drifted for c in report.columns] == [i < shifted for i in range(4)]
    assert report.drifted_share == shifted / 4
    assert report.dataset_drift is (shifted >= 2)  # half the inputs, or more
    assert report.predictions[0].drifted  # the outputs drifted but do not count
    custom = _report(shifted, Thresholds(drift_share=0.2))
    assert custom.dataset_drift is (shifted >= 1)
    strict = _report(shifted, Thresholds(drift_share=1.0))
    assert strict.dataset_drift is (shifted == 4)
    assert custom.to_dict()["thresholds"]["drift_share"] == 0.2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"drift_share": 0}, r"drift_share must be in \(0, 1\]"),
        ({"drift_share": 0.0}, r"drift_share must be in \(0, 1\]"),
        ({"drift_share": 1.01}, r"drift_share must be in \(0, 1\]"),
        ({"drift_share": -0.5}, r"drift_share must be in \(0, 1\]"),
        ({"wasserstein": -0.1}, "drift threshold wasserstein must be positive"),
        ({"wasserstein": 0}, "drift threshold wasserstein must be positive"),
        ({"jensen_shannon": -1}, "drift threshold jensen_shannon must be positive"),
        ({"psi": -0.2}, "drift threshold psi must be positive"),
        ({"psi": math.nan}, "drift threshold psi must be positive"),
        ({"p_value": 0}, "p_value must be between 0 and 1"),
        ({"p_value": 1.5}, "p_value must be between 0 and 1"),
        ({"small_sample": -1}, "small_sample must not be negative"),
        ({"small_sample": math.nan}, "small_sample must not be negative"),
        ({"numeric_method": "ks"}, "numeric_method must be 'wasserstein' or 'psi'"),
        ({"wasserstein": "0.1"}, "drift setting wasserstein must be a number"),
        ({"drift_share": None}, "drift setting drift_share must be a number"),
        ({"small_sample": True}, "drift setting small_sample must be a number"),
    ],
)
def test_invalid_thresholds_are_rejected(settings: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Thresholds.from_dict(settings)


def test_unknown_threshold_settings_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match=r"unknown drift settings \['wasserstien'\]; known"):
        Thresholds.from_dict({"wasserstien": 0.2, "psi": 0.3})
    with pytest.raises(InvalidInputError, match=r"\['a', 'b'\]"):
        Thresholds.from_dict({"b": 1, "a": 2})


def test_threshold_settings_round_trip() -> None:
    assert Thresholds.from_dict(None) == Thresholds()
    assert Thresholds.from_dict({}) == Thresholds()
    custom = Thresholds(wasserstein=0.2, drift_share=1, small_sample=0, numeric_method="psi")
    assert Thresholds.from_dict(custom.to_dict()) == custom


# Prediction drift and the PSI gate --------------------------------------------------------


def test_prediction_drift_shows_a_shifted_output() -> None:
    rng = np.random.default_rng(41)
    signature = Signature(
        (TensorSpec("x", "FP32", (-1, 2)),),
        (TensorSpec("score", "FP32", (-1,)), TensorSpec("label", "INT64", (-1,))),
    )

    def batch(
        n: int, score_shift: float, label_mix: list[float]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        inputs = {"x": rng.normal(size=(n, 2)).astype(np.float32)}
        outputs: dict[str, np.ndarray] = {
            "score": rng.normal(score_shift, 1, n).astype(np.float32),
            "label": rng.choice(3, n, p=label_mix).astype(np.int64),
        }
        return inputs, outputs

    reference = Profile.build(signature, ModelKind.TENSOR, *batch(5000, 0.0, [0.6, 0.3, 0.1]))
    steady = reference.like()
    steady.update(*batch(2000, 0.0, [0.6, 0.3, 0.1]))
    calm = evaluate(reference, steady, Thresholds())
    assert not any(c.drifted for c in calm.predictions)
    assert 0 < calm.prediction_drift < 0.1

    shifted = reference.like()
    shifted.update(*batch(2000, 1.0, [0.6, 0.3, 0.1]))
    report = evaluate(reference, shifted, Thresholds())
    outputs = {c.column: c for c in report.predictions}
    assert set(outputs) == {"score", "label"}
    assert all(c.role == "output" for c in report.predictions)
    assert outputs["score"].drifted
    assert not outputs["label"].drifted
    assert report.prediction_drift == outputs["score"].statistics["wasserstein"] > 0.5
    assert not report.dataset_drift  # the inputs did not move
    assert report.drifted_share == 0.0

    relabelled = reference.like()
    relabelled.update(*batch(2000, 0.0, [0.1, 0.3, 0.6]))
    labels = evaluate(reference, relabelled, Thresholds())
    label = next(c for c in labels.predictions if c.column == "label")
    assert label.drifted
    assert labels.prediction_drift == label.statistics["jensen_shannon"] > 0.1


def test_psi_method_gates_numeric_columns_on_psi() -> None:
    rng = np.random.default_rng(51)
    signature = Signature((TensorSpec("x", "FP32", (-1, 1)),), ())
    reference = Profile.build(
        signature, ModelKind.TENSOR, {"x": rng.normal(size=(REFERENCE_ROWS, 1))}, {}
    )
    window = reference.like()
    window.update({"x": rng.normal(0.5, 1, (2000, 1))}, {})

    (by_wasserstein,) = evaluate(reference, window, Thresholds()).columns
    assert by_wasserstein.method == "wasserstein"

    (by_psi,) = evaluate(reference, window, Thresholds(numeric_method="psi")).columns
    assert by_psi.method == "psi"
    assert by_psi.score == by_psi.statistics["psi"] > 0.2
    assert by_psi.threshold == 0.2
    assert by_psi.drifted

    # a PSI threshold above the score: not drifted, though the Wasserstein distance is large
    lenient = Thresholds(numeric_method="psi", psi=by_psi.score * 1.5)
    (not_by_psi,) = evaluate(reference, window, lenient).columns
    assert not_by_psi.statistics["wasserstein"] >= Thresholds().wasserstein
    assert (not_by_psi.method, not_by_psi.threshold) == ("psi", lenient.psi)
    assert not not_by_psi.drifted

    # small samples still gate on the KS p-value, whatever the numeric method
    small = reference.like()
    small.update({"x": rng.normal(0.5, 1, (300, 1))}, {})
    (by_ks,) = evaluate(reference, small, Thresholds(numeric_method="psi")).columns
    assert by_ks.method == "ks"
    assert by_ks.drifted


def test_ks_p_value_of_large_samples_uses_the_limiting_distribution() -> None:
    """Past KS_EXACT_LIMIT effective rows: Kolmogorov's limit, within 1% of SciPy's exact one."""
    from scipy.stats import ks_2samp

    from shipyard.monitor.drift import KS_EXACT_LIMIT

    rng = np.random.default_rng(3)
    ref_counts = rng.multinomial(60_000, np.full(20, 0.05))
    cur_counts = rng.multinomial(40_000, np.full(20, 0.05) + np.linspace(-0.002, 0.002, 20))
    n, m = ref_counts.sum(), cur_counts.sum()
    assert n * m / (n + m) > KS_EXACT_LIMIT
    statistic, p_value = ks_test(ref_counts, cur_counts)
    bins = np.arange(20)
    want = ks_2samp(np.repeat(bins, ref_counts), np.repeat(bins, cur_counts), method="asymp")
    assert statistic == pytest.approx(want.statistic, abs=1e-12)
    assert 0.001 < p_value < 0.999
    assert p_value == pytest.approx(want.pvalue, rel=0.01)
