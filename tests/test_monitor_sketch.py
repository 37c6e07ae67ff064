"""Column sketches and profiles: binning, moments, quality counts, merging, serialisation."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from shipyard.monitor.drift import Thresholds, evaluate
from shipyard.monitor.profile import PROJECTIONS, Profile
from shipyard.monitor.sketch import (
    NUMERIC_BINS,
    CategoricalSketch,
    NumericSketch,
    sketch_from_dict,
)
from shipyard.registry.domain import ModelKind, Signature, TensorSpec

TOLERANCE = 1e-9


def _close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def _bin_masks(values: np.ndarray, edges: np.ndarray) -> list[np.ndarray]:
    """Bin i holds edges[i-1] < x <= edges[i] (the first from -inf, the last to +inf)."""
    bounds = np.concatenate([[-np.inf], edges, [np.inf]])
    return [(values > bounds[i]) & (values <= bounds[i + 1]) for i in range(len(bounds) - 1)]


def _check_numeric(sketch: NumericSketch, values: np.ndarray) -> None:
    """Every field of ``sketch`` agrees with the same thing computed from the raw values."""
    finite = values[np.isfinite(values)]
    assert sketch.count == finite.size
    assert sketch.missing == int(np.isnan(values).sum())
    assert sketch.nonfinite == int(np.isinf(values).sum())
    assert sketch.rows == values.size
    assert int(sketch.counts.sum()) == finite.size
    masks = _bin_masks(finite, sketch.edges)
    assert sketch.counts.tolist() == [int(m.sum()) for m in masks]
    for got, mask in zip(sketch.sums.tolist(), masks, strict=True):
        assert _close(got, float(finite[mask].sum()))
    if finite.size:
        assert _close(sketch.mean, float(finite.mean()))
        assert _close(sketch.std, float(finite.std()))
        if sketch.detail == "full":
            assert sketch.minimum == float(finite.min())
            assert sketch.maximum == float(finite.max())
    if sketch.detail != "full":  # a window keeps no single request's raw extremes
        assert (sketch.minimum, sketch.maximum) == (float("inf"), float("-inf"))


def _draws(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "normal": rng.normal(3.0, 2.0, n),
        "lognormal": rng.lognormal(0.0, 1.0, n),
        "uniform": rng.uniform(-5.0, 5.0, n),
        "exponential": rng.exponential(4.0, n),
    }


# NumericSketch.fit ------------------------------------------------------------------------


@pytest.mark.parametrize("bins", [2, 5, NUMERIC_BINS, 50])
@pytest.mark.parametrize("distribution", ["normal", "lognormal", "uniform", "exponential"])
def test_numeric_fit_edges_are_reference_quantiles(bins: int, distribution: str) -> None:
    values = _draws(np.random.default_rng(bins), 3000)[distribution]
    sketch = NumericSketch.fit(values, bins=bins)
    expected = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    np.testing.assert_allclose(sketch.edges, expected, rtol=0, atol=0)
    assert len(sketch.counts) == len(sketch.sums) == bins
    assert sketch.low == values.min()
    assert sketch.high == values.max()
    assert sketch.out_of_range == 0  # the reference is inside its own range
    _check_numeric(sketch, values)


def test_numeric_fit_merges_repeated_quantiles_of_a_discrete_column() -> None:
    values = np.random.default_rng(1).integers(0, 4, 1000).astype(np.float64)
    sketch = NumericSketch.fit(values)
    quantiles = np.quantile(values, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1])
    assert sketch.edges.tolist() == np.unique(quantiles).tolist()
    assert len(sketch.counts) == len(sketch.edges) + 1 < NUMERIC_BINS
    _check_numeric(sketch, values)


def test_numeric_fit_counts_missing_and_nonfinite() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(0.0, 1.0, 2000)
    values[rng.choice(2000, 37, replace=False)] = np.nan
    values[:5] = np.inf
    values[5:8] = -np.inf
    sketch = NumericSketch.fit(values)
    finite = values[np.isfinite(values)]
    assert sketch.missing == 37
    assert sketch.nonfinite == 8
    assert sketch.count == finite.size == 2000 - 45
    np.testing.assert_array_equal(
        sketch.edges, np.quantile(finite, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1])
    )
    _check_numeric(sketch, values)


def test_numeric_update_counts_none_as_missing() -> None:
    sketch = NumericSketch.fit(np.arange(10.0))
    window = sketch.like()
    window.update(np.array([1.5, None, 3.0, None], dtype=object))
    assert (window.count, window.missing, window.nonfinite) == (2, 2, 0)
    _check_numeric(window, np.array([1.5, np.nan, 3.0, np.nan]))


def test_numeric_window_counts_values_outside_the_reference_range() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(0.0, 1.0, 4000)
    sketch = NumericSketch.fit(reference)
    window = sketch.like()
    assert window.count == window.rows == 0
    assert window.edges.tolist() == sketch.edges.tolist()
    assert (window.low, window.high) == (sketch.low, sketch.high)
    current = np.concatenate([rng.normal(0.5, 1.5, 3000), [np.nan, np.inf, -np.inf]])
    window.update(current)
    finite = current[np.isfinite(current)]
    expected = int(((finite < reference.min()) | (finite > reference.max())).sum())
    assert expected > 0
    assert window.out_of_range == expected
    assert window.nonfinite == 2  # not out of range: counted once, as non-finite
    _check_numeric(window, current)


def test_numeric_reference_edges_themselves_are_in_range() -> None:
    sketch = NumericSketch.fit(np.array([1.0, 2.0, 3.0, 4.0]))
    window = sketch.like()
    window.update(np.array([1.0, 4.0, 0.999, 4.001]))
    assert window.out_of_range == 2


def test_numeric_all_missing_reference() -> None:
    sketch = NumericSketch.fit(np.full(100, np.nan))
    assert sketch.edges.size == 0
    assert sketch.counts.tolist() == [0]
    assert math.isnan(sketch.low)
    assert math.isnan(sketch.high)
    assert sketch.missing == 100
    assert sketch.count == 0
    assert math.isnan(sketch.mean)
    assert math.isnan(sketch.std)
    assert sketch.minimum == math.inf
    assert sketch.maximum == -math.inf
    window = sketch.like()
    window.update(np.array([1.0, 2.0, np.nan]))
    assert window.counts.tolist() == [2]
    assert window.out_of_range == 2  # a reference with no range: every value is outside it
    assert window.bin_means.tolist() == [1.5]


@pytest.mark.parametrize("value", [0.1, 3.7, -2.3, 1 / 3, 7.0, 1e6 + 0.1])
@pytest.mark.parametrize("rows", [300, 1000, 5000])
def test_numeric_constant_column_has_zero_std(value: float, rows: int) -> None:
    sketch = NumericSketch.fit(np.full(rows, value))
    assert sketch.std == 0.0
    assert sketch.mean == pytest.approx(value, rel=1e-12)
    assert sketch.counts.sum() == rows


def test_numeric_bin_means_fall_back_to_midpoints_for_empty_bins() -> None:
    sketch = NumericSketch.fit(np.arange(100.0), bins=4)
    window = sketch.like()
    window.update(np.array([10.0, 12.0]))
    means = window.bin_means
    assert means[0] == 11.0
    edges = sketch.edges
    assert means[1:].tolist() == pytest.approx(
        [(edges[0] + edges[1]) / 2, (edges[1] + edges[2]) / 2, (edges[2] + 99.0) / 2]
    )


# NumericSketch.merge ----------------------------------------------------------------------


@pytest.mark.parametrize("distribution", ["normal", "lognormal", "uniform", "exponential"])
def test_numeric_merge_equals_sketch_of_concatenation(distribution: str) -> None:
    rng = np.random.default_rng(4)
    reference = NumericSketch.fit(_draws(rng, 2000)[distribution])
    a = _draws(rng, 700)[distribution] * 1.3 + 0.2  # partly outside the reference range
    b = _draws(rng, 1100)[distribution]
    a[:4] = [np.nan, np.inf, -np.inf, np.nan]
    window_a, window_b, window_ab = reference.like(), reference.like(), reference.like()
    window_a.update(a)
    window_b.update(b)
    window_ab.update(np.concatenate([a, b]))
    window_a.merge(window_b)
    assert window_a.counts.tolist() == window_ab.counts.tolist()
    for name in ("count", "missing", "nonfinite", "out_of_range", "minimum", "maximum"):
        assert getattr(window_a, name) == getattr(window_ab, name), name
    np.testing.assert_allclose(window_a.sums, window_ab.sums, rtol=TOLERANCE, atol=TOLERANCE)
    for name in ("total", "total_sq", "mean", "std"):
        assert _close(getattr(window_a, name), getattr(window_ab, name)), name
    _check_numeric(window_a, np.concatenate([a, b]))


def test_removing_a_merged_window_restores_the_total() -> None:
    rng = np.random.default_rng(41)
    reference = NumericSketch.fit(rng.normal(size=2000))
    old, new, total = reference.like(), reference.like(), reference.like()
    old.update(np.concatenate([rng.normal(3.0, 2.0, 500), [np.nan, np.inf]]))
    new.update(rng.normal(size=700))
    total.merge(old)
    total.merge(new)
    total.remove(old)
    assert total.counts.tolist() == new.counts.tolist()
    for name in ("count", "missing", "nonfinite", "out_of_range"):
        assert getattr(total, name) == getattr(new, name), name
    np.testing.assert_allclose(total.sums, new.sums, rtol=1e-12, atol=1e-9)
    for name in ("mean", "std"):
        assert _close(getattr(total, name), getattr(new, name)), name

    categories = CategoricalSketch.fit(np.array(["a", "b", "b", "c"]))
    seen, later, both = categories.like(), categories.like(), categories.like()
    seen.update(np.array(["a", "z", None], dtype=object))
    later.update(np.array(["b", "b"]))
    both.merge(seen)
    both.merge(later)
    both.remove(seen)
    assert both.to_dict() == later.to_dict()


def test_a_sketch_with_extremes_cannot_lose_a_part() -> None:
    reference = NumericSketch.fit(np.arange(100.0))
    with pytest.raises(ValueError, match="extremes"):
        reference.remove(reference.like())


def test_std_of_values_far_from_zero_keeps_its_digits() -> None:
    rng = np.random.default_rng(42)
    stamps = 1.8e9 + rng.normal(0.0, 1.0, 5000)  # Unix times, one second apart
    reference = NumericSketch.fit(stamps)
    assert reference.std == pytest.approx(float(np.std(stamps)), rel=1e-6)
    window = reference.like()
    window.update(stamps[:2000] + 0.5)
    assert window.mean == pytest.approx(float(np.mean(stamps[:2000] + 0.5)), abs=1e-6)
    assert window.std == pytest.approx(float(np.std(stamps[:2000])), rel=1e-6)


def test_sketches_kept_about_different_shifts_merge_exactly() -> None:
    rng = np.random.default_rng(43)
    values = rng.normal(50.0, 5.0, 3000)
    reference = NumericSketch.fit(values)
    unshifted = NumericSketch.from_dict({**reference.like().to_dict(), "shift": 0.0})
    unshifted.update(values[:1000])  # a window stored before moments were shifted
    window = reference.like()
    window.update(values[1000:])
    window.merge(unshifted)
    assert window.mean == pytest.approx(float(values.mean()), rel=1e-12)
    assert window.std == pytest.approx(float(values.std()), rel=1e-9)


def test_numeric_merge_with_an_empty_window_changes_nothing() -> None:
    reference = NumericSketch.fit(np.random.default_rng(5).normal(size=500))
    before = reference.to_dict()
    reference.merge(reference.like())
    assert reference.to_dict() == before


def test_numeric_merge_with_different_bins_raises() -> None:
    rng = np.random.default_rng(6)
    a = NumericSketch.fit(rng.normal(size=500))
    b = NumericSketch.fit(rng.normal(size=500))
    with pytest.raises(ValueError, match="different bins"):
        a.merge(b)
    with pytest.raises(ValueError, match="different bins"):
        a.merge(NumericSketch.fit(rng.normal(size=500), bins=5))


# Serialisation ----------------------------------------------------------------------------


def _round_trip(data: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(data, allow_nan=False)  # strict JSON: no NaN or Infinity tokens
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _same_float(restored: float, original: float) -> bool:
    if math.isnan(original):
        return math.isnan(restored)
    return restored == original  # in particular: a number never comes back as NaN


def _assert_same_numeric(restored: NumericSketch, original: NumericSketch) -> None:
    assert restored.edges.tolist() == original.edges.tolist()
    assert restored.counts.dtype == np.int64
    assert restored.counts.tolist() == original.counts.tolist()
    assert restored.sums.tolist() == original.sums.tolist()
    for name in ("count", "missing", "nonfinite", "out_of_range"):
        assert getattr(restored, name) == getattr(original, name), name
    for name in ("low", "high", "shift", "total", "total_sq", "minimum", "maximum", "mean", "std"):
        assert _same_float(getattr(restored, name), getattr(original, name)), name


def test_numeric_round_trip_through_json() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.gamma(2.0, 3.0, 1000), [np.nan, np.inf]])
    sketch = NumericSketch.fit(values)
    restored = sketch_from_dict(_round_trip(sketch.to_dict()))
    assert isinstance(restored, NumericSketch)
    _assert_same_numeric(restored, sketch)
    window, restored_window = sketch.like(), restored.like()
    window.update(values[:300])
    restored_window.update(values[:300])
    _assert_same_numeric(restored_window, window)


def test_numeric_round_trip_of_an_all_missing_column() -> None:
    sketch = NumericSketch.fit(np.full(50, np.nan))
    data = _round_trip(sketch.to_dict())
    restored = NumericSketch.from_dict(data)
    _assert_same_numeric(restored, sketch)
    assert math.isnan(restored.low)
    assert math.isnan(restored.high)
    assert restored.minimum == math.inf
    assert restored.maximum == -math.inf
    empty_window = _round_trip(sketch.like().to_dict())
    restored_window = NumericSketch.from_dict(empty_window)
    assert restored_window.minimum == math.inf
    assert restored_window.maximum == -math.inf
    assert restored_window.total == 0.0
    assert restored_window.total_sq == 0.0
    restored_window.update(np.array([2.0, 4.0]))  # still usable after the trip
    assert restored_window.detail == "window"
    assert (restored_window.mean, restored_window.count) == (3, 2)


# CategoricalSketch ------------------------------------------------------------------------


def _letters(counts: dict[str, int]) -> np.ndarray:
    values = np.array([name for name, n in counts.items() for _ in range(n)], dtype=object)
    np.random.default_rng(8).shuffle(values)
    return values


def test_categorical_top_k_most_frequent_first_ties_by_name() -> None:
    values = _letters({"b": 5, "a": 5, "c": 3, "d": 7, "e": 1})
    sketch = CategoricalSketch.fit(values)
    assert sketch.categories == ("d", "a", "b", "c", "e")
    assert sketch.counts.tolist() == [7, 5, 5, 3, 1, 0]
    assert sketch.complete
    assert (sketch.count, sketch.rows, sketch.missing, sketch.unseen) == (21, 21, 0, 0)


def test_categorical_rest_goes_to_other_and_is_not_unseen_when_incomplete() -> None:
    values = _letters({"b": 5, "a": 5, "c": 3, "d": 7, "e": 1})
    sketch = CategoricalSketch.fit(values, top=2)
    assert sketch.categories == ("d", "a")
    assert not sketch.complete
    assert sketch.counts.tolist() == [7, 5, 9]  # b, c, e are "other"
    window = sketch.like()
    window.update(np.array(["a", "b", "zzz", "d"], dtype=object))
    assert window.counts.tolist() == [1, 1, 2]
    assert window.unseen == 0  # the reference had more categories than it kept


def test_categorical_unseen_only_when_reference_complete() -> None:
    sketch = CategoricalSketch.fit(np.array(["x", "y", "y"]))
    assert sketch.complete
    assert sketch.categories == ("y", "x")
    window = sketch.like()
    window.update(np.array(["x", "new", "new", "other"]))
    assert window.counts.tolist() == [0, 1, 3]
    assert window.unseen == 3


def test_categorical_missing_values() -> None:
    values = np.array(["a", None, "", float("nan"), b"", np.float64("nan"), "b", "a"], dtype=object)
    sketch = CategoricalSketch.fit(values)
    assert sketch.categories == ("a", "b")
    assert sketch.missing == 5
    assert (sketch.count, sketch.rows) == (3, 8)
    floats = CategoricalSketch.fit(np.array([1.0, np.nan, 2.0, np.nan]))
    assert floats.missing == 2
    assert floats.categories == ("1", "2")


def test_categorical_bytes_are_decoded() -> None:
    sketch = CategoricalSketch.fit(np.array([b"cat", b"dog", b"cat", "caf\u00e9".encode()]))
    assert sketch.categories == ("cat", "caf\u00e9", "dog")
    window = sketch.like()
    window.update(np.array(["cat", b"dog"], dtype=object))
    assert window.counts.tolist() == [1, 0, 1, 0]
    assert window.unseen == 0


def test_categorical_integers_and_integral_floats_share_keys() -> None:
    sketch = CategoricalSketch.fit(np.array([1, 2, 2, 3, 3, 3], dtype=np.int64))
    assert sketch.categories == ("3", "2", "1")
    window = sketch.like()
    window.update(np.array([1.0, 2.0, 3.0, 2.5]))  # served as floats (JSON numbers)
    assert window.counts.tolist() == [1, 1, 1, 1]
    assert window.unseen == 1  # 2.5 is a new value, not a float spelling of one
    objects = sketch.like()
    objects.update(np.array([1, 1.0, np.int64(1), np.float64(3.0), None], dtype=object))
    assert objects.counts.tolist() == [1, 0, 3, 0]
    assert (objects.missing, objects.unseen) == (1, 0)
    unsigned = sketch.like()
    unsigned.update(np.array([1, 3], dtype=np.uint8))
    assert unsigned.counts.tolist() == [1, 0, 1, 0]


def test_categorical_float_keys_for_infinite_and_huge_values() -> None:
    sketch = CategoricalSketch.fit(np.array([np.inf, -np.inf, 1e20, 0.5, 0.5]))
    assert sketch.categories == ("0.5", "-inf", "1e+20", "inf")
    assert sketch.missing == 0


def test_categorical_merge_and_round_trip() -> None:
    rng = np.random.default_rng(9)
    sketch = CategoricalSketch.fit(rng.choice(["a", "b", "c"], 300, p=[0.5, 0.3, 0.2]))
    a, b, ab = sketch.like(), sketch.like(), sketch.like()
    first = np.array(["a", "d", None, "c"], dtype=object)
    second = np.array(["b", "b", "", "e", "a"], dtype=object)
    a.update(first)
    b.update(second)
    ab.update(np.concatenate([first, second]))
    a.merge(b)
    assert a.to_dict() == ab.to_dict()
    assert ab.unseen == 2
    assert ab.missing == 2
    restored = sketch_from_dict(_round_trip(ab.to_dict()))
    assert isinstance(restored, CategoricalSketch)
    assert restored.to_dict() == ab.to_dict()
    assert restored.counts.dtype == np.int64
    with pytest.raises(ValueError, match="different categories"):
        a.merge(CategoricalSketch.fit(np.array(["a", "b"])))


def test_categorical_all_missing_reference() -> None:
    sketch = CategoricalSketch.fit(np.array([None, "", None], dtype=object))
    assert sketch.categories == ()
    assert sketch.counts.tolist() == [0]
    assert sketch.complete
    assert sketch.missing == 3
    window = sketch.like()
    window.update(np.array(["a", "b"]))
    assert window.counts.tolist() == [2]
    assert window.unseen == 2


# Profile ----------------------------------------------------------------------------------


def _signature(inputs: list[TensorSpec], outputs: list[TensorSpec] | None = None) -> Signature:
    return Signature(tuple(inputs), tuple(outputs or []))


def _kinds(profile: Profile) -> dict[str, str]:
    return {name: sketch.kind for name, sketch in profile.sketches.items()}


def test_profile_uses_feature_names_when_the_width_matches() -> None:
    x = np.random.default_rng(10).normal(size=(200, 3)).astype(np.float32)
    signature = _signature([TensorSpec("x", "FP32", (-1, 3))])
    named = Profile.build(signature, ModelKind.TENSOR, {"x": x}, {}, ["age", "height", "weight"])
    assert [c.name for c in named.columns] == ["age", "height", "weight"]
    assert [c.index for c in named.columns] == [0, 1, 2]
    assert named.rows == 200
    sketch = named.sketches["height"]
    assert isinstance(sketch, NumericSketch)
    assert _close(sketch.mean, float(x[:, 1].astype(np.float64).mean()))
    for names in (["age", "height"], None):
        plain = Profile.build(signature, ModelKind.TENSOR, {"x": x}, {}, names)
        assert [c.name for c in plain.columns] == ["x[0]", "x[1]", "x[2]"]


def test_feature_names_go_to_one_input_of_two_as_wide() -> None:
    rng = np.random.default_rng(13)
    a, b = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    signature = _signature([TensorSpec("a", "FP64", (-1, 2)), TensorSpec("b", "FP64", (-1, 2))])
    profile = Profile.build(signature, ModelKind.TENSOR, {"a": a, "b": b}, {}, ["age", "height"])
    assert [c.name for c in profile.columns] == ["age", "height", "b[0]", "b[1]"]
    assert [c.tensor for c in profile.columns] == ["a", "a", "b", "b"]


@pytest.mark.parametrize("shape", [(64, 8, 8), (64, 3, 8, 8)])
def test_profile_watches_image_like_inputs_by_row_mean_and_std(shape: tuple[int, ...]) -> None:
    images = np.random.default_rng(11).uniform(size=shape).astype(np.float32)
    spec = TensorSpec("image", "FP32", (-1, *shape[1:]))
    profile = Profile.build(_signature([spec]), ModelKind.TENSOR, {"image": images}, {})
    assert [c.name for c in profile.columns] == ["image.mean", "image.std"]
    assert _kinds(profile) == {"image.mean": "numeric", "image.std": "numeric"}
    rows = images.reshape(shape[0], -1).astype(np.float64)
    means, stds = profile.sketches["image.mean"], profile.sketches["image.std"]
    assert isinstance(means, NumericSketch)
    assert isinstance(stds, NumericSketch)
    assert _close(means.mean, float(rows.mean(axis=1).mean()))
    assert _close(stds.maximum, float(rows.std(axis=1).max()))


def test_profile_of_a_text_embedding_model() -> None:
    rng = np.random.default_rng(12)
    words = ["short", "a longer sentence", "caf\u00e9", "x" * 40]
    texts = np.array([words[i % 4] for i in range(120)], dtype=object)
    texts[2] = "caf\u00e9 cr\u00e8me".encode()  # bytes count in characters, not bytes
    embedding = rng.normal(size=(120, 384)).astype(np.float32)
    signature = _signature(
        [TensorSpec("text", "BYTES", (-1,))], [TensorSpec("embedding", "FP32", (-1, 384))]
    )
    profile = Profile.build(
        signature, ModelKind.TEXT_EMBEDDING, {"text": texts}, {"embedding": embedding}
    )
    names = [c.name for c in profile.columns]
    assert names == [
        "text.length",
        "embedding.norm",
        *[f"embedding.projection[{i}]" for i in range(PROJECTIONS)],
    ]
    assert PROJECTIONS == 4
    assert set(_kinds(profile).values()) == {"numeric"}
    assert [c.role for c in profile.columns] == ["input"] + ["output"] * 5
    lengths = profile.sketches["text.length"]
    assert isinstance(lengths, NumericSketch)
    expected = [len(t.decode() if isinstance(t, bytes) else t) for t in texts]
    assert _close(lengths.mean * lengths.count, float(sum(expected)))
    norms = profile.sketches["embedding.norm"]
    assert isinstance(norms, NumericSketch)
    assert _close(norms.mean, float(np.linalg.norm(embedding.astype(np.float64), axis=1).mean()))
    projections = [profile.sketches[f"embedding.projection[{i}]"] for i in range(PROJECTIONS)]
    means = [s.mean for s in projections if isinstance(s, NumericSketch)]
    assert len(set(means)) == PROJECTIONS  # four different directions
    again = Profile.build(
        signature, ModelKind.TEXT_EMBEDDING, {"text": texts}, {"embedding": embedding}
    )
    assert again.to_dict() == profile.to_dict()  # fixed directions: the same every time


def test_profile_output_columns() -> None:
    rng = np.random.default_rng(13)
    x = rng.normal(size=(300, 2)).astype(np.float32)
    labels = rng.integers(0, 3, 300).astype(np.int64)
    scores = rng.dirichlet([1.0, 1.0], 300).astype(np.float32)
    signature = _signature(
        [TensorSpec("x", "FP32", (-1, 2))],
        [TensorSpec("label", "INT64", (-1,)), TensorSpec("scores", "FP32", (-1, 2))],
    )
    profile = Profile.build(
        signature, ModelKind.TENSOR, {"x": x}, {"label": labels, "scores": scores}
    )
    assert _kinds(profile) == {
        "x[0]": "numeric",
        "x[1]": "numeric",
        "label": "categorical",
        "scores[0]": "numeric",
        "scores[1]": "numeric",
        "scores.argmax": "categorical",
    }
    assert [c.role for c in profile.columns_of("output")] == ["output"] * 4
    argmax = profile.sketches["scores.argmax"]
    assert isinstance(argmax, CategoricalSketch)
    assert sorted(argmax.categories) == ["0", "1"]
    assert argmax.counts[argmax.categories.index("1")] == int((scores.argmax(axis=1) == 1).sum())
    label = profile.sketches["label"]
    assert isinstance(label, CategoricalSketch)
    assert sorted(label.categories) == ["0", "1", "2"]


def test_profile_integer_inputs_with_few_values_are_categorical() -> None:
    rng = np.random.default_rng(14)
    codes = np.column_stack(
        [rng.integers(0, 20, 500), rng.integers(0, 500, 500), rng.integers(0, 2, 500)]
    ).astype(np.int64)
    signature = _signature([TensorSpec("c", "INT64", (-1, 3))])
    profile = Profile.build(signature, ModelKind.TENSOR, {"c": codes}, {})
    assert _kinds(profile) == {"c[0]": "categorical", "c[1]": "numeric", "c[2]": "categorical"}
    one = Profile.build(
        _signature([TensorSpec("k", "INT32", (-1,))]),
        ModelKind.TENSOR,
        {"k": codes[:, 0].astype(np.int32)},
        {},
    )
    assert _kinds(one) == {"k": "categorical"}


def _mixed_profile(rows: int, seed: int) -> tuple[Signature, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    signature = _signature(
        [TensorSpec("x", "FP32", (-1, 2)), TensorSpec("c", "INT64", (-1,))],
        [TensorSpec("scores", "FP32", (-1, 2))],
    )
    data: dict[str, np.ndarray] = {
        "x": rng.normal(size=(rows, 2)).astype(np.float32),
        "c": rng.integers(0, 4, rows).astype(np.int64),
        "scores": rng.dirichlet([2.0, 1.0], rows).astype(np.float32),
    }
    return signature, data


def test_profile_round_trip_through_json() -> None:
    signature, data = _mixed_profile(400, 15)
    inputs, outputs = {"x": data["x"], "c": data["c"]}, {"scores": data["scores"]}
    profile = Profile.build(signature, ModelKind.TENSOR, inputs, outputs)
    restored = Profile.from_dict(_round_trip(profile.to_dict()))
    assert restored.columns == profile.columns
    assert restored.rows == profile.rows == 400
    assert restored.to_dict() == profile.to_dict()
    window, restored_window = profile.like(), restored.like()
    window.update(inputs, outputs)
    restored_window.update(inputs, outputs)
    assert restored_window.to_dict() == window.to_dict()


def test_a_large_batch_is_profiled_in_chunks_of_rows_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch beyond ROW_CHUNK rows goes a chunk at a time; a tensor without a row per batch
    row goes whole into every chunk, and the window equals the batch's in one go."""
    from shipyard.monitor import profile as profile_module

    signature, data = _mixed_profile(1000, 17)
    inputs, outputs = {"x": data["x"], "c": data["c"]}, {"scores": data["scores"]}
    reference = Profile.build(signature, ModelKind.TENSOR, inputs, outputs)
    whole, chunked = reference.like(), reference.like()
    whole.update(inputs, {**outputs, "temperature": np.float32(0.5)})
    monkeypatch.setattr(profile_module, "ROW_CHUNK", 64)
    chunked.update(inputs, {**outputs, "temperature": np.float32(0.5)})
    assert chunked.rows == whole.rows == 1000
    # sums over chunks may differ from one sum in the last bits
    assert _close(chunked.to_dict(), whole.to_dict())


