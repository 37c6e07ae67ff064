"""Hugging Face model folders as text-embedding models: the encoder exported to ONNX,
the tokenizer and pooling declared as pre/post-processing so the served model takes strings."""

from __future__ import annotations

import inspect
import io
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import ConversionError, InvalidInputError, MissingDependencyError
from shipyard.formats.base import Converted
from shipyard.formats.parity import cosine_parity
from shipyard.registry.domain import ModelKind
from shipyard.runtime.predictor import MODEL_FILE, Predictor
from shipyard.runtime.text import (
    EMBEDDING_OUTPUT,
    ENCODER_INPUTS,
    PIPELINE_FILE,
    TEXT_INPUT,
    TOKENIZER_FILE,
    TextPipelineSpec,
    text_signature,
)

OPSET = 17
PARITY_SENTENCES = [
    "A man is playing a guitar on the stage.",
    "The quarterly report shows revenue grew by 12% year over year.",
    "hello",
    "Wie spät ist es in Berlin?",
    "def add(a, b): return a + b",
    "Shipyard serves models behind the Open Inference Protocol.",
    "The cat sat on the mat, and then it slept for twelve hours straight.",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons.",
]


def _required(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise InvalidInputError(f"the Hugging Face model folder {folder} has no {name}")
    return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path} is not a JSON object")
    return data


def pipeline_facts(folder: Path, tokenizer_json: dict[str, Any]) -> tuple[int, str, bool]:
    """Truncation length, pooling and normalisation, as sentence-transformers would use them."""
    max_length = None
    st_config = folder / "sentence_bert_config.json"
    if st_config.is_file():
        max_length = _read_json(st_config).get("max_seq_length")
    if max_length is None and tokenizer_json.get("truncation"):
        max_length = tokenizer_json["truncation"].get("max_length")
    if max_length is None:
        max_length = min(
            int(_read_json(folder / "config.json").get("max_position_embeddings", 512)), 512
        )
    pooling = "mean"
    pooling_config = folder / "1_Pooling" / "config.json"
    if pooling_config.is_file() and _read_json(pooling_config).get("pooling_mode_cls_token"):
        pooling = "cls"
    normalize = True
    modules = folder / "modules.json"
    if modules.is_file():
        entries = json.loads(modules.read_text())
        normalize = any("Normalize" in str(m.get("type", "")) for m in entries)
    return int(max_length), pooling, normalize


def convert_huggingface(
    folder: Path, staging: Path, sentences: list[str] | None, tolerance: float
) -> Converted:
    try:
        import torch
        import transformers
        from transformers import AutoModel
    except ImportError:
        raise MissingDependencyError.for_extra("transformers/torch", "hf") from None
    if not folder.is_dir():
        raise InvalidInputError(f"model folder {folder} does not exist")
    _required(folder, "config.json")
    tokenizer_path = _required(folder, TOKENIZER_FILE)
    if not any(folder.glob("*.safetensors")):
        raise InvalidInputError(
            f"the Hugging Face model folder {folder} has no safetensors weights "
            "(pickled .bin weights are not loaded: they run code)"
        )
    max_length, pooling, normalize = pipeline_facts(folder, _read_json(tokenizer_path))
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # progress is the caller's to show
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModel.from_pretrained(
                str(folder),
                local_files_only=True,
                use_safetensors=True,
                attn_implementation="eager",
            )
    except Exception as exc:
        raise ConversionError(
            f"transformers cannot load {folder}: {str(exc).splitlines()[0]}"
        ) from None
    model.eval()
    accepted = set(inspect.signature(model.forward).parameters)
    graph_inputs = tuple(name for name in ENCODER_INPUTS if name in accepted)
    hidden_size = int(getattr(model.config, "hidden_size", -1))
    spec = TextPipelineSpec(
        input_name=TEXT_INPUT,
        output_name=EMBEDDING_OUTPUT,
        graph_inputs=graph_inputs,
        graph_output="last_hidden_state",
        max_length=max_length,
        pooling=pooling,
        normalize=normalize,
        dimension=hidden_size,
    )
    shutil.copyfile(tokenizer_path, staging / TOKENIZER_FILE)
    (staging / PIPELINE_FILE).write_text(json.dumps(spec.to_dict(), indent=2))

    from shipyard.runtime.text import TextEmbedder, load_tokenizer

    embedder = TextEmbedder(spec, load_tokenizer(tokenizer_path.read_text(), max_length))
    feeds, _ = embedder.encode(
        ["Shipyard exports this encoder.", "a second, longer sentence to pad"]
    )
    encoder = _Encoder(
        model, graph_inputs
    ).eval()  # a wrapper left in training mode exports dropout
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                encoder,
                tuple(torch.from_numpy(feeds[name]) for name in graph_inputs),
                buffer,  # type: ignore[arg-type]  # a file object works too
                input_names=list(graph_inputs),
                output_names=["last_hidden_state"],
                dynamic_axes={
                    **{name: {0: "batch", 1: "sequence"} for name in graph_inputs},
                    "last_hidden_state": {0: "batch", 1: "sequence"},
                },
                opset_version=OPSET,
                dynamo=False,  # the TorchScript exporter honours dynamic_axes and opset 17
            )
    except Exception as exc:
        raise ConversionError(f"torch.onnx.export failed: {str(exc).splitlines()[0]}") from None
    (staging / MODEL_FILE).write_bytes(buffer.getvalue())

    signature = text_signature(hidden_size)
    files = {
        MODEL_FILE: buffer.getvalue(),
        PIPELINE_FILE: (staging / PIPELINE_FILE).read_bytes(),
        TOKENIZER_FILE: tokenizer_path.read_bytes(),
    }
    predictor = Predictor(files, signature, ModelKind.TEXT_EMBEDDING)
    texts = (sentences or PARITY_SENTENCES)[:256]
    actual = predictor.predict(texts)[EMBEDDING_OUTPUT]
    expected = _torch_embeddings(model, embedder, texts, graph_inputs)
    parity = cosine_parity(expected, actual, tolerance)
    return Converted(
        "huggingface",
        ModelKind.TEXT_EMBEDDING,
        {name: staging / name for name in (MODEL_FILE, PIPELINE_FILE, TOKENIZER_FILE)},
        signature,
        parity,
        details={
            "architecture": type(model).__name__,
            "converter": f"torch.onnx {torch.__version__}, transformers {transformers.__version__}",
            "opset": OPSET,
            "pipeline": spec.to_dict(),
        },
    )


def _torch_embeddings(
    model: Any, embedder: Any, texts: list[str], names: tuple[str, ...]
) -> np.ndarray:
    import torch

    feeds, mask = embedder.encode(texts)
    with torch.no_grad():
        hidden = model(**{n: torch.from_numpy(feeds[n]) for n in names}).last_hidden_state
    return np.asarray(embedder.pool(hidden.numpy().astype(np.float64), mask))


def _make_encoder_class() -> Any:
    import torch

    class Encoder(torch.nn.Module):
        """Positional inputs in, token embeddings out (transformers wants keywords)."""

        def __init__(self, model: Any, names: tuple[str, ...]) -> None:
            super().__init__()
            self.model = model
            self.names = names

        def forward(self, *tensors: Any) -> Any:
            return self.model(**dict(zip(self.names, tensors, strict=True))).last_hidden_state

    return Encoder


def _Encoder(model: Any, names: tuple[str, ...]) -> Any:
    return _make_encoder_class()(model, names)
