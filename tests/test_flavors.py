"""The flavor table: how each source is recognised, what each flavor accepts, and where a
source the flavor does not take is refused."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard import Registry
from shipyard.errors import InvalidInputError, UnknownFlavorError
from shipyard.formats import FLAVORS, RegistrationOptions, TextOptions
from shipyard.formats.flavors import TABLE, convert, detect_flavor


def test_the_flavors_are_the_table_in_order() -> None:
    assert FLAVORS == (
        "onnx",
        "sklearn",
        "keras",
        "pytorch",
        "huggingface",
        "pickle",
        "keras-file",
    )
    assert tuple(flavor.name for flavor in TABLE) == FLAVORS


@pytest.mark.parametrize(
    ("name", "flavor"),
    [
        ("m.onnx", "onnx"),
        ("m.pkl", "pickle"),
        ("m.pickle", "pickle"),
        ("m.joblib", "pickle"),
        ("m.keras", "keras-file"),
    ],
)
def test_files_are_told_by_their_suffix(tmp_path: Path, name: str, flavor: str) -> None:
    assert detect_flavor(tmp_path / name) == flavor  # whether or not the file exists yet
    assert detect_flavor(str(tmp_path / name)) == flavor


def test_a_folder_is_a_hugging_face_model_only_with_config_json(tmp_path: Path) -> None:
    folder = tmp_path / "looks-like.onnx"
    folder.mkdir()
    with pytest.raises(UnknownFlavorError, match=r"looks-like\.onnx is a folder without config"):
        detect_flavor(folder)
    (folder / "config.json").write_text("{}")
    assert detect_flavor(folder) == "huggingface"


def test_an_estimator_is_told_by_its_methods() -> None:
    class Estimator:
        def fit(self) -> None: ...

        def get_params(self) -> dict[str, Any]:
            return {}

    assert detect_flavor(Estimator()) == "sklearn"


def test_a_tokenizer_is_only_for_an_onnx_encoder(tmp_path: Path) -> None:
    options = RegistrationOptions(text=TextOptions(tmp_path / "tokenizer.json"))
    with pytest.raises(
        InvalidInputError,
        match=r"^a tokenizer is declared only for an ONNX encoder \(\.onnx file\)$",
    ):
        convert(tmp_path / "m.pkl", "pickle", tmp_path, None, None, options)


def test_a_pytorch_model_is_not_a_path(tmp_path: Path) -> None:
    message = (
        "a PyTorch model registers from Python (shipyard.register(module, ...)) with an example "
        "input, or from the CLI once exported to .onnx"
    )
    with pytest.raises(InvalidInputError) as info:
        convert(tmp_path / "model.pt", "pytorch", tmp_path, None, None, RegistrationOptions())
    assert info.value.message == message


@pytest.mark.parametrize("flavor", ["onnx", "huggingface", "pickle", "keras-file"])
def test_path_flavors_take_a_path(tmp_path: Path, flavor: str) -> None:
    with pytest.raises(InvalidInputError, match=f"^the {flavor} flavor takes a path, got dict$"):
        convert({}, flavor, tmp_path, None, None, RegistrationOptions())


def test_a_scikit_learn_model_on_disk_registers_as_a_pickle(
    registry: Registry, cancer_classifier: Any, cancer_csv: Path, tmp_path: Path
) -> None:
    path = tmp_path / "model.bin"  # a suffix that says nothing: the flavor is given
    path.write_bytes(pickle.dumps(cancer_classifier))
    version = shipyard.register(
        path,
        "cancer",
        flavor="sklearn",
        trust_pickle=True,
        reference_data=cancer_csv,
        registry=registry,
    )
    assert version.flavor == "sklearn"
    assert version.conversion["pickled"] is True
