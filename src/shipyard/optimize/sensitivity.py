"""Which nodes hurt most when quantized: each weight-bearing MatMul, simulated alone.

One float run records every MatMul's activation; then, per node, the activation is
quantized as the dynamic quantizer would (uint8, per tensor, from its range) and the
weights as int8 (per tensor or per output channel), and the node's output is compared with
the float one. Nodes are ranked by that relative error: the first ones are kept in float.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def rank_matmuls(
    model: bytes, feeds: dict[str, np.ndarray], *, per_channel: bool, reduce_range: bool
) -> list[tuple[str, float]]:
    import onnx
    from onnx import numpy_helper

    from shipyard.runtime.session import make_session

    graph = onnx.load_from_string(model)
    weights = {init.name: init for init in graph.graph.initializer}
    nodes = [
        node
        for node in graph.graph.node
        if node.op_type == "MatMul"
        and len(node.input) == 2
        and node.input[1] in weights
        and node.name
    ]
    if not nodes:
        return []
    existing = {output.name for output in graph.graph.output}
    for name in {node.input[0] for node in nodes} - existing:
        graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = make_session(graph.SerializeToString())
    wanted = [node.input[0] for node in nodes]
    activations = dict(zip(wanted, session.run(wanted, feeds), strict=True))
    ranking = []
    for node in nodes:
        activation = np.asarray(activations[node.input[0]], dtype=np.float32)
        weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
        ranking.append((node.name, _relative_error(activation, weight, per_channel, reduce_range)))
    ranking.sort(key=lambda item: item[1], reverse=True)
    return ranking


def _relative_error(a: np.ndarray, w: np.ndarray, per_channel: bool, reduce_range: bool) -> float:
    reference = a @ w
    simulated = _fake_quant_activation(a) @ _fake_quant_weight(w, per_channel, reduce_range)
    scale = float(np.linalg.norm(reference)) or 1.0
    return float(np.linalg.norm(simulated - reference)) / scale


def _fake_quant_activation(a: np.ndarray) -> Any:
    low, high = min(float(a.min()), 0.0), max(float(a.max()), 0.0)
    scale = (high - low) / 255.0 or 1.0
    zero = np.round(-low / scale)
    return (np.clip(np.round(a / scale) + zero, 0, 255) - zero) * scale


def _fake_quant_weight(w: np.ndarray, per_channel: bool, reduce_range: bool) -> Any:
    limit = 63.0 if reduce_range else 127.0
    peak = np.abs(w).max(axis=0, keepdims=True) if per_channel else np.abs(w).max()
    scale = np.where(peak == 0, 1.0, peak / limit)
    return np.clip(np.round(w / scale), -limit, limit) * scale
