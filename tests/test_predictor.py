"""Predictor.predict: what it accepts, and how it refuses what does not fit the signature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from helpers import tiny_expected
from shipyard import Registry
from shipyard.errors import IntegrityError, SignatureMismatchError
from shipyard.registry import ModelKind, ModelVersion, Signature, TensorSpec
from shipyard.runtime.loading import load_version
from shipyard.runtime.predictor import MODEL_FILE, Predictor, decode_texts
from shipyard.runtime.session import Threading


@pytest.fixture
def tiny(registry: Registry, tiny_onnx_path: Path) -> Any:
    shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    return shipyard.load("tiny", registry=registry)


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        (np.ones((4, 2)), r"input 'x' expects shape \[-1, 3\], got \[4, 2\] \(axis 1\)"),
        (np.ones((4, 5)), r"input 'x' expects shape \[-1, 3\], got \[4, 5\]"),
        (np.ones((2, 3, 1)), r"input 'x' expects shape \[-1, 3\], got \[2, 3, 1\]"),
        (np.ones(4), r"input 'x' expects shape \[-1, 3\], got \[1, 4\]"),
        (5.0, r"input 'x' expects shape \[-1, 3\], got \[\]"),
        ([["a", "b", "c"]], r"input 'x' expects FP32, got <U1"),
        (np.array([["1", "2", "3"]]), r"input 'x' expects FP32, got <U1"),
        ([[1.0, 2.0, None]], r"input 'x' expects FP32, got object"),
        ([[1.0, 2.0, 3.0], [1.0, 2.0]], r"input 'x' is not a rectangular array"),
        ({"y": np.ones((1, 3))}, r"missing \['x'\], unexpected \['y'\]"),
        ({"x": np.ones((1, 3)), "z": 1}, r"missing \[\], unexpected \['z'\]"),
        ({}, r"missing \['x'\], unexpected \[\]"),
    ],
)
def test_bad_inputs(tiny: Any, inputs: Any, match: str) -> None:
    with pytest.raises(SignatureMismatchError, match=match):
        tiny.predict(inputs)


@pytest.mark.parametrize(
    "x",
    [
        np.arange(6, dtype=np.float64).reshape(2, 3),
        np.arange(6, dtype=np.int64).reshape(2, 3),
        np.arange(6, dtype=np.int32).reshape(2, 3),
        [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]],
        np.array([[True, False, True]]),
    ],
    ids=["float64", "int64", "int32", "lists", "bool"],
)
def test_numeric_inputs_are_cast(tiny: Any, x: Any) -> None:
    out = tiny.predict(x)["y"]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, tiny_expected(np.asarray(x, dtype=np.float32)), rtol=1e-6)


def test_single_row_without_batch_axis(tiny: Any) -> None:
    out = tiny.predict([1.0, 2.0, 3.0])["y"]
    assert out.shape == (1, 2)
    np.testing.assert_allclose(out, tiny_expected(np.array([[1.0, 2.0, 3.0]])), rtol=1e-6)
    out = tiny.predict({"x": np.array([1.0, 2.0, 3.0])})["y"]
    assert out.shape == (1, 2)


def test_empty_batch(tiny: Any) -> None:
    assert tiny.predict(np.zeros((0, 3)))["y"].shape == (0, 2)


def test_thread_count(registry: Registry, tiny_onnx_path: Path) -> None:
    shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    predictor = shipyard.load("tiny", registry=registry, intra_op_threads=1)
    assert predictor.threading.intra_op == 1
    assert predictor.session.get_session_options().intra_op_num_threads == 1
    x = np.ones((3, 3))
    np.testing.assert_allclose(predictor.predict(x)["y"], tiny_expected(x), rtol=1e-6)
    two = shipyard.load("tiny", registry=registry, intra_op_threads=2, inter_op_threads=1)
    assert two.session.get_session_options().intra_op_num_threads == 2


def test_thread_count_from_settings(tmp_path: Path, tiny_onnx_path: Path) -> None:
    settings = shipyard.Settings(home=tmp_path / "home", intra_op_threads=1)
    shipyard.register(tiny_onnx_path, "tiny", settings=settings)
    predictor = shipyard.load("tiny", settings=settings)
    assert predictor.threading == Threading(intra_op=1, inter_op=1)


def test_negative_thread_count_is_refused(tmp_path: Path) -> None:
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="intra_op_threads"):
        shipyard.Settings(home=tmp_path / "home", intra_op_threads=-1)


def test_load_version_reads_and_verifies_the_files(
    registry: Registry, tiny_onnx_path: Path
) -> None:
    shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    version = registry.get_version("tiny")
    x = np.ones((2, 3))
    predictor = load_version(registry, version, Threading(intra_op=1))
    assert predictor.version == version
    assert predictor.threading == Threading(intra_op=1)
    np.testing.assert_allclose(predictor.predict(x)["y"], tiny_expected(x), rtol=1e-6)
    _overwrite_model(registry, version)
    with pytest.raises(IntegrityError, match=r"'model\.onnx'"):
        load_version(registry, version, Threading(intra_op=1))


def test_load_version_takes_files_read_already(registry: Registry, tiny_onnx_path: Path) -> None:
    shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    version = registry.get_version("tiny")
    files = registry.read_files(version)
    _overwrite_model(registry, version)
    predictor = load_version(registry, version, Threading(intra_op=2), files)  # not read again
    assert predictor.threading.intra_op == 2
    x = np.ones((1, 3))
    np.testing.assert_allclose(predictor.predict(x)["y"], tiny_expected(x), rtol=1e-6)


def _overwrite_model(registry: Registry, version: ModelVersion) -> None:
    entry = version.file(MODEL_FILE)
    assert entry is not None
    blob = registry.artifacts.blob_path(entry.digest)
    blob.chmod(0o644)
    blob.write_bytes(b"not the model that was registered")


def test_version_is_attached(tiny: Any) -> None:
    assert tiny.version is not None
    assert tiny.version.ref == "tiny:1"
    assert tiny.kind is ModelKind.TENSOR
    assert tiny.signature.inputs == (TensorSpec("x", "FP32", (-1, 3)),)


# A model with two inputs -----------------------------------------------------------------


def _add_model_bytes() -> bytes:
    """sum = a + b, inputs "a" and "b" FP32 [-1, 2]."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 2]),
        ],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["n", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def two_inputs() -> Predictor:
    signature = Signature(
        (TensorSpec("a", "FP32", (-1, 2)), TensorSpec("b", "FP32", (-1, 2))),
        (TensorSpec("sum", "FP32", (-1, 2)),),
    )
    return Predictor({MODEL_FILE: _add_model_bytes()}, signature, ModelKind.TENSOR)


def test_two_inputs_by_name(two_inputs: Predictor) -> None:
    out = two_inputs.predict({"a": [[1.0, 2.0]], "b": [[3.0, 4.0]]})["sum"]
    np.testing.assert_allclose(out, [[4.0, 6.0]])


def test_two_inputs_need_a_mapping(two_inputs: Predictor) -> None:
    with pytest.raises(SignatureMismatchError, match=r"takes 2 inputs \(a, b\)"):
        two_inputs.predict(np.ones((1, 2)))


def test_two_inputs_missing_one(two_inputs: Predictor) -> None:
    with pytest.raises(SignatureMismatchError, match=r"missing \['b'\]"):
        two_inputs.predict({"a": np.ones((1, 2))})


def test_two_input_model_registers(registry: Registry, tmp_path: Path) -> None:
    model_path = tmp_path / "add.onnx"
    model_path.write_bytes(_add_model_bytes())
    version = shipyard.register(model_path, "add", registry=registry)
    assert [s.name for s in version.signature.inputs] == ["a", "b"]
    assert set(version.input_example) == {"a", "b"}
    out = shipyard.load("add", registry=registry).predict({"a": [[1.0, 1.0]], "b": [[2.0, 3.0]]})
    np.testing.assert_allclose(out["sum"], [[3.0, 4.0]])


def test_two_input_model_refuses_reference_data(registry: Registry, tmp_path: Path) -> None:
    model_path = tmp_path / "add.onnx"
    model_path.write_bytes(_add_model_bytes())
    reference = tmp_path / "ref.npy"
    np.save(reference, np.ones((4, 2)))
    with pytest.raises(SignatureMismatchError, match="reference data fits models with one input"):
        shipyard.register(model_path, "add", reference_data=reference, registry=registry)


def test_decode_texts_takes_strings_and_utf8_bytes() -> None:
    values = np.array(["plain", "caf\u00e9".encode(), b""], dtype=object)
    assert decode_texts("text", values) == ["plain", "caf\u00e9", ""]
    assert decode_texts("text", []) == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([b"fine", b"\xff\xfe broken"], "input 'text' element 1 is not valid UTF-8"),
        (["a", "b", 3], "input 'text' expects strings; element 2 is int"),
        ([None], "input 'text' expects strings; element 0 is NoneType"),
    ],
)
def test_decode_texts_refuses_what_is_not_text(values: list[Any], message: str) -> None:
    with pytest.raises(SignatureMismatchError) as info:
        decode_texts("text", values)
    assert info.value.message == message
