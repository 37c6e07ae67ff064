"""Profiles: one sketch per monitored column of a version's inputs and outputs.

The reference profile is built from the version's reference data and the model's own
outputs on it; a live window is an empty copy of it filled with served traffic, so the two
always have the same columns and bins. Profiles merge by addition (several replicas, or
several flush intervals, make one window).

Columns are named by what is known: the reference CSV's header, a DataFrame's columns or
scikit-learn's ``feature_names_in_``; otherwise ``<input>[<i>]`` for the columns of a 2-D
tensor. A text input is watched through its length in characters; an image-like tensor
(rank > 2) through each row's mean and standard deviation; an embedding through its norm
and a few fixed projections; a score matrix through each score (up to TOP_CATEGORIES of
them) and its argmax. Integer columns with few distinct reference values are categorical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.monitor.sketch import (
    TOP_CATEGORIES,
    CategoricalSketch,
    NumericSketch,
    Sketch,
    sketch_from_dict,
)
from shipyard.registry.domain import ModelKind, Signature

PROJECTIONS = 4  # fixed random directions an embedding is watched along
PROJECTION_SEED = 20260101
ROW_CHUNK = 65536  # rows of a large batch profiled at a time (20 FP32 columns: 5 MB)


@dataclass(frozen=True)
class Column:
    """How one monitored column is read from a batch's inputs or outputs."""

    name: str
    role: str  # input | output
    tensor: str  # the input or output tensor it comes from
    read: str  # value | length | row-mean | row-std | norm | projection | argmax
    index: int | None = None  # which column of a 2-D tensor (or which projection)
    categorical: bool = False

    def values(self, array: Any) -> np.ndarray:
        """This column's value for each row of ``array``."""
        if self.read == "length":
            return np.array([len(_text(v)) for v in np.asarray(array, dtype=object).ravel()])
        data = np.asarray(array)
        if self.read == "value":
            if data.ndim >= 2 and self.index is not None:
                return np.asarray(data[:, self.index])
            return np.asarray(data.reshape(len(data), -1)[:, 0] if data.ndim >= 2 else data)
        rows = np.asarray(data, dtype=np.float64).reshape(len(data), -1)
        if self.read == "row-mean":
            return np.asarray(rows.mean(axis=1)) if rows.shape[1] else np.zeros(len(rows))
        if self.read == "row-std":
            return np.asarray(rows.std(axis=1)) if rows.shape[1] else np.zeros(len(rows))
        if self.read == "norm":
            return np.asarray(np.linalg.norm(rows, axis=1))
        if self.read == "projection":
            assert self.index is not None
            return np.asarray(rows @ _projection(rows.shape[1], self.index))
        if self.read == "argmax":
            return np.asarray(rows.argmax(axis=1))
        raise ValueError(f"unknown column reader {self.read!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "tensor": self.tensor,
            "read": self.read,
            "index": self.index,
            "categorical": self.categorical,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Column:
        return cls(
            data["name"],
            data["role"],
            data["tensor"],
            data["read"],
            data.get("index"),
            bool(data.get("categorical", False)),
        )


@dataclass
class Profile:
    """Sketches of a version's monitored columns over some rows (the reference, a window)."""

    columns: list[Column]
    sketches: dict[str, Sketch]
    rows: int = 0

    @classmethod
    def build(
        cls,
        signature: Signature,
        kind: ModelKind,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        feature_names: list[str] | None = None,
    ) -> Profile:
        """The reference profile: columns chosen from the data, bins fitted to it."""
        columns = layout(signature, kind, inputs, outputs, feature_names)
        sketches: dict[str, Sketch] = {}
        for column in columns:
            source = inputs if column.role == "input" else outputs
            values = column.values(source[column.tensor])
            sketches[column.name] = (
                CategoricalSketch.fit(values) if column.categorical else NumericSketch.fit(values)
            )
        rows = len(next(iter(inputs.values()))) if inputs else 0
        return cls(columns, sketches, rows)

    def like(self, counts_only: frozenset[str] = frozenset()) -> Profile:
        """An empty window with this profile's columns and bins; the columns named in
        ``counts_only`` (redacted fields), and those that keep counts only here, keep bin
        counts and nothing else."""
        sketches: dict[str, Sketch] = {}
        for name, sketch in self.sketches.items():
            if isinstance(sketch, NumericSketch):
                counts = name in counts_only or sketch.detail == "counts"
                sketches[name] = sketch.like("counts" if counts else "window")
            else:
                sketches[name] = sketch.like()
        return Profile(list(self.columns), sketches, 0)

    def update(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        """Add a batch of served rows; a tensor missing from the batch leaves its columns be.
        A large batch goes ROW_CHUNK rows at a time: a column of a 2-D tensor is strided,
        and reading every column of a million rows would read the whole tensor from memory
        once per column, where a chunk's columns are read from the CPU's cache."""
        total = max(
            (len(v) for v in (*inputs.values(), *outputs.values()) if _has_rows(v)), default=0
        )
        if total <= ROW_CHUNK:
            self._update(inputs, outputs)
            return
        for start in range(0, total, ROW_CHUNK):
            self._update(_rows(inputs, total, start), _rows(outputs, total, start))

    def _update(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        rows = 0
        for column in self.columns:
            source = inputs if column.role == "input" else outputs
            if column.tensor not in source:
                continue
            values = column.values(source[column.tensor])
            rows = max(rows, len(values))
            self.sketches[column.name].update(values)
        self.rows += rows

    def merge(self, other: Profile) -> None:
        self._check_columns(other)
        for name, sketch in self.sketches.items():
            sketch.merge(other.sketches[name])  # type: ignore[arg-type]
        self.rows += other.rows

    def remove(self, other: Profile) -> None:
        """Undo ``merge(other)`` (a window leaving a sliding period)."""
        self._check_columns(other)
        for name, sketch in self.sketches.items():
            sketch.remove(other.sketches[name])  # type: ignore[arg-type]
        self.rows -= other.rows

    def same_columns(self, other: Profile) -> bool:
        """Whether ``other`` was built against a profile with these columns (a window
        written before a version was profiled again has others)."""
        return [c.name for c in other.columns] == [c.name for c in self.columns]

    def _check_columns(self, other: Profile) -> None:
        if not self.same_columns(other):
            raise ValueError("profiles with different columns cannot merge")

    def columns_of(self, role: str) -> list[Column]:
        return [c for c in self.columns if c.role == role]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "columns": [c.to_dict() for c in self.columns],
            "sketches": {name: s.to_dict() for name, s in self.sketches.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls(
            [Column.from_dict(c) for c in data["columns"]],
            {name: sketch_from_dict(s) for name, s in data["sketches"].items()},
            int(data["rows"]),
        )


def layout(
    signature: Signature,
    kind: ModelKind,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    feature_names: list[str] | None,
) -> list[Column]:
    """The monitored columns of a model, decided from its signature and reference data."""
    columns: list[Column] = []
    for spec in signature.inputs:
        if spec.name not in inputs:
            continue
        if kind is ModelKind.TEXT_EMBEDDING and spec.datatype == "BYTES":
            columns.append(Column(f"{spec.name}.length", "input", spec.name, "length"))
        else:
            tensor = _tensor_columns(spec.name, "input", inputs[spec.name], feature_names)
            if feature_names is not None and [c.name for c in tensor] == feature_names:
                feature_names = None  # one tensor takes the names; another as wide keeps its own
            columns.extend(tensor)
    for spec in signature.outputs:
        if spec.name not in outputs:
            continue
        if kind is ModelKind.TEXT_EMBEDDING:
            columns.append(Column(f"{spec.name}.norm", "output", spec.name, "norm"))
            columns.extend(
                Column(f"{spec.name}.projection[{i}]", "output", spec.name, "projection", i)
                for i in range(PROJECTIONS)
            )
        else:
            columns.extend(_tensor_columns(spec.name, "output", outputs[spec.name], None))
    return columns


def _tensor_columns(
    name: str, role: str, value: Any, feature_names: list[str] | None
) -> list[Column]:
    array = np.asarray(value)
    if array.ndim > 2:
        return [
            Column(f"{name}.mean", role, name, "row-mean"),
            Column(f"{name}.std", role, name, "row-std"),
        ]
    if array.ndim <= 1 or array.shape[1] == 1:
        return [Column(name, role, name, "value", None, _categorical(array.ravel()))]
    width = array.shape[1]
    if role == "output" and width > TOP_CATEGORIES:
        return [Column(f"{name}.argmax", role, name, "argmax", None, True)]
    names = (
        feature_names
        if feature_names is not None and len(feature_names) == width
        else [f"{name}[{i}]" for i in range(width)]
    )
    columns = [
        Column(names[i], role, name, "value", i, _categorical(array[:, i])) for i in range(width)
    ]
    if role == "output" and array.dtype.kind == "f":
        columns.append(Column(f"{name}.argmax", role, name, "argmax", None, True))
    return columns


def _categorical(values: np.ndarray) -> bool:
    """Strings and booleans are categories; so are integers with few distinct values."""
    if values.dtype.kind in "USOb":
        return True
    if values.dtype.kind in "iu":
        return len(np.unique(values)) <= TOP_CATEGORIES
    return False


def _projection(dimension: int, index: int) -> np.ndarray:
    """The index-th fixed unit direction in ``dimension`` dimensions (same for every run)."""
    rng = np.random.default_rng(PROJECTION_SEED + index)
    direction = rng.standard_normal(dimension)
    return np.asarray(direction / np.linalg.norm(direction))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _has_rows(value: Any) -> bool:
    return getattr(value, "ndim", 1) > 0


def _rows(tensors: Mapping[str, Any], total: int, start: int) -> dict[str, Any]:
    """ROW_CHUNK rows from ``start`` of each tensor with a row per batch row (the others
    whole)."""
    return {
        name: value[start : start + ROW_CHUNK]
        if _has_rows(value) and len(value) == total
        else value
        for name, value in tensors.items()
    }