def _close(ours: Any, theirs: Any) -> bool:
    if isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(_close(ours[k], theirs[k]) for k in theirs)
    if isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(_close, ours, theirs))
    if isinstance(theirs, float):
        return bool(ours == pytest.approx(theirs, rel=1e-12, abs=1e-9, nan_ok=True))
    return bool(ours == theirs)


def test_profile_merge_adds_rows_and_counts() -> None:
    signature, data = _mixed_profile(1000, 16)
    reference = Profile.build(
        signature, ModelKind.TENSOR, {"x": data["x"], "c": data["c"]}, {"scores": data["scores"]}
    )
    first, second, whole = reference.like(), reference.like(), reference.like()
    assert first.rows == 0
    half = {name: value[:400] for name, value in data.items()}
    rest = {name: value[400:] for name, value in data.items()}
    first.update({"x": half["x"], "c": half["c"]}, {"scores": half["scores"]})
    second.update({"x": rest["x"], "c": rest["c"]}, {})  # no outputs in this batch
    whole.update({"x": data["x"], "c": data["c"]}, {"scores": half["scores"]})
    first.merge(second)
    assert first.rows == whole.rows == 1000
    for name, sketch in first.sketches.items():
        other = whole.sketches[name]
        assert sketch.counts.tolist() == other.counts.tolist(), name
    assert first.sketches["scores[0]"].count == 400
    with pytest.raises(ValueError, match="different columns"):
        first.merge(Profile.build(signature, ModelKind.TENSOR, {"x": data["x"]}, {}))


