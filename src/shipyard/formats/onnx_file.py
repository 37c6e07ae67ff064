"""An ``.onnx`` file: checked, its signature read, run once on the samples."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import CorruptModelError, InvalidInputError, SignatureMismatchError
from shipyard.formats.base import Converted, Samples
from shipyard.registry.domain import ModelKind, Signature
from shipyard.runtime.predictor import MODEL_FILE, Predictor
from shipyard.runtime.session import make_session, session_signature
from shipyard.runtime.text import (
    EMBEDDING_OUTPUT,
    ENCODER_INPUTS,
    PIPELINE_FILE,
    TEXT_INPUT,
    TOKENIZER_FILE,
    TextPipelineSpec,
    text_signature,
)


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


@dataclass(frozen=True)
class TextOptions:
    """Declares an ONNX encoder a text-embedding model: its tokenizer and pooling."""

    tokenizer: Path
    pooling: str = "mean"
    normalize: bool = True
    max_length: int | None = None


def convert_onnx_file(
    path: Path, staging: Path, samples: Samples | None, text: TextOptions | None = None
) -> Converted:
    if not path.is_file():
        raise InvalidInputError(f"model file {path} does not exist")
    check_onnx(path)
    target = staging / MODEL_FILE
    shutil.copyfile(path, target)
    try:
        signature = session_signature(make_session(str(target)))
    except Exception as exc:
        raise CorruptModelError(f"ONNX Runtime cannot load {path}: {_first_line(exc)}") from None
    if text is not None:
        return _as_text_model(target, signature, staging, samples, text)
    if samples is not None and len(signature.inputs) == 1:
        predictor = Predictor({MODEL_FILE: target.read_bytes()}, signature, ModelKind.TENSOR)
        predictor.predict(samples)  # a model that cannot run its own samples is refused here
    return Converted("onnx", ModelKind.TENSOR, {MODEL_FILE: target}, signature, parity=None)


def _as_text_model(
    model: Path, graph: Signature, staging: Path, samples: Samples | None, text: TextOptions
) -> Converted:
    if not text.tokenizer.is_file():
        raise InvalidInputError(f"tokenizer file {text.tokenizer} does not exist")
    if text.pooling not in ("mean", "cls"):
        raise InvalidInputError(f"pooling must be 'mean' or 'cls', got {text.pooling!r}")
    names = {spec.name for spec in graph.inputs}
    graph_inputs = tuple(name for name in ENCODER_INPUTS if name in names)
    if "input_ids" not in names or names - set(graph_inputs):
        raise SignatureMismatchError(
            f"{model.name} takes {sorted(names)}; a text encoder takes input_ids and optionally "
            "attention_mask and token_type_ids"
        )
    hidden = next((o for o in graph.outputs if len(o.shape) == 3), None)
    if hidden is None:
        raise SignatureMismatchError(
            "a text encoder needs an output of token embeddings [batch, tokens, hidden]"
        )
    try:
        tokenizer_json = json.loads(text.tokenizer.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read tokenizer {text.tokenizer}: {exc}") from None
    truncation = tokenizer_json.get("truncation") or {}
    spec = TextPipelineSpec(
        input_name=TEXT_INPUT,
        output_name=EMBEDDING_OUTPUT,
        graph_inputs=graph_inputs,
        graph_output=hidden.name,
        max_length=text.max_length or int(truncation.get("max_length", 512)),
        pooling=text.pooling,
        normalize=text.normalize,
        dimension=hidden.shape[-1],
    )
    shutil.copyfile(text.tokenizer, staging / TOKENIZER_FILE)
    (staging / PIPELINE_FILE).write_text(json.dumps(spec.to_dict(), indent=2))
    files = {name: staging / name for name in (MODEL_FILE, TOKENIZER_FILE, PIPELINE_FILE)}
    signature = text_signature(hidden.shape[-1])
    predictor = Predictor(
        {name: path.read_bytes() for name, path in files.items()},
        signature,
        ModelKind.TEXT_EMBEDDING,
    )
    predictor.predict(samples if isinstance(samples, list) else ["a sentence to check the model"])
    return Converted(
        "onnx",
        ModelKind.TEXT_EMBEDDING,
        files,
        signature,
        parity=None,
        details={"pipeline": spec.to_dict()},
    )
