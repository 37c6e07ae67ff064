"""Recipes: how one candidate is made from its parent's ONNX graph."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from shipyard.optimize.cpu import CpuFeatures


@dataclass(frozen=True)
class Recipe:
    """One way to transform a graph. ``kind`` is graph | dynamic-int8 | static-int8 | fp16."""

    kind: str
    per_channel: bool = False
    reduce_range: bool = False
    transformer_fusion: bool = False
    smoothing: float = 0.0  # activation smoothing strength before quantizing; 0: none
    excluded_nodes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        parts = [self.kind]
        if self.transformer_fusion:
            parts.append("fused")
        if self.kind.endswith("int8"):
            parts.append("per-channel" if self.per_channel else "per-tensor")
            if self.reduce_range:
                parts.append("reduce-range")
            if self.smoothing:
                parts.append(f"smoothed {self.smoothing:g}")
        if self.excluded_nodes:
            parts.append(f"{len(self.excluded_nodes)} nodes in float")
        return " ".join(parts)

    @property
    def quantized(self) -> bool:
        return self.kind.endswith("int8")

    def with_changes(self, **changes: Any) -> Recipe:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "per_channel": self.per_channel,
            "reduce_range": self.reduce_range,
            "transformer_fusion": self.transformer_fusion,
            "smoothing": self.smoothing,
            "excluded_nodes": list(self.excluded_nodes),
        }


def candidates(op_types: set[str], text_model: bool, cpu: CpuFeatures) -> list[Recipe]:
    """The recipes worth trying for a graph with these operators on this CPU (fp16 is not one:
    it pays only on a GPU provider)."""
    reduce_range = not cpu.vnni
    recipes = [Recipe("graph", transformer_fusion=text_model)]
    has_matmul = bool(op_types & {"MatMul", "Gemm"})
    has_conv = "Conv" in op_types
    if has_matmul and not has_conv:
        # transformers and MLPs: weights quantized ahead, activations per batch
        recipes.append(Recipe("dynamic-int8", per_channel=False, reduce_range=reduce_range))
        recipes.append(Recipe("dynamic-int8", per_channel=True, reduce_range=reduce_range))
    if has_conv:
        # CNNs: activations calibrated once on reference data
        recipes.append(Recipe("static-int8", per_channel=True, reduce_range=reduce_range))
    return recipes


# Smoothing strengths tried, mildest first: 0.5 is the usual balance; 0.75 moves more of the
# activations' outliers into the weights, which per-channel weights absorb well.
SMOOTHING_STRENGTHS = (0.5, 0.75)


def fallbacks(recipe: Recipe) -> list[Recipe]:
    """What to try when a quantized recipe fails the accuracy gate, before smoothing."""
    if not recipe.quantized:
        return []
    return [
        recipe.with_changes(per_channel=not recipe.per_channel),
        recipe.with_changes(reduce_range=not recipe.reduce_range),
    ]


def smoothed(recipe: Recipe) -> list[Recipe]:
    """The recipe with its activations smoothed, at each strength (dynamic int8 only: static
    quantization calibrates each activation's range already)."""
    if recipe.kind != "dynamic-int8" or recipe.smoothing:
        return []
    return [recipe.with_changes(smoothing=strength) for strength in SMOOTHING_STRENGTHS]
