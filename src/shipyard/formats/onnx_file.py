"""An ``.onnx`` file: checked, its signature read, run once on the samples."""

from __future__ import annotations

import shutil
from pathlib import Path

from shipyard.errors import CorruptModelError, InvalidInputError
from shipyard.formats.base import Converted, Samples
from shipyard.registry.domain import ModelKind
from shipyard.runtime.predictor import MODEL_FILE, Predictor
from shipyard.runtime.session import make_session, session_signature


def check_onnx(path: Path) -> None:
    """Refuse a file that is not a valid ONNX model, naming it."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:
        raise CorruptModelError(f"{path} is not a valid ONNX model: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def convert_onnx_file(path: Path, staging: Path, samples: Samples | None) -> Converted:
    if not path.is_file():
        raise InvalidInputError(f"model file {path} does not exist")
    check_onnx(path)
    target = staging / MODEL_FILE
    shutil.copyfile(path, target)
    try:
        signature = session_signature(make_session(str(target)))
    except Exception as exc:
        raise CorruptModelError(f"ONNX Runtime cannot load {path}: {_first_line(exc)}") from None
    if samples is not None and len(signature.inputs) == 1:
        predictor = Predictor({MODEL_FILE: target.read_bytes()}, signature, ModelKind.TENSOR)
        predictor.predict(samples)  # a model that cannot run its own samples is refused here
    return Converted("onnx", ModelKind.TENSOR, {MODEL_FILE: target}, signature, parity=None)
