"""What every converter hands back, and how a source is recognised."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import ParityError, UnknownFlavorError
from shipyard.registry.domain import ModelKind, Signature

FLAVORS = ("onnx", "sklearn", "pytorch", "huggingface", "pickle")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
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


def detect_flavor(source: object) -> str:
    """The flavor of a path or an in-memory model object."""
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            if (path / "config.json").is_file():
                return "huggingface"
            raise UnknownFlavorError(
                f"{path} is a folder without config.json; Shipyard reads Hugging Face model "
                "folders (config.json, safetensors weights, tokenizer.json)"
            )
        if path.suffix == ".onnx":
            return "onnx"
        if path.suffix in PICKLE_SUFFIXES:
            return "pickle"
        raise UnknownFlavorError(
            f"cannot tell the flavor of {path}: expected an .onnx file, a pickled scikit-learn "
            f"model ({', '.join(PICKLE_SUFFIXES)}) or a Hugging Face model folder; pass flavor= "
            f"one of {', '.join(FLAVORS)}"
        )
    module = type(source).__module__.split(".")[0]
    if module == "sklearn" or (hasattr(source, "fit") and hasattr(source, "get_params")):
        return "sklearn"
    if module == "torch" or _is_torch_module(source):
        return "pytorch"
    raise UnknownFlavorError(
        f"cannot register an object of type {type(source).__module__}.{type(source).__name__}: "
        f"expected a scikit-learn estimator, a torch.nn.Module or a path; known flavors are "
        f"{', '.join(FLAVORS)}"
    )


def _is_torch_module(obj: object) -> bool:
    return any(
        cls.__module__.startswith("torch.nn") and cls.__name__ == "Module"
        for cls in type(obj).__mro__
    )


def check_flavor(flavor: str) -> str:
    if flavor not in FLAVORS:
        raise UnknownFlavorError(
            f"unknown flavor {flavor!r}; known flavors are {', '.join(FLAVORS)}"
        )
    return flavor
