"""ONNX files: checked, signature read from the graph, stored as they are."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import shipyard
from helpers import blob_files, tiny_expected, tmp_files, version_rows
from shipyard import Registry, Settings
from shipyard.errors import (
    CorruptModelError,
    InvalidInputError,
    InvalidNameError,
    ModelNotFoundError,
    UnknownFlavorError,
)
from shipyard.registry import ModelKind, Signature, TensorSpec


def test_register_tiny_onnx(registry: Registry, tiny_onnx_path: Path) -> None:
    version = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    assert version.flavor == "onnx"
    assert version.kind is ModelKind.TENSOR
    assert version.signature == Signature(
        (TensorSpec("x", "FP32", (-1, 3)),), (TensorSpec("y", "FP32", (-1, 2)),)
    )
    assert [f.path for f in version.files] == ["model.onnx"]
    model_file = version.file("model.onnx")
    assert model_file is not None
    assert model_file.digest == hashlib.sha256(tiny_onnx_path.read_bytes()).hexdigest()
    assert model_file.size == tiny_onnx_path.stat().st_size
    assert version.conversion["flavor"] == "onnx"
    # without an example, a zero row of the right shape is stored (and was run once)
    assert version.input_example == {"x": [[0.0, 0.0, 0.0]]}


def test_predict_matches_numpy(registry: Registry, tiny_onnx_path: Path) -> None:
    shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    predictor = shipyard.load("tiny", registry=registry)
    assert isinstance(predictor, shipyard.Predictor)
    assert "tiny:1" in repr(predictor)
    x = np.random.default_rng(0).normal(size=(11, 3)).astype(np.float32)
    outputs = predictor.predict(x)
    assert set(outputs) == {"y"}
    assert outputs["y"].dtype == np.float32
    np.testing.assert_allclose(outputs["y"], tiny_expected(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(predictor.predict({"x": x})["y"], tiny_expected(x), rtol=1e-6)


def test_example_input_is_stored(registry: Registry, tiny_onnx_path: Path) -> None:
    example = [[1.0, 2.0, 3.0]]
    version = shipyard.register(tiny_onnx_path, "tiny", example_input=example, registry=registry)
    assert version.input_example == example
    predictor = shipyard.load("tiny", registry=registry)
    np.testing.assert_allclose(
        predictor.predict(version.input_example)["y"], tiny_expected(np.array(example)), rtol=1e-6
    )


def test_register_with_settings_only(settings: Settings, tiny_onnx_path: Path) -> None:
    version = shipyard.register(tiny_onnx_path, "tiny", settings=settings)
    assert version.version == 1
    predictor = shipyard.load("tiny:1", settings=settings)
    np.testing.assert_allclose(
        predictor.predict(np.eye(3))["y"], tiny_expected(np.eye(3)), rtol=1e-6
    )


def _assert_nothing_registered(settings: Settings, name: str) -> None:
    with Registry(settings) as registry, pytest.raises(ModelNotFoundError, match=repr(name)):
        registry.get_model(name)
    assert version_rows(settings) == 0
    assert blob_files(settings) == []
    assert tmp_files(settings) == []


def test_corrupt_onnx_is_refused(settings: Settings, tmp_path: Path) -> None:
    corrupt = tmp_path / "x.onnx"
    corrupt.write_bytes(np.random.default_rng(7).bytes(4096))
    with pytest.raises(CorruptModelError, match=r"x\.onnx is not a valid ONNX model"):
        shipyard.register(corrupt, "broken", settings=settings)
    _assert_nothing_registered(settings, "broken")


def test_truncated_onnx_is_refused(
    settings: Settings, tiny_onnx_path: Path, tmp_path: Path
) -> None:
    truncated = tmp_path / "half.onnx"
    data = tiny_onnx_path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptModelError, match=r"half\.onnx"):
        shipyard.register(truncated, "half", settings=settings)
    _assert_nothing_registered(settings, "half")


def test_missing_file(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"missing\.onnx does not exist"):
        shipyard.register(tmp_path / "missing.onnx", "missing", settings=settings)
    _assert_nothing_registered(settings, "missing")


def test_onnx_that_cannot_run_its_example(registry: Registry, tiny_onnx_path: Path) -> None:
    from shipyard.errors import SignatureMismatchError

    with pytest.raises(SignatureMismatchError, match=r"input 'x' expects shape \[-1, 3\]"):
        shipyard.register(
            tiny_onnx_path, "tiny", example_input=[[1.0, 2.0, 3.0, 4.0]], registry=registry
        )
    with pytest.raises(ModelNotFoundError, match="'tiny'"):
        registry.get_model("tiny")


@pytest.mark.parametrize(
    ("source", "flavor", "match"),
    [
        ("model.txt", None, r"cannot tell the flavor of .*model\.txt"),
        ("model.h5", None, r"cannot tell the flavor"),
        ("tiny.onnx", "caffe", r"unknown flavor 'caffe'"),
        (object(), None, r"cannot register an object of type builtins\.object"),
        ({"weights": [1, 2]}, None, r"cannot register an object of type builtins\.dict"),
    ],
)
def test_unknown_flavor(
    settings: Settings,
    tiny_onnx_path: Path,
    source: object,
    flavor: str | None,
    match: str,
) -> None:
    if isinstance(source, str):
        source = tiny_onnx_path.parent / source
        if source.suffix != ".onnx":
            source.write_text("not a model")
    with pytest.raises(UnknownFlavorError, match=match):
        shipyard.register(source, "tiny", flavor=flavor, settings=settings)
    assert not settings.home.exists()  # refused before the registry was even opened


def test_folder_without_config_json(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    with pytest.raises(UnknownFlavorError, match=r"folder without config\.json"):
        shipyard.register(folder, "folder", settings=settings)


def test_onnx_flavor_needs_a_path(settings: Settings) -> None:
    with pytest.raises(InvalidInputError, match="the onnx flavor takes a path, got list"):
        shipyard.register([1, 2, 3], "tiny", flavor="onnx", settings=settings)


@pytest.mark.parametrize("name", ["Tiny", "a/b", "..", "", "a" * 65])
def test_register_refuses_bad_names(settings: Settings, tiny_onnx_path: Path, name: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid model name"):
        shipyard.register(tiny_onnx_path, name, settings=settings)
    assert not settings.home.exists()


def test_register_refuses_bad_alias(settings: Settings, tiny_onnx_path: Path) -> None:
    with pytest.raises(InvalidNameError, match="invalid alias name 'Prod'"):
        shipyard.register(tiny_onnx_path, "tiny", alias="Prod", settings=settings)


@pytest.mark.parametrize("tolerance", [-0.1, 1.0, 5.0])
def test_register_refuses_bad_tolerance(
    settings: Settings, tiny_onnx_path: Path, tolerance: float
) -> None:
    with pytest.raises(InvalidInputError, match=r"tolerance must be in \[0, 1\)"):
        shipyard.register(tiny_onnx_path, "tiny", tolerance=tolerance, settings=settings)
