"""PyTorch ``nn.Module``s, exported with a dynamic batch axis.

``export_module`` is shared with the Keras flavor: on the torch backend a Keras model is an
``nn.Module`` too, and only the parity reference (``model.predict``) differs.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import ConversionError, InvalidInputError, MissingDependencyError
from shipyard.formats.base import Converted, Samples
from shipyard.formats.parity import numeric_parity
from shipyard.registry.domain import ModelKind, Signature
from shipyard.runtime.predictor import MODEL_FILE, Predictor
from shipyard.runtime.session import make_session, session_signature

OPSET = 17
INPUT_NAME = "input"
MAX_PARITY_ROWS = 256


@dataclass(frozen=True)
class Exported:
    """A module exported to ``model.onnx`` in the staging folder, ready to run."""

    target: Path
    signature: Signature
    predictor: Predictor
    output_names: list[str]
    example: Any  # the example input as the torch tensor it was traced with
    converter: str  # e.g. "torch.onnx 2.13.0"


def export_module(
    module: Any, staging: Path, example_input: Any, kind: str = "PyTorch"
) -> Exported:
    """``module`` traced on ``example_input`` and exported: input ``input``, outputs
    ``output`` (or ``output_0``, ``output_1``, ...), the batch axis dynamic on all of them."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError.for_extra("torch", "torch") from None
    if example_input is None:
        raise InvalidInputError(
            f"a {kind} model needs an example input (a tensor or array with a batch axis) to export"
        )
    try:
        example = torch.as_tensor(np.asarray(example_input))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"the example input is not a numeric array: {exc}") from None
    if example.dtype == torch.float64:
        example = example.float()
    if example.ndim == 0:
        raise InvalidInputError("the example input must have a batch axis (shape [batch, ...])")
    module.eval()
    with torch.no_grad():
        try:
            probe = module(example)
        except Exception as exc:
            raise InvalidInputError(f"the model cannot run its example input: {exc}") from None
    outputs = probe if isinstance(probe, tuple | list) else (probe,)
    output_names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    dynamic = {name: {0: "batch"} for name in [INPUT_NAME, *output_names]}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                buffer,  # type: ignore[arg-type]  # a file object works too
                input_names=[INPUT_NAME],
                output_names=output_names,
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,  # the TorchScript exporter honours dynamic_axes and opset 17
            )
    except Exception as exc:
        raise ConversionError(f"torch.onnx.export failed: {str(exc).splitlines()[0]}") from None
    target = staging / MODEL_FILE
    target.write_bytes(buffer.getvalue())
    signature = session_signature(make_session(str(target)))
    predictor = Predictor({MODEL_FILE: buffer.getvalue()}, signature, ModelKind.TENSOR)
    return Exported(
        target, signature, predictor, output_names, example, f"torch.onnx {torch.__version__}"
    )


def parity_rows(samples: Samples | None, exported: Exported) -> np.ndarray:
    """The rows to compare source and ONNX on: the samples, else the example input; a single
    row is repeated, since a batch of another size proves the batch axis is dynamic."""
    example: np.ndarray = exported.example.numpy()
    rows = np.asarray(samples if samples is not None else example)[:MAX_PARITY_ROWS]
    if not isinstance(samples, list) and len(rows) == 1:
        rows = np.repeat(rows, 3, axis=0)
    return rows.astype(example.dtype)


def convert_pytorch(
    module: Any, staging: Path, example_input: Any, samples: Samples | None, tolerance: float
) -> Converted:
    exported = export_module(module, staging, example_input)
    import torch

    rows = parity_rows(samples, exported)
    with torch.no_grad():
        expected = module(torch.as_tensor(rows))
    expected_list = [
        t.numpy() for t in (expected if isinstance(expected, tuple | list) else (expected,))
    ]
    return checked_export(
        "pytorch", exported, rows, expected_list, tolerance, {"module": type(module).__name__}
    )


def checked_export(
    flavor: str,
    exported: Exported,
    rows: np.ndarray,
    expected: list[np.ndarray],
    tolerance: float,
    details: dict[str, Any],
) -> Converted:
    """An exported module as a converted tensor model, its parity measured on ``rows``
    against what the source framework answered (``expected``)."""
    actual = exported.predictor.predict(rows)
    parity = numeric_parity(
        expected, [actual[n] for n in exported.output_names], tolerance, len(rows)
    )
    return Converted(
        flavor,
        ModelKind.TENSOR,
        {MODEL_FILE: exported.target},
        exported.signature,
        parity,
        details={**details, "converter": exported.converter, "opset": OPSET},
    )
