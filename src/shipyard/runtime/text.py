"""Text-embedding pre- and post-processing: tokenize a batch, pool, normalise.

Declared in a version's ``pipeline.json`` so that the served model takes strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.registry.domain import Signature, TensorSpec

PIPELINE_FILE = "pipeline.json"
TOKENIZER_FILE = "tokenizer.json"
TEXT_INPUT = "text"
EMBEDDING_OUTPUT = "embedding"
ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# A batch is split where a row is longer than GROUP_STRETCH x the group's shortest row plus
# GROUP_SLACK tokens: padding then stays under about a third of a group's tokens, while a run
# costs only as much as a few tokens, so short rows never pay for a long one.
GROUP_STRETCH = 1.3
GROUP_SLACK = 8


def text_signature(dimension: int) -> Signature:
    """What a text-embedding model serves: strings in, one vector per string out."""
    return Signature(
        (TensorSpec(TEXT_INPUT, "BYTES", (-1,)),),
        (TensorSpec(EMBEDDING_OUTPUT, "FP32", (-1, dimension)),),
    )


@dataclass(frozen=True)
class TextPipelineSpec:
    """How strings become encoder inputs and hidden states become one vector per string."""

    input_name: str  # the served input (strings)
    output_name: str  # the served output (vectors)
    graph_inputs: tuple[str, ...]  # subset of input_ids, attention_mask, token_type_ids
    graph_output: str  # the encoder's token embeddings, [batch, tokens, hidden]
    max_length: int
    pooling: str = "mean"
    normalize: bool = True
    dimension: int = -1

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "text-embedding",
            "input_name": self.input_name,
            "output_name": self.output_name,
            "graph_inputs": list(self.graph_inputs),
            "graph_output": self.graph_output,
            "max_length": self.max_length,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "dimension": self.dimension,
            "tokenizer": TOKENIZER_FILE,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextPipelineSpec:
        return cls(
            input_name=data["input_name"],
            output_name=data["output_name"],
            graph_inputs=tuple(data["graph_inputs"]),
            graph_output=data["graph_output"],
            max_length=int(data["max_length"]),
            pooling=data.get("pooling", "mean"),
            normalize=bool(data.get("normalize", True)),
            dimension=int(data.get("dimension", -1)),
        )


def load_tokenizer(tokenizer_json: str, max_length: int) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    # Published tokenizer files often pad to a fixed length; pad to the longest in the batch.
    tokenizer.enable_padding(pad_id=_pad_id(tokenizer), pad_token=_pad_token(tokenizer))
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def _pad_token(tokenizer: Any) -> str:
    padding = tokenizer.padding
    return str(padding["pad_token"]) if padding else "[PAD]"


def _pad_id(tokenizer: Any) -> int:
    padding = tokenizer.padding
    if padding:
        return int(padding["pad_id"])
    token_id = tokenizer.token_to_id("[PAD]")
    return int(token_id) if token_id is not None else 0


class TextEmbedder:
    """Strings -> encoder feeds -> pooled, normalised vectors, one batch at a time."""

    def __init__(self, spec: TextPipelineSpec, tokenizer: Any) -> None:
        self.spec = spec
        self.tokenizer = tokenizer

    def encode(self, texts: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds: dict[str, np.ndarray] = {}
        for name in self.spec.graph_inputs:
            if name == "input_ids":
                feeds[name] = ids
            elif name == "attention_mask":
                feeds[name] = mask
            elif name == "token_type_ids":
                feeds[name] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        return feeds, mask

    def encode_groups(
        self, texts: list[str]
    ) -> list[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
        """``encode`` split into groups of rows of similar length, each padded only to its own
        longest row: (row indices, feeds, mask) per group."""
        feeds, mask = self.encode(texts)
        lengths = mask.sum(axis=1)
        groups = []
        for rows in length_groups(lengths):
            width = int(lengths[rows].max())
            group_feeds = {name: array[rows, :width] for name, array in feeds.items()}
            groups.append((rows, group_feeds, mask[rows, :width]))
        return groups

    def pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            weights = mask[:, :, None].astype(hidden.dtype)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        if self.spec.normalize:
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled = pooled / np.clip(norms, 1e-12, None)
        return pooled.astype(np.float32, copy=False)


def length_groups(lengths: np.ndarray) -> list[np.ndarray]:
    """Row indices grouped by similar length (shortest first); one group if lengths are alike."""
    if len(lengths) == 0:
        return []
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    groups: list[np.ndarray] = []
    start = 0
    for i in range(1, len(order)):
        if sorted_lengths[i] > GROUP_STRETCH * sorted_lengths[start] + GROUP_SLACK:
            groups.append(order[start:i])
            start = i
    groups.append(order[start:])
    return groups
