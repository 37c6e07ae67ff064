"""Column sketches: bounded summaries of one column's values, mergeable by addition.

A numeric sketch counts values into bins whose edges are quantiles of the reference (so a
window's sketch has the same bins as its profile's) and keeps, per bin, the sum of its
values: the bin means let the Wasserstein distance see a shift even past the outer edges.
It also keeps moments and data-quality counts (missing, non-finite, outside the reference
range); the reference's range comes from the reference data. The moments are sums of each
value less a shift near the reference's median (kept by every window of the profile), so
that the standard deviation of values far from zero, such as timestamps, keeps its digits.
A window of served traffic keeps no extremes (one request's raw value), and a redacted
field's window keeps bin counts alone. A categorical sketch counts the reference's top
categories, the rest as ``other``, and values never seen in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

NUMERIC_BINS = 20
TOP_CATEGORIES = 20
OTHER = "__other__"


@dataclass
class NumericSketch:
    """Binned counts over fixed edges, with moments and quality counts."""

    edges: np.ndarray  # interior bin edges, ascending; len(edges) + 1 bins
    counts: np.ndarray  # values per bin (int64)
    sums: np.ndarray  # sum of the values per bin (float64)
    low: float  # the reference's range: values outside it count as out_of_range
    high: float
    count: int = 0  # finite values
    missing: int = 0  # NaN or None
    nonfinite: int = 0  # +inf or -inf
    out_of_range: int = 0
    total: float = 0.0  # sum of (value - shift)
    total_sq: float = 0.0  # sum of (value - shift) ** 2
    shift: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")
    # full: the reference (everything); window: served traffic, no extremes (a minimum or
    # maximum is one request's raw value); counts: a redacted field, bin counts only
    detail: str = "full"
    kind: str = field(default="numeric", init=False)

    @classmethod
    def fit(cls, values: np.ndarray, bins: int = NUMERIC_BINS) -> NumericSketch:
        """A sketch whose bins are the quantiles of ``values`` (the reference), filled with it."""
        array = _as_float(values)
        finite = array[np.isfinite(array)]
        if finite.size:
            quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
            edges = np.unique(quantiles)
            low, high = float(finite.min()), float(finite.max())
            shift = float(quantiles[len(quantiles) // 2]) if quantiles.size else low
        else:  # an all-missing reference column: one bin, no range
            edges, low, high, shift = np.empty(0), float("nan"), float("nan"), 0.0
        sketch = cls.empty(edges, low, high, shift=shift)
        sketch.update(array)
        return sketch

    @classmethod
    def empty(
        cls,
        edges: np.ndarray,
        low: float,
        high: float,
        detail: str = "full",
        shift: float = 0.0,
    ) -> NumericSketch:
        bins = len(edges) + 1
        return cls(
            np.asarray(edges, dtype=np.float64),
            np.zeros(bins, dtype=np.int64),
            np.zeros(bins, dtype=np.float64),
            low,
            high,
            detail=detail,
            shift=shift,
        )

    def like(self, detail: str = "window") -> NumericSketch:
        """An empty sketch with the same bins, reference range and shift (a new window)."""
        return NumericSketch.empty(self.edges, self.low, self.high, detail, self.shift)

    def update(self, values: Any) -> None:
        array = _as_float(values)
        finite_mask = np.isfinite(array)
        finite_count = int(np.count_nonzero(finite_mask))
        if finite_count == array.size:  # the usual case: no copy, no NaN or inf to count
            finite = array
        else:
            missing = int(np.count_nonzero(np.isnan(array)))
            self.missing += missing
            self.nonfinite += array.size - finite_count - missing
            finite = array[finite_mask]
        if not finite.size:
            return
        index = _bin_index(self.edges, finite)
        self.counts += np.bincount(index, minlength=len(self.counts)).astype(np.int64)
        self.count += int(finite.size)
        if self.detail != "counts":
            self.sums += np.bincount(index, weights=finite, minlength=len(self.counts))
            centred = finite - self.shift if self.shift else finite
            self.total += float(centred.sum())
            self.total_sq += float(np.dot(centred, centred))
        smallest, largest = float(finite.min()), float(finite.max())
        if self.detail == "full":
            self.minimum = min(self.minimum, smallest)
            self.maximum = max(self.maximum, largest)
        if np.isnan(self.low):
            self.out_of_range += int(finite.size)
        elif smallest < self.low or largest > self.high:  # else nothing is out of range
            below = np.count_nonzero(finite < self.low)
            above = np.count_nonzero(finite > self.high)
            self.out_of_range += int(below) + int(above)

    def merge(self, other: NumericSketch) -> None:
        self._add(other, 1)
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    def remove(self, other: NumericSketch) -> None:
        """Undo ``merge(other)``: a sliding window dropping its oldest part. Extremes cannot
        be taken out, so only a sketch that keeps none can lose a part."""
        if self.detail == "full":
            raise ValueError("a sketch that keeps extremes cannot have a part removed")
        self._add(other, -1)

    def _add(self, other: NumericSketch, sign: int) -> None:
        _same_bins(self.edges, other.edges)
        total, total_sq = other.total, other.total_sq
        if other.shift != self.shift:  # the same sums, taken about this sketch's shift
            offset = other.shift - self.shift
            total_sq += 2 * offset * total + other.count * offset**2
            total += other.count * offset
        self.counts += sign * other.counts
        self.sums += sign * other.sums
        self.count += sign * other.count
        self.missing += sign * other.missing
        self.nonfinite += sign * other.nonfinite
        self.out_of_range += sign * other.out_of_range
        self.total += sign * total
        self.total_sq += sign * total_sq

    @property
    def rows(self) -> int:
        return self.count + self.missing + self.nonfinite

    @property
    def mean(self) -> float:
        return self.shift + self.total / self.count if self.count else float("nan")

    @property
    def std(self) -> float:
        if not self.count:
            return float("nan")
        if self.minimum == self.maximum:  # constant: the sums' rounding must not make it vary
            return 0.0
        centred_mean = self.total / self.count
        variance = max(self.total_sq / self.count - centred_mean**2, 0.0)
        return float(np.sqrt(variance))

    @property
    def bin_means(self) -> np.ndarray:
        """Each bin's mean value; an empty bin's is its midpoint (it carries no weight)."""
        edges = self.edges
        if edges.size:
            left = np.concatenate([[min(self.low, edges[0])], edges])
            right = np.concatenate([edges, [max(self.high, edges[-1])]])
            midpoints = (left + right) / 2
        else:
            midpoints = np.array([0.0 if np.isnan(self.low) else (self.low + self.high) / 2])
        if self.detail == "counts":
            return np.asarray(midpoints, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = self.sums / self.counts
        return np.asarray(np.where(self.counts > 0, means, midpoints), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "sums": self.sums.tolist(),
            "low": _json_float(self.low),
            "high": _json_float(self.high),
            "count": self.count,
            "missing": self.missing,
            "nonfinite": self.nonfinite,
            "out_of_range": self.out_of_range,
            "total": self.total,
            "total_sq": self.total_sq,
            "shift": self.shift,
            "minimum": _json_float(self.minimum),
            "maximum": _json_float(self.maximum),
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericSketch:
        return cls(
            np.asarray(data["edges"], dtype=np.float64),
            np.asarray(data["counts"], dtype=np.int64),
            np.asarray(data["sums"], dtype=np.float64),
            _from_json_float(data["low"]),
            _from_json_float(data["high"]),
            count=int(data["count"]),
            missing=int(data["missing"]),
            nonfinite=int(data["nonfinite"]),
            out_of_range=int(data["out_of_range"]),
            total=float(data["total"]),
            total_sq=float(data["total_sq"]),
            shift=float(data.get("shift", 0.0)),  # profiles stored before shifts: raw sums
            minimum=_from_json_float(data["minimum"], float("inf")),
            maximum=_from_json_float(data["maximum"], float("-inf")),
            detail=str(data.get("detail", "full")),
        )


@dataclass
class CategoricalSketch:
    """Counts of the reference's top categories, ``other`` for the rest, unseen values."""

    categories: tuple[str, ...]  # the reference's top categories, most frequent first
    counts: np.ndarray  # per category, then one for OTHER (int64)
    complete: bool  # the reference had no more categories than these: others are unseen
    missing: int = 0
    unseen: int = 0
    kind: str = field(default="categorical", init=False)

    @classmethod
    def fit(cls, values: Any, top: int = TOP_CATEGORIES) -> CategoricalSketch:
        tallies, _missing = _key_counts(values)
        ranked = sorted(tallies.items(), key=lambda item: (-item[1], item[0]))
        categories = tuple(str(name) for name, _ in ranked[:top])
        sketch = cls.empty(categories, complete=len(ranked) <= top)
        sketch.update(values)
        return sketch

    @classmethod
    def empty(cls, categories: tuple[str, ...], complete: bool) -> CategoricalSketch:
        return cls(categories, np.zeros(len(categories) + 1, dtype=np.int64), complete)

    def like(self) -> CategoricalSketch:
        return CategoricalSketch.empty(self.categories, self.complete)

    def update(self, values: Any) -> None:
        tallies, missing = _key_counts(values)
        self.missing += missing
        if not tallies:
            return
        position = {name: i for i, name in enumerate(self.categories)}
        for name, count in tallies.items():
            index = position.get(name)
            if index is None:
                self.counts[-1] += count
                if self.complete:
                    self.unseen += count
            else:
                self.counts[index] += count

    def merge(self, other: CategoricalSketch) -> None:
        self._add(other, 1)

    def remove(self, other: CategoricalSketch) -> None:
        """Undo ``merge(other)``."""
        self._add(other, -1)

    def _add(self, other: CategoricalSketch, sign: int) -> None:
        if other.categories != self.categories:
            raise ValueError("categorical sketches with different categories cannot merge")
        self.counts += sign * other.counts
        self.missing += sign * other.missing
        self.unseen += sign * other.unseen

    @property
    def rows(self) -> int:
        return int(self.counts.sum()) + self.missing

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
            "complete": self.complete,
            "missing": self.missing,
            "unseen": self.unseen,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoricalSketch:
        return cls(
            tuple(data["categories"]),
            np.asarray(data["counts"], dtype=np.int64),
            bool(data["complete"]),
            missing=int(data["missing"]),
            unseen=int(data["unseen"]),
        )


