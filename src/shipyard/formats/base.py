"""What every converter hands back: the ONNX model staged on disk, and how close it came."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import ParityError
from shipyard.registry.domain import ModelKind, Signature

DEFAULT_TOLERANCE = 1e-4

# Samples to check parity on: rows of a single-input tensor model, or strings for text models.
Samples = np.ndarray | list[str]


@dataclass
class Parity:
    """How closely the ONNX model reproduces its source, and whether that was good enough."""

    metric: str  # e.g. "max_abs_diff", "min_cosine"
    value: float
    tolerance: float
    passed: bool
    rows: int
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "rows": self.rows,
            **self.extra,
        }

    def enforce(self, source: str, allow_failure: bool) -> None:
        if self.passed or allow_failure:
            return
        raise ParityError(
            f"the ONNX conversion of {source} does not match the source model: {self.metric} = "
            f"{self.value:.3g} on {self.rows} row(s), tolerance {self.tolerance:g}. Nothing was "
            "registered; raise the tolerance or allow the parity failure if this is acceptable"
        )


@dataclass
class Converted:
    """A model converted to ONNX, staged on disk, with what was learned on the way."""

    flavor: str
    kind: ModelKind
    files: dict[str, Path]  # logical name -> staged file ("model.onnx", ...)
    signature: Signature
    parity: Parity | None
    feature_names: list[str] | None = None
    details: dict[str, Any] = field(default_factory=dict)
