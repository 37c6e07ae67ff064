"""The Predictor: a registered version made callable, ONNX Runtime underneath."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.errors import SignatureMismatchError
from shipyard.registry.domain import ModelKind, ModelVersion, Signature, TensorSpec
from shipyard.runtime.session import V2_TO_NUMPY, Threading, make_session
from shipyard.runtime.text import (
    PIPELINE_FILE,
    TOKENIZER_FILE,
    TextEmbedder,
    TextPipelineSpec,
    load_tokenizer,
)

MODEL_FILE = "model.onnx"
# run_batch of a text model also returns each row's token count under this key (usage reports).
TOKEN_COUNT = "__token_count"

Inputs = np.ndarray | Sequence[Any] | Mapping[str, Any] | str


@dataclass(frozen=True, slots=True)
class StageTimes:
    """Seconds spent per stage of one batch."""

    preprocess: float
    inference: float
    postprocess: float


class Predictor:
    """``predict(inputs)`` with numpy in and out (strings in for text models).

    Tensor models take one array (single-input models) or a mapping of input name to
    array; text-embedding models take a string or a list of strings. The result is
    always a mapping of output name to array.
    """

    def __init__(
        self,
        files: Mapping[str, bytes],
        signature: Signature,
        kind: ModelKind,
        *,
        threading: Threading = Threading(),
        version: ModelVersion | None = None,
    ) -> None:
        self.signature = signature
        self.kind = kind
        self.version = version
        self.threading = threading
        self.session = make_session(files[MODEL_FILE], threading)
        self._embedder: TextEmbedder | None = None
        if kind is ModelKind.TEXT_EMBEDDING:
            spec = TextPipelineSpec.from_dict(json.loads(files[PIPELINE_FILE]))
            tokenizer = load_tokenizer(files[TOKENIZER_FILE].decode(), spec.max_length)
            self._embedder = TextEmbedder(spec, tokenizer)
        self._output_names = [o.name for o in self.session.get_outputs()]

    @classmethod
    def from_version(
        cls, version: ModelVersion, files: Mapping[str, bytes], threading: Threading = Threading()
    ) -> Predictor:
        return cls(files, version.signature, version.kind, threading=threading, version=version)

    def __repr__(self) -> str:
        what = self.version.ref if self.version else "unregistered model"
        return f"<Predictor {what} ({self.kind.value})>"

    def predict(self, inputs: Inputs) -> dict[str, np.ndarray]:
        if self._embedder is not None:
            return self._predict_text(inputs)
        feeds = self._tensor_feeds(inputs)
        results = self.session.run(self._output_names, feeds)
        return dict(zip(self._output_names, results, strict=True))

    def run_batch(
        self, batch: Mapping[str, np.ndarray] | list[str]
    ) -> tuple[dict[str, np.ndarray], StageTimes]:
        """Run inputs that were already validated (the server's batches), timing each stage."""
        clock = time.perf_counter
        start = clock()
        if self._embedder is not None:
            assert isinstance(batch, list)
            return self._embed(batch)
        assert isinstance(batch, Mapping)
        results = self.session.run(self._output_names, batch)
        ran = clock()
        outputs = dict(zip(self._output_names, results, strict=True))
        return outputs, StageTimes(0.0, ran - start, 0.0)

    def graph_feeds(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """What the ONNX graph itself receives for ``inputs`` (after the tokenizer, if any)."""
        if self._embedder is not None:
            feeds, _ = self._embedder.encode(self._texts(inputs, self._embedder.spec.input_name))
            return feeds
        return self._tensor_feeds(inputs)

    # Text ------------------------------------------------------------------------------

    def _predict_text(self, inputs: Inputs) -> dict[str, np.ndarray]:
        assert self._embedder is not None
        spec = self._embedder.spec
        texts = self._texts(inputs, spec.input_name)
        if not texts:
            width = max(spec.dimension, 0)
            return {spec.output_name: np.zeros((0, width), dtype=np.float32)}
        outputs, _ = self._embed(texts)
        return {spec.output_name: outputs[spec.output_name]}

    def _embed(self, texts: list[str]) -> tuple[dict[str, np.ndarray], StageTimes]:
        """Embeddings and token counts, each group of similar-length rows run on its own."""
        assert self._embedder is not None
        spec = self._embedder.spec
        clock = time.perf_counter
        start = clock()
        groups = self._embedder.encode_groups(texts)
        encoded = clock()
        hidden_states = [self.session.run([spec.graph_output], feeds)[0] for _, feeds, _ in groups]
        ran = clock()
        width = hidden_states[0].shape[-1] if hidden_states else max(spec.dimension, 0)
        embeddings = np.empty((len(texts), width), dtype=np.float32)
        token_counts = np.empty(len(texts), dtype=np.int64)
        for (rows, _, mask), hidden in zip(groups, hidden_states, strict=True):
            embeddings[rows] = self._embedder.pool(hidden, mask)
            token_counts[rows] = mask.sum(axis=1)
        outputs = {spec.output_name: embeddings, TOKEN_COUNT: token_counts}
        return outputs, StageTimes(encoded - start, ran - encoded, clock() - ran)

    @staticmethod
    def _texts(inputs: Inputs, input_name: str) -> list[str]:
        if isinstance(inputs, Mapping):
            if set(inputs) != {input_name}:
                raise SignatureMismatchError(
                    f"expected one input named {input_name!r}, got {sorted(inputs)}"
                )
            inputs = inputs[input_name]
        if isinstance(inputs, str | bytes):
            inputs = [inputs]
        values = (
            np.asarray(inputs, dtype=object).reshape(-1) if not isinstance(inputs, list) else inputs
        )
        return decode_texts(input_name, values)

    # Tensors ---------------------------------------------------------------------------

    def _tensor_feeds(self, inputs: Inputs) -> dict[str, np.ndarray]:
        specs = self.signature.inputs
        if not isinstance(inputs, Mapping):
            if len(specs) != 1:
                raise SignatureMismatchError(
                    f"this model takes {len(specs)} inputs ({', '.join(s.name for s in specs)}); "
                    "pass a mapping of input name to array"
                )
            inputs = {specs[0].name: inputs}
        expected = {s.name for s in specs}
        if set(inputs) != expected:
            missing = sorted(expected - set(inputs))
            unknown = sorted(set(inputs) - expected)
            raise SignatureMismatchError(
                f"inputs do not match the signature: missing {missing}, unexpected {unknown}"
            )
        return {spec.name: coerce(inputs[spec.name], spec) for spec in specs}


def decode_texts(input_name: str, values: Iterable[Any]) -> list[str]:
    """The elements of a text input as strings: bytes decoded as UTF-8, an invalid one refused
    with its index, as is anything that is not text."""
    texts: list[str] = []
    for i, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise SignatureMismatchError(
                    f"input {input_name!r} element {i} is not valid UTF-8"
                ) from None
        elif not isinstance(value, str):
            raise SignatureMismatchError(
                f"input {input_name!r} expects strings; element {i} is {type(value).__name__}"
            )
        texts.append(value)
    return texts


def coerce(value: Any, spec: TensorSpec) -> np.ndarray:
    """``value`` as an array of the spec's dtype and rank, or a SignatureMismatchError."""
    target = np.dtype(V2_TO_NUMPY[spec.datatype])
    try:
        array = np.asarray(value)
    except ValueError as exc:
        raise SignatureMismatchError(
            f"input {spec.name!r} is not a rectangular array: {exc}"
        ) from None
    if spec.datatype == "BYTES":
        if array.dtype.kind not in "USO":
            raise SignatureMismatchError(
                f"input {spec.name!r} expects strings (BYTES), got {array.dtype}"
            )
        array = array.astype(object)
    elif array.dtype != target:
        if array.dtype.kind not in "biuf" or not _safe_cast(array.dtype, target):
            raise SignatureMismatchError(
                f"input {spec.name!r} expects {spec.datatype}, got {array.dtype}"
            )
        array = array.astype(target)
    if spec.shape and array.ndim == len(spec.shape) - 1 and spec.shape[0] == -1:
        array = array[None, ...]  # one example without its batch axis
    if array.ndim != len(spec.shape):
        raise SignatureMismatchError(
            f"input {spec.name!r} expects shape {list(spec.shape)}, got {list(array.shape)}"
        )
    for axis, (want, got) in enumerate(zip(spec.shape, array.shape, strict=True)):
        if want != -1 and want != got:
            raise SignatureMismatchError(
                f"input {spec.name!r} expects shape {list(spec.shape)}, got {list(array.shape)} "
                f"(axis {axis})"
            )
    return array


def _safe_cast(source: np.dtype[Any], target: np.dtype[Any]) -> bool:
    # Floats and ints may narrow to the model's float type (float64 data into a float32 model
    # is the common case); floats never silently become integers, nor signed become bool.
    if target.kind == "f":
        return source.kind in "biuf"
    if target.kind in "iu":
        return source.kind in "biu"
    return bool(np.can_cast(source, target, casting="same_kind"))