Sketch = NumericSketch | CategoricalSketch


def sketch_from_dict(data: dict[str, Any]) -> Sketch:
    if data["kind"] == "numeric":
        return NumericSketch.from_dict(data)
    return CategoricalSketch.from_dict(data)


def _as_float(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == object:
        array = np.array([np.nan if v is None else v for v in array.ravel()], dtype=np.float64)
    return np.asarray(array, dtype=np.float64).ravel()


_COMPARE_EDGES = 64  # fewer edges than this, and
_COMPARE_VALUES = 8192  # at least this many values: bin by comparisons, not binary search
_COMPARE_CHUNK = 32768  # values compared at a time (they stay in the CPU's cache)


def _bin_index(edges: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Each finite value's bin: how many edges lie below it, as ``np.searchsorted(edges,
    finite, side="left")`` gives. For many values and a few edges, one vectorised comparison
    per edge is about ten times faster than numpy's per-value binary search; for a few
    values the binary search is (each comparison pass costs a call)."""
    if len(edges) >= _COMPARE_EDGES or finite.size < _COMPARE_VALUES or not len(edges):
        return np.searchsorted(edges, finite, side="left")
    first, *rest = edges.tolist()  # floats: compared as float64, exactly
    index = np.empty(finite.size, dtype=np.uint8)
    above = np.empty(min(_COMPARE_CHUNK, finite.size), dtype=np.bool_)
    for start in range(0, finite.size, _COMPARE_CHUNK):
        values = finite[start : start + _COMPARE_CHUNK]
        bins = index[start : start + _COMPARE_CHUNK]
        scratch = above[: values.size]
        np.greater(values, first, out=bins.view(np.bool_))
        for edge in rest:
            np.greater(values, edge, out=scratch)
            np.add(bins, scratch.view(np.uint8), out=bins)
    return index


def _key_counts(values: Any) -> tuple[dict[str, int], int]:
    """How many values fall in each category (named as ``_category_keys`` names them), and
    how many were missing. Numbers are counted per distinct value first and only those are
    named: the strings of a whole column cost far more than its ``np.unique``."""
    array = np.asarray(values).ravel()
    if array.size and array.dtype.kind in "biuf":
        missing = 0
        if array.dtype.kind == "f":
            nan = np.isnan(array)
            missing = int(np.count_nonzero(nan))
            if missing:
                array = array[~nan]
        distinct, counts = np.unique(array, return_counts=True)
        names = _category_keys(distinct)[0]
    else:
        names, missing = _category_keys(array)
        if not names.size:
            return {}, missing
        names, counts = np.unique(names, return_counts=True)
    tallies: dict[str, int] = {}
    for name, count in zip(names.tolist(), counts.tolist(), strict=True):
        key = str(name)
        tallies[key] = tallies.get(key, 0) + int(count)  # e.g. 0.0 and -0.0 are both "0"
    return tallies, missing


def _category_keys(values: Any) -> tuple[np.ndarray, int]:
    """Values as strings (bytes decoded), and how many were missing (None, NaN, empty)."""
    array = np.asarray(values).ravel()
    if array.dtype.kind == "f":
        missing = np.isnan(array)
        kept = array[~missing]
        with np.errstate(invalid="ignore"):  # inf, or past int64: compares unequal below
            as_int = kept.astype(np.int64)
        text = np.where(kept == as_int, as_int.astype(str), kept.astype(str))
        return np.asarray(text, dtype=str), int(missing.sum())
    if array.dtype.kind in "biu":
        return array.astype(str), 0
    keys = []
    missing = 0
    for value in array.tolist():
        if value is None or (isinstance(value, float) and np.isnan(value)) or value in ("", b""):
            missing += 1
        elif isinstance(value, float) and value.is_integer():  # 1.0 is the category "1"
            keys.append(str(int(value)))
        else:
            keys.append(
                value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            )
    return np.asarray(keys, dtype=str), missing


def _same_bins(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or not np.array_equal(a, b):
        raise ValueError("numeric sketches with different bins cannot merge")


def _json_float(value: float) -> float | str:
    return value if np.isfinite(value) else str(value)


def _from_json_float(value: Any, default: float = float("nan")) -> float:
    if value is None:
        return default
    return float(value)
