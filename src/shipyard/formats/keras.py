"""Keras 3 models, in memory or saved as ``.keras`` archives, run on the torch backend.

On the torch backend a Keras model is a ``torch.nn.Module``, so it is exported by the same
TorchScript exporter as a PyTorch model (same input name, dynamic batch axis and opset) and
TensorFlow is never needed. Parity is checked against the model's own ``predict``.
"""

from __future__ import annotations

import os
import sys
import warnings
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from shipyard.errors import (
    ConversionError,
    CorruptModelError,
    InvalidInputError,
    MissingDependencyError,
)
from shipyard.formats.base import Converted, Samples
from shipyard.formats.pytorch import checked_export, export_module, parity_rows

BACKEND = "torch"
# Checked without an example input or reference data: random rows of the model's input shape.
RANDOM_ROWS = 8


def import_keras() -> ModuleType:
    """Keras on the torch backend, chosen before Keras is first imported."""
    wanted = os.environ.setdefault("KERAS_BACKEND", BACKEND)
    if "keras" not in sys.modules and wanted != BACKEND:
        raise _wrong_backend(wanted)
    try:
        import keras
    except ImportError:
        raise MissingDependencyError.for_extra("keras", "keras") from None
    backend = str(keras.backend.backend())
    if backend != BACKEND:
        raise _wrong_backend(backend)
    loaded: ModuleType = keras
    return loaded


def _wrong_backend(backend: str) -> InvalidInputError:
    return InvalidInputError(
        f"Keras is set to the {backend} backend; Shipyard converts Keras models on the torch "
        "backend. Set KERAS_BACKEND=torch before Keras is first imported (or leave it unset "
        "and let Shipyard choose it)"
    )


def is_keras_model(obj: object) -> bool:
    return any(
        cls.__module__.split(".")[0] == "keras" and cls.__name__ == "Model"
        for cls in type(obj).__mro__
    )


def load_keras_file(path: Path) -> Any:
    """The model saved in a ``.keras`` archive (``model.save("model.keras")``)."""
    keras = import_keras()
    if not path.is_file():
        raise InvalidInputError(f"model file {path} does not exist")
    if path.suffix != ".keras":
        raise InvalidInputError(
            f"{path} is not named *.keras: Keras reads an archive only under that suffix; "
            "rename the file"
        )
    if not zipfile.is_zipfile(path):
        raise CorruptModelError(
            f"{path} is not a Keras archive: a .keras file is the zip that "
            "model.save('model.keras') writes (for a legacy .h5 file or SavedModel folder, load it "
            "in Keras and save it as .keras)"
        )
    try:
        return keras.saving.load_model(path)
    except Exception as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise CorruptModelError(f"cannot load {path} as a Keras model: {first}") from None


def convert_keras(
    model: Any, staging: Path, example_input: Any, samples: Samples | None, tolerance: float
) -> Converted:
    keras = import_keras()
    if isinstance(samples, list):
        raise InvalidInputError(
            "a Keras model takes tensors; the reference data or example holds lines of text"
        )
    example = example_input if example_input is not None else _random_rows(model)
    example = np.asarray(example)
    if example.ndim > 0 and len(example) == 1:
        # Traced on two rows, so that no shape check in a layer is specialised to a batch of 1.
        example = np.repeat(example, 2, axis=0)
    exported = export_module(model, staging, example, kind="Keras")
    rows = parity_rows(samples, exported)
    try:
        with warnings.catch_warnings():
            # keras 3.15 hands numpy torch tensors whose __array__ predates numpy 2's copy=
            warnings.simplefilter("ignore", DeprecationWarning)
            predicted = model.predict(rows, verbose=0)
    except Exception as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise InvalidInputError(f"the Keras model cannot predict the samples: {first}") from None
    expected = [np.asarray(p) for p in _outputs(predicted)]
    if len(expected) != len(exported.output_names):
        raise ConversionError(
            f"the Keras model predicts {len(expected)} output(s) but exported "
            f"{len(exported.output_names)}"
        )
    return checked_export(
        "keras",
        exported,
        rows,
        expected,
        tolerance,
        {
            "model": type(model).__name__,
            "source_library": f"keras {keras.__version__} ({BACKEND} backend)",
        },
    )


def _outputs(predicted: Any) -> list[Any]:
    if isinstance(predicted, dict):
        raise ConversionError(
            "a Keras model with named (dict) outputs is not converted; return a tensor or a "
            "list of tensors"
        )
    return list(predicted) if isinstance(predicted, tuple | list) else [predicted]


def _random_rows(model: Any) -> np.ndarray:
    """Rows for a model whose input shape is known but that was given no example input."""
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise InvalidInputError(
            "a Keras model needs an example input (an array with a batch axis) when it does "
            "not declare exactly one input shape (build it with keras.Input)"
        )
    shape = tuple(inputs[0].shape)[1:]
    if any(dim is None for dim in shape):
        raise InvalidInputError(
            f"the Keras model's input shape {list(inputs[0].shape)} has free axes besides the "
            "batch; give an example input"
        )
    dtype = np.dtype(str(inputs[0].dtype))
    generator = np.random.default_rng(0)
    if np.issubdtype(dtype, np.floating):
        return generator.random((RANDOM_ROWS, *shape)).astype(dtype)
    return np.zeros((RANDOM_ROWS, *shape), dtype=dtype)