# Degenerate reference data ----------------------------------------------------------------


def _all_finite(value: Any, path: str = "report") -> None:
    """Recursively: every float in a to_dict() document is a finite number."""
    if isinstance(value, dict):
        for key, item in value.items():
            _all_finite(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _all_finite(item, f"{path}[{i}]")
    elif isinstance(value, float):
        assert math.isfinite(value), f"{path} is {value}"


@pytest.mark.parametrize("constant", [0.0, 3.7, -1e6 - 0.1])
def test_degenerate_reference_columns_give_finite_reports(constant: float) -> None:
    rng = np.random.default_rng(17)
    rows = 2000
    x = np.column_stack(
        [rng.normal(size=rows), np.full(rows, np.nan), np.full(rows, constant)]
    ).astype(np.float64)
    codes = np.full(rows, 7, dtype=np.int64)
    cities = np.array([None] * rows, dtype=object)
    signature = _signature(
        [
            TensorSpec("x", "FP64", (-1, 3)),
            TensorSpec("code", "INT64", (-1,)),
            TensorSpec("city", "BYTES", (-1,)),
        ]
    )
    reference = Profile.build(
        signature, ModelKind.TENSOR, {"x": x, "code": codes, "city": cities}, {}
    )
    assert _kinds(reference) == {
        "x[0]": "numeric",
        "x[1]": "numeric",
        "x[2]": "numeric",
        "code": "categorical",
        "city": "categorical",
    }
    _all_finite(_round_trip(reference.to_dict()))
    windows = {
        "same": (x[:1500], codes[:1500], cities[:1500]),
        "shifted": (
            np.column_stack(
                [rng.normal(1, 1, 1500), rng.normal(size=1500), np.full(1500, constant + 5.0)]
            ),
            rng.integers(6, 9, 1500).astype(np.int64),
            np.array(["paris"] * 1500, dtype=object),
        ),
        "small": (x[:50], codes[:50], cities[:50]),
    }
    for label, (wx, wcode, wcity) in windows.items():
        window = reference.like()
        window.update({"x": wx, "code": wcode, "city": wcity}, {})
        report = evaluate(reference, Profile.from_dict(_round_trip(window.to_dict())), Thresholds())
        document = report.to_dict()
        _all_finite(document)
        json.dumps(document, allow_nan=False)
        notes = {c.column: c.note for c in report.columns}
        assert notes["x[0]"] == "", label
        assert notes["x[1]"] == "the reference has no values", label
        assert notes["x[2]"] == "constant in the reference: normed by its magnitude", label
        assert notes["code"] == "constant in the reference", label
        assert notes["city"] == "the reference has no values", label
        verdicts = {c.column: c for c in report.columns}
        assert verdicts["x[1]"].method == verdicts["city"].method == "none"
        assert not verdicts["x[1]"].drifted
        assert not verdicts["city"].drifted
        constant_column = verdicts["x[2]"]
        if label == "same":
            assert not any(c.drifted for c in report.columns)
            assert constant_column.statistics["wasserstein"] == pytest.approx(0.0, abs=1e-9)
        if label == "shifted":
            assert verdicts["code"].drifted
            # a shift of 5 normed by the constant's magnitude (at least 1), not by a 0 std:
            # large next to 0 or 3.7, negligible next to a million
            scale = max(abs(constant), 1.0)
            assert constant_column.statistics["wasserstein"] == pytest.approx(5.0 / scale)
            assert constant_column.drifted is (5.0 / scale >= Thresholds().wasserstein)
        assert report.drifted_share == pytest.approx(
            sum(c.drifted for c in report.columns) / 3  # two columns cannot be tested
        )


def test_an_empty_window_is_reported_without_nan() -> None:
    signature, data = _mixed_profile(500, 18)
    reference = Profile.build(
        signature, ModelKind.TENSOR, {"x": data["x"], "c": data["c"]}, {"scores": data["scores"]}
    )
    report = evaluate(reference, reference.like(), Thresholds())
    _all_finite(report.to_dict())
    assert {c.note for c in report.columns + report.predictions} == {"no current values"}
    assert report.drifted_share == 0.0
    assert not report.dataset_drift
    assert report.prediction_drift == 0.0


def test_redacted_window_columns_keep_bin_counts_only() -> None:
    rng = np.random.default_rng(5)
    reference = NumericSketch.fit(rng.normal(0, 1, 2000))
    window = reference.like("counts")
    values = rng.normal(0.3, 1, 500)
    window.update(values)
    assert window.count == 500
    assert int(window.counts.sum()) == 500
    assert not window.sums.any()
    assert (window.total, window.total_sq) == (0.0, 0.0)
    assert (window.minimum, window.maximum) == (float("inf"), float("-inf"))
    # drift still works, each bin standing at its midpoint
    midpoints = window.bin_means
    assert np.all(np.diff(midpoints) > 0)
    again = NumericSketch.from_dict(json.loads(json.dumps(window.to_dict())))
    assert again.detail == "counts"
    assert np.array_equal(again.bin_means, midpoints)
