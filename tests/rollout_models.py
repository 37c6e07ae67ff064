"""Small ONNX classifiers for the rollout tests, each a candidate of a known kind.

All take "x" FP32 [batch, 3] and answer "label" INT64 [batch] (the argmax) and "scores"
FP32 [batch, 4] = x @ W + b:

- ``good``: the baseline's weights (an identical model, as a retrained one that changed nothing);
- ``different``: the classes permuted, so it disagrees with the baseline on most requests;
- ``constant``: always class 2 (a broken model that answers one class);
- ``failing``: the baseline, but it fails every request whose first feature is 10 or more
  (a lookup out of bounds), as a model that errors on some inputs;
- ``slow``: the baseline plus some 200 large matrix products per row, so every request
  takes far longer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

W = np.array(
    [[1.0, -1.0, 0.5, 0.0], [0.0, 1.0, -1.0, 0.5], [-0.5, 0.0, 1.0, -1.0]], dtype=np.float32
)
B = np.zeros(4, dtype=np.float32)
HIDDEN = 1024
SLOW_LAYERS = 200


def classifier_bytes(kind: str) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights, bias = W, B
    if kind == "different":
        weights = W[:, [1, 2, 3, 0]]
    elif kind == "constant":
        weights, bias = np.zeros_like(W), np.array([0, 0, 1, 0], dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["s0"]),
    ]
    initializers = [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")]
    scores = "s0"
    if kind == "failing":
        initializers += [
            numpy_helper.from_array(np.array(0, dtype=np.int64), "first"),
            numpy_helper.from_array(np.zeros((10, 4), dtype=np.float32), "table"),
        ]
        nodes += [
            helper.make_node("Gather", ["x", "first"], ["x0"], axis=1),
            helper.make_node("Cast", ["x0"], ["index"], to=TensorProto.INT64),
            helper.make_node("Gather", ["table", "index"], ["looked_up"], axis=0),
            helper.make_node("Add", ["s0", "looked_up"], ["s1"]),
        ]
        scores = "s1"
    elif kind == "slow":
        rng = np.random.default_rng(0)
        up = rng.normal(size=(3, HIDDEN)).astype(np.float32)
        square = (rng.normal(size=(HIDDEN, HIDDEN)) / np.sqrt(HIDDEN)).astype(np.float32)
        initializers += [
            numpy_helper.from_array(up, "up"),
            numpy_helper.from_array(square, "square"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ]
        nodes.append(helper.make_node("MatMul", ["x", "up"], ["h0"]))
        for layer in range(SLOW_LAYERS):
            nodes.append(helper.make_node("MatMul", [f"h{layer}", "square"], [f"m{layer}"]))
            nodes.append(helper.make_node("Tanh", [f"m{layer}"], [f"h{layer + 1}"]))
        nodes += [
            helper.make_node("ReduceMean", [f"h{SLOW_LAYERS}"], ["mean"], keepdims=1),
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["s0", "nothing"], ["s1"]),
        ]
        scores = "s1"
    nodes += [
        helper.make_node("Identity", [scores], ["scores"]),
        helper.make_node("ArgMax", [scores], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        f"classifier-{kind}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 4]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def register_classifier(registry: Any, folder: Path, kind: str, **options: Any) -> Any:
    """Register the ``kind`` classifier as the next version of "clf"."""
    import shipyard

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"clf-{kind}.onnx"
    path.write_bytes(classifier_bytes(kind))
    return shipyard.register(path, options.pop("name", "clf"), registry=registry, **options)


def expected_labels(x: np.ndarray) -> np.ndarray:
    return np.asarray((np.asarray(x, np.float32) @ W + B).argmax(axis=1))


def body(rows: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "x",
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ]
    }
