"""Activation smoothing before int8: move outliers from activations into the weights.

Dynamic quantization gives each activation tensor one uint8 range, so a few channels with
large values (common after GELU and in transformer hidden states) leave the rest of the
channels a handful of levels. Weights are quantized per output channel and have room to
spare. For ``y = x @ W`` the product is unchanged by ``y = (x / s) @ (diag(s) W)``; choosing
``s_j = max|x_j|^a / max|W_j|^(1-a)`` for each input channel ``j`` evens the activation's
channels at a small cost to the weights' (the SmoothQuant rule; ``a`` is the strength).
The activation maxima come from running the float graph on calibration rows. MatMuls that
read the same activation (a layer's query, key and value projections) share one scale and
one ``Mul``, so the quantizer still quantizes that activation once.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

SMOOTHING_FLOOR = 1e-5  # keeps an all-zero channel from producing a zero or infinite scale
CHUNK_ROWS = 16


def smooth_matmuls(model: bytes, feeds: dict[str, np.ndarray], strength: float) -> bytes:
    """The graph with every constant-weight MatMul's activation smoothed at ``strength``."""
    import onnx
    from onnx import helper, numpy_helper

    graph = onnx.load_from_string(model)
    weights = {init.name: init for init in graph.graph.initializer}
    readers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.graph.node:
        if node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in weights:
            weight = weights[node.input[1]]
            if len(weight.dims) == 2:
                readers[node.input[0]].append(node)
    # one weight shared by two MatMuls would be scaled twice; leave such nodes alone
    uses: dict[str, int] = defaultdict(int)
    for nodes in readers.values():
        for node in nodes:
            uses[node.input[1]] += 1
    readers = {
        activation: nodes
        for activation, nodes in readers.items()
        if all(uses[node.input[1]] == 1 for node in nodes)
    }
    if not readers:
        return model
    maxima = _activation_maxima(graph, list(readers), feeds)
    for index, (activation, nodes) in enumerate(readers.items()):
        arrays = [
            numpy_helper.to_array(weights[node.input[1]]).astype(np.float32) for node in nodes
        ]
        weight_max = np.max([np.abs(w).max(axis=1) for w in arrays], axis=0)
        scale = np.power(np.maximum(maxima[activation], SMOOTHING_FLOOR), strength) / np.power(
            np.maximum(weight_max, SMOOTHING_FLOOR), 1.0 - strength
        )
        scale = scale.astype(np.float32)
        for node, array in zip(nodes, arrays, strict=True):
            scaled = numpy_helper.from_array(array * scale[:, None], node.input[1])
            weights[node.input[1]].CopyFrom(scaled)
        inverse = numpy_helper.from_array(1.0 / scale, f"{activation}__smoothing_{index}")
        graph.graph.initializer.append(inverse)
        smoothed = f"{activation}__smoothed_{index}"
        position = min(list(graph.graph.node).index(node) for node in nodes)
        graph.graph.node.insert(
            position,
            helper.make_node(
                "Mul", [activation, inverse.name], [smoothed], name=f"smoothing_{index}"
            ),
        )
        for node in nodes:
            node.input[0] = smoothed
    return bytes(graph.SerializeToString())


def _activation_maxima(
    graph: Any, activations: list[str], feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """max |x_j| per input channel of each activation, over the calibration rows."""
    import onnx

    from shipyard.runtime.session import make_session

    computed = [name for name in activations if name not in feeds]  # graph inputs are known
    probe = onnx.ModelProto()
    probe.CopyFrom(graph)
    existing = {output.name for output in probe.graph.output}
    for name in computed:
        if name not in existing:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = make_session(probe.SerializeToString())
    maxima: dict[str, np.ndarray] = {}
    rows = len(next(iter(feeds.values())))
    for start in range(0, rows, CHUNK_ROWS):  # every activation of every layer is held at once
        chunk = {name: array[start : start + CHUNK_ROWS] for name, array in feeds.items()}
        values = dict(zip(computed, session.run(computed, chunk), strict=True))
        values.update({name: chunk[name] for name in activations if name in chunk})
        for name, value in values.items():
            flat = np.abs(np.asarray(value, dtype=np.float32).reshape(-1, value.shape[-1]))
            peak = flat.max(axis=0)
            maxima[name] = np.maximum(maxima[name], peak) if name in maxima else peak
    return maxima
