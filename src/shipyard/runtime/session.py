"""ONNX Runtime sessions, built one way everywhere, and the dtype vocabulary they speak."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.registry.domain import Signature, TensorSpec

# ONNX Runtime's type strings -> V2 datatype names and numpy dtypes.
ORT_TO_V2 = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
V2_TO_NUMPY: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


@dataclass(frozen=True)
class Threading:
    """ONNX Runtime thread counts; 0 leaves the choice to the runtime."""

    intra_op: int = 0
    inter_op: int = 1
    allow_spinning: bool | None = None  # None keeps ONNX Runtime's default (spinning on)


def make_session(model: bytes | str, threading: Threading = Threading()) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threading.intra_op
    options.inter_op_num_threads = threading.inter_op
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threading.allow_spinning is not None:
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if threading.allow_spinning else "0"
        )
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def _spec(node: Any) -> TensorSpec:
    datatype = ORT_TO_V2.get(node.type)
    if datatype is None:
        raise ValueError(f"tensor {node.name!r} has type {node.type}, which Shipyard cannot serve")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or []))
    return TensorSpec(node.name, datatype, shape)


def session_signature(session: Any) -> Signature:
    """The graph's inputs and outputs: names, V2 datatypes, shapes with -1 for dynamic dims."""
    return Signature(
        tuple(_spec(i) for i in session.get_inputs()),
        tuple(_spec(o) for o in session.get_outputs()),
    )
