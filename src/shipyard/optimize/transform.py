"""Turning a recipe into a graph: ONNX Runtime's optimizers and quantizers, on files."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import ConversionError
from shipyard.optimize.recipes import Recipe
from shipyard.optimize.smoothing import smooth_matmuls

CALIBRATION_BATCH = 16
CALIBRATION_ROWS = 256


def apply(
    recipe: Recipe, model: bytes, calibration: dict[str, np.ndarray] | None
) -> tuple[bytes, dict[str, Any]]:
    """The transformed graph and what the transformation reported (fusion counts...)."""
    logging.getLogger("root").setLevel(logging.ERROR)  # the quantizer's advice goes to root
    with tempfile.TemporaryDirectory(prefix="shipyard-optimize-") as tmp:
        source = Path(tmp) / "parent.onnx"
        target = Path(tmp) / "candidate.onnx"
        facts: dict[str, Any] = {}
        try:
            source.write_bytes(prepared(recipe, model, calibration))
            if recipe.kind == "graph":
                facts = _optimize_graph(source, target, recipe.transformer_fusion)
            elif recipe.kind == "dynamic-int8":
                _quantize_dynamic(source, target, recipe)
            elif recipe.kind == "static-int8":
                if calibration is None:
                    raise ConversionError("static quantization needs calibration data")
                _quantize_static(source, target, recipe, calibration)
            else:
                raise ConversionError(f"no transformation for recipe kind {recipe.kind!r}")
        except ConversionError:
            raise
        except Exception as exc:
            raise ConversionError(f"{recipe.name} failed: {str(exc).splitlines()[0]}") from None
        return target.read_bytes(), facts


def prepared(recipe: Recipe, model: bytes, calibration: dict[str, np.ndarray] | None) -> bytes:
    """The float graph the recipe quantizes: the parent's, smoothed if the recipe says so."""
    if not recipe.smoothing:
        return model
    if calibration is None:
        raise ConversionError("activation smoothing needs calibration data")
    return smooth_matmuls(model, calibration, recipe.smoothing)


def _optimize_graph(source: Path, target: Path, transformer_fusion: bool) -> dict[str, Any]:
    if transformer_fusion:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(
            str(source), model_type="bert", num_heads=0, hidden_size=0, opt_level=0
        )
        optimized.save_model_to_file(str(target))
        counts = optimized.get_fused_operator_statistics()
        return {"fusions": {op: int(n) for op, n in counts.items() if n}}
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return {"level": "extended"}


def _quantize_dynamic(source: Path, target: Path, recipe: Recipe) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        per_channel=recipe.per_channel,
        reduce_range=recipe.reduce_range,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(recipe.excluded_nodes),
    )


class _Calibration:
    """ONNX Runtime's CalibrationDataReader over rows of reference data."""

    def __init__(self, feeds: dict[str, np.ndarray]) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = iter(_batches(feeds))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _batches(feeds: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    rows = min(len(next(iter(feeds.values()))), CALIBRATION_ROWS)
    for start in range(0, rows, CALIBRATION_BATCH):
        yield {name: array[start : start + CALIBRATION_BATCH] for name, array in feeds.items()}


def _quantize_static(
    source: Path, target: Path, recipe: Recipe, calibration: dict[str, np.ndarray]
) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(
        str(source),
        str(target),
        _Calibration(calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=recipe.per_channel,
        reduce_range=recipe.reduce_range,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(recipe.excluded_nodes),
    )


def operator_types(model: bytes) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load_from_string(model).graph.node}
