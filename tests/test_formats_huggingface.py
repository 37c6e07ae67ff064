"""The real all-MiniLM-L6-v2: exported once per session, served as strings in, vectors out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from helpers import MINILM_REFERENCE, version_rows
from shipyard import Registry, Settings
from shipyard.errors import InvalidInputError, SignatureMismatchError
from shipyard.registry import ModelKind, Signature, TensorSpec

pytestmark = pytest.mark.slow

SENTENCES = [
    "hi",
    "A man is playing a guitar on the stage.",
    "The quick brown fox jumps over the lazy dog. " * 40,  # longer than the 256-token window
    "Je voudrais réserver une table pour deux personnes ce soir.",
    "東京は日本の首都です。",
    "Что такое машинное обучение?",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "3.14159 2.71828 1.41421 42 1e-9",
    "🚢 Shipyard ships models 🚀",
    "   leading and trailing spaces   ",
]


@pytest.fixture(scope="module")
def minilm_predictor(minilm_registry: Registry, minilm_version: Any) -> Any:
    return shipyard.load(minilm_version.ref, registry=minilm_registry)


@pytest.fixture(scope="module")
def sentence_transformer(minilm_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir), device="cpu")


def test_registration(minilm_version: Any) -> None:
    assert minilm_version.flavor == "huggingface"
    assert minilm_version.kind is ModelKind.TEXT_EMBEDDING
    assert minilm_version.signature == Signature(
        (TensorSpec("text", "BYTES", (-1,)),), (TensorSpec("embedding", "FP32", (-1, 384)),)
    )
    assert {f.path for f in minilm_version.files} == {
        "model.onnx",
        "pipeline.json",
        "tokenizer.json",
        "reference.txt",
    }
    parity = minilm_version.conversion["parity"]
    assert parity["metric"] == "min_cosine"
    assert parity["passed"] is True
    assert parity["value"] >= 0.9999
    assert parity["rows"] == len(MINILM_REFERENCE)
    pipeline = minilm_version.conversion["pipeline"]
    assert pipeline["pooling"] == "mean"
    assert pipeline["normalize"] is True
    assert pipeline["max_length"] == 256
    assert minilm_version.input_example == MINILM_REFERENCE[:3]


def test_reference_text_is_stored(minilm_registry: Registry, minilm_version: Any) -> None:
    data = minilm_registry.read_file(minilm_version, "reference.txt").decode("utf-8")
    assert data.splitlines() == MINILM_REFERENCE
    assert minilm_version.conversion["reference_data"]["file"] == "reference.txt"
    assert minilm_version.conversion["reference_data"]["rows"] == len(MINILM_REFERENCE)
    minilm_registry.verify(minilm_version.ref)


def test_matches_sentence_transformers(minilm_predictor: Any, sentence_transformer: Any) -> None:
    got = minilm_predictor.predict(SENTENCES)["embedding"]
    want = sentence_transformer.encode(SENTENCES, normalize_embeddings=True)
    assert got.shape == (len(SENTENCES), 384)
    assert got.dtype == np.float32
    cosine = (got * want).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert cosine.min() >= 0.9999, dict(zip(SENTENCES, cosine.round(6), strict=True))


def test_embeddings_are_unit_norm(minilm_predictor: Any) -> None:
    got = minilm_predictor.predict(SENTENCES)["embedding"]
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_results(minilm_predictor: Any) -> None:
    together = minilm_predictor.predict(SENTENCES)["embedding"]
    alone = np.vstack([minilm_predictor.predict(s)["embedding"] for s in SENTENCES])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_mixed_lengths_keep_their_order(minilm_predictor: Any) -> None:
    # a long row among short ones: rows run in length groups and come back in input order
    mixed = [SENTENCES[0], " ".join(SENTENCES * 12), "ok", SENTENCES[1], "ok"]
    together = minilm_predictor.predict(mixed)["embedding"]
    alone = np.vstack([minilm_predictor.predict(s)["embedding"] for s in mixed])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    outputs, _ = minilm_predictor.run_batch(mixed)
    np.testing.assert_allclose(outputs["embedding"], alone, atol=1e-5)
    counts = [len(minilm_predictor.graph_feeds(s)["input_ids"][0]) for s in mixed]
    assert outputs["__token_count"].tolist() == counts
    assert counts[1] == 256  # truncated at the model's limit


@pytest.mark.parametrize(
    ("lengths", "groups"),
    [
        ([], []),
        ([7], [[0]]),
        ([10, 10, 10], [[0, 1, 2]]),
        ([3, 256, 11, 9, 33], [[0, 3, 2], [4], [1]]),
        ([40, 20, 30], [[1, 2], [0]]),
    ],
)
def test_length_groups(lengths: list[int], groups: list[list[int]]) -> None:
    from shipyard.runtime.text import length_groups

    got = length_groups(np.array(lengths, dtype=np.int64))
    assert [g.tolist() for g in got] == groups


def test_input_forms(minilm_predictor: Any) -> None:
    one = minilm_predictor.predict("hello world")["embedding"]
    assert one.shape == (1, 384)
    np.testing.assert_allclose(
        minilm_predictor.predict({"text": ["hello world"]})["embedding"], one, atol=1e-6
    )
    np.testing.assert_allclose(
        minilm_predictor.predict([b"hello world"])["embedding"], one, atol=1e-6
    )
    np.testing.assert_allclose(
        minilm_predictor.predict(np.array(["hello world"]))["embedding"], one, atol=1e-6
    )
    assert minilm_predictor.predict([])["embedding"].shape == (0, 384)


def test_similar_sentences_are_closer(minilm_predictor: Any) -> None:
    a, b, c = minilm_predictor.predict(
        ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Stock markets fell sharply."]
    )["embedding"]
    assert float(a @ b) > float(a @ c) + 0.2


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ([1, 2], r"input 'text' expects strings; element 0 is int"),
        (["ok", None], r"input 'text' expects strings; element 1 is NoneType"),
        ({"sentence": ["hi"]}, r"expected one input named 'text', got \['sentence'\]"),
        ([b"\xff\xfe"], r"input 'text' element 0 is not valid UTF-8"),
    ],
)
def test_bad_text_inputs(minilm_predictor: Any, inputs: Any, match: str) -> None:
    with pytest.raises(SignatureMismatchError, match=match):
        minilm_predictor.predict(inputs)


def test_load_through_settings(minilm_registry: Registry, minilm_version: Any) -> None:
    predictor = shipyard.load("minilm:1", settings=minilm_registry.settings, intra_op_threads=1)
    assert predictor.kind is ModelKind.TEXT_EMBEDDING
    assert predictor.predict("x")["embedding"].shape == (1, 384)


def _copy_without(minilm_dir: Path, target: Path, missing: str) -> Path:
    """A copy of the model folder (as symlinks, the weights are 90 MB) lacking one file."""
    target.mkdir()
    for entry in minilm_dir.iterdir():
        if entry.name != missing:
            os.symlink(entry, target / entry.name)
    return target


def test_folder_without_tokenizer(settings: Settings, minilm_dir: Path, tmp_path: Path) -> None:
    folder = _copy_without(minilm_dir, tmp_path / "minilm", "tokenizer.json")
    with pytest.raises(InvalidInputError, match=r"has no tokenizer\.json"):
        shipyard.register(folder, "minilm", settings=settings)
    assert version_rows(settings) == 0


def test_folder_without_safetensors(settings: Settings, minilm_dir: Path, tmp_path: Path) -> None:
    folder = _copy_without(minilm_dir, tmp_path / "minilm", "model.safetensors")
    with pytest.raises(InvalidInputError, match="has no safetensors weights"):
        shipyard.register(folder, "minilm", settings=settings)
    assert version_rows(settings) == 0


def test_huggingface_flavor_needs_a_folder(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        shipyard.register(tmp_path / "nowhere", "minilm", flavor="huggingface", settings=settings)
