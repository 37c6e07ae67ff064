"""Which nodes hurt most when quantized: each weight-bearing MatMul, quantized alone.

For each MatMul with constant weights, a copy of the float graph quantizes just that node
the way the dynamic quantizer would: its activation through DynamicQuantizeLinear (uint8,
per tensor, from its range) and its weights to int8 (per tensor or per output channel). The
copy runs on the sample and its outputs are compared with the float graph's, row by row:
the node's error is one minus the worst row's cosine. That is the error the node adds to
the model's answers, so the first nodes of the ranking are the ones to keep in float. When a
graph has more MatMuls than MAX_END_TO_END, a cheap local estimate (the node's own output
error) picks which ones get the end-to-end measurement.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_END_TO_END = 48  # MatMuls measured end to end; the rest keep their local estimate


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
    first_output = graph.graph.output[0].name
    values = session.run([first_output, *wanted], feeds)
    reference = values[0]
    activations = dict(zip(wanted, values[1:], strict=True))
    local = []
    for node in nodes:
        activation = np.asarray(activations[node.input[0]], dtype=np.float32)
        weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
        local.append((node.name, _relative_error(activation, weight, per_channel, reduce_range)))
    local.sort(key=lambda item: item[1], reverse=True)
    chosen = {name for name, _ in local[:MAX_END_TO_END]}
    ranking = [
        (name, _end_to_end_error(model, name, feeds, reference, per_channel, reduce_range))
        for name, _ in local
        if name in chosen
    ]
    ranking.sort(key=lambda item: item[1], reverse=True)
    return ranking + [item for item in local if item[0] not in chosen]


def _end_to_end_error(
    model: bytes,
    node_name: str,
    feeds: dict[str, np.ndarray],
    reference: np.ndarray,
    per_channel: bool,
    reduce_range: bool,
) -> float:
    """1 - the worst row's cosine: the float graph against one with only this node quantized."""
    import onnx
    from onnx import helper, numpy_helper

    from shipyard.runtime.session import make_session

    graph = onnx.load_from_string(model)
    node = next(n for n in graph.graph.node if n.name == node_name)
    weights = {init.name: init for init in graph.graph.initializer}
    weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
    fake = numpy_helper.from_array(
        _fake_quant_weight(weight, per_channel, reduce_range).astype(np.float32),
        name=f"{node.input[1]}__int8_simulated",
    )
    graph.graph.initializer.append(fake)
    activation = node.input[0]
    q, scale, zero = (f"{node_name}__q", f"{node_name}__scale", f"{node_name}__zero")
    dequantized = f"{node_name}__dq"
    position = list(graph.graph.node).index(node)
    graph.graph.node.insert(
        position, helper.make_node("DynamicQuantizeLinear", [activation], [q, scale, zero])
    )
    graph.graph.node.insert(
        position + 1, helper.make_node("DequantizeLinear", [q, scale, zero], [dequantized])
    )
    node.input[0] = dequantized
    node.input[1] = fake.name
    outputs = make_session(graph.SerializeToString()).run(None, feeds)
    return _worst_row_error(reference, outputs[0])


def _worst_row_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    a = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    b = np.asarray(candidate, dtype=np.float64).reshape(len(candidate), -1)
    norms = np.clip(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12, None)
    return float(1.0 - ((a * b).sum(axis=1) / norms).min())


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
