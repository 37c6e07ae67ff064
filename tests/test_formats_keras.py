"""Keras 3 models on the torch backend, from memory and from .keras files, exported to ONNX."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from helpers import blob_files, version_rows
from shipyard import Registry, Settings
from shipyard.errors import CorruptModelError, InvalidInputError
from shipyard.formats.flavors import FLAVORS, detect_flavor
from shipyard.formats.keras import import_keras
from shipyard.registry import TensorSpec

keras = import_keras()
# keras 3.15's predict hands numpy torch tensors whose __array__ predates numpy 2's copy=
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


@pytest.fixture(scope="module")
def split_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 8x8 digits as (n, 8, 8, 1) images in [0, 1]: 1500 to train on, the rest held out."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    images = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    return images[:1500], y[:1500], images[1500:], y[1500:]


@pytest.fixture(scope="module")
def cnn(split_digits: tuple[np.ndarray, ...]) -> Any:
    x_train, y_train, _, _ = split_digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.2),  # must be off in the exported graph
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=2, batch_size=32, verbose=0)
    return model


@pytest.fixture
def reference(tmp_path: Path, split_digits: tuple[np.ndarray, ...]) -> Path:
    path = tmp_path / "reference.npy"
    np.save(path, split_digits[0][:200])
    return path


def assert_same_predictions(model: Any, predictor: Any, images: np.ndarray) -> None:
    expected = model.predict(images, verbose=0)
    got = predictor.predict(images)["output"]
    assert got.shape == (len(images), 10)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))


def test_the_keras_flavors_are_known() -> None:
    assert "keras" in FLAVORS
    assert "keras-file" in FLAVORS
    assert detect_flavor(Path("model.keras")) == "keras-file"


def test_a_model_object_registers_with_a_dynamic_batch(
    registry: Registry, cnn: Any, reference: Path, split_digits: tuple[np.ndarray, ...]
) -> None:
    version = shipyard.register(cnn, "digits", reference_data=reference, registry=registry)
    assert version.flavor == "keras"
    assert version.signature.inputs == (TensorSpec("input", "FP32", (-1, 8, 8, 1)),)
    assert version.signature.outputs == (TensorSpec("output", "FP32", (-1, 10)),)
    parity = version.conversion["parity"]
    assert parity["passed"] is True
    assert parity["rows"] == 200
    assert version.conversion["model"] == "Sequential"
    assert version.conversion["source_library"].endswith("(torch backend)")

    _, _, x_test, y_test = split_digits
    predictor = shipyard.load("digits", registry=registry)
    assert_same_predictions(cnn, predictor, x_test)
    accuracy = float((predictor.predict(x_test)["output"].argmax(axis=1) == y_test).mean())
    assert accuracy > 0.5  # two epochs of a small CNN: well above chance


def test_without_example_or_reference_parity_runs_on_random_rows(
    registry: Registry, cnn: Any, split_digits: tuple[np.ndarray, ...]
) -> None:
    version = shipyard.register(cnn, "digits", registry=registry)
    assert version.conversion["parity"]["passed"] is True
    assert version.conversion["parity"]["rows"] == 8
    assert np.asarray(version.input_example["input"]).shape == (1, 8, 8, 1)
    assert_same_predictions(cnn, shipyard.load("digits", registry=registry), split_digits[2][:5])


def test_a_single_row_example(registry: Registry, cnn: Any) -> None:
    example = np.zeros((1, 8, 8, 1), dtype=np.float64)
    version = shipyard.register(cnn, "digits", example_input=example, registry=registry)
    assert version.conversion["parity"]["rows"] == 3  # a single row is checked as a batch of 3
    assert np.asarray(version.input_example).shape == (1, 8, 8, 1)


def test_a_keras_file_registers(
    registry: Registry, cnn: Any, tmp_path: Path, split_digits: tuple[np.ndarray, ...]
) -> None:
    path = tmp_path / "digits.keras"
    cnn.save(path)
    version = shipyard.register(path, "digits", registry=registry)
    assert version.flavor == "keras-file"
    assert version.conversion["keras_file"] == "digits.keras"
    assert version.conversion["parity"]["passed"] is True
    assert_same_predictions(cnn, shipyard.load("digits", registry=registry), split_digits[2])

    named = shipyard.register(path, "digits", flavor="keras", registry=registry)
    assert named.flavor == "keras"  # the keras flavor given a path reads it as a .keras file
    assert named.version == 2


def test_a_keras_file_must_be_named_so(settings: Settings, cnn: Any, tmp_path: Path) -> None:
    path = tmp_path / "digits.bin"
    cnn.save(tmp_path / "digits.keras")
    (tmp_path / "digits.keras").rename(path)
    with pytest.raises(InvalidInputError, match=r"digits\.bin is not named \*\.keras: .*rename"):
        shipyard.register(path, "digits", flavor="keras", settings=settings)


def test_a_keras_file_that_is_not_an_archive(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    path.write_text("these are not the weights you are looking for")
    with pytest.raises(CorruptModelError) as info:
        shipyard.register(path, "digits", settings=settings)
    assert info.value.message.startswith(f"{path} is not a Keras archive: a .keras file is the zip")
    assert version_rows(settings) == 0
    assert blob_files(settings) == []


def test_a_zip_that_is_not_a_keras_model(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "no config.json, no weights")
    with pytest.raises(CorruptModelError, match=r"^cannot load .*model\.keras as a Keras model: "):
        shipyard.register(path, "digits", settings=settings)
    assert version_rows(settings) == 0


def test_a_missing_keras_file(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"model file .*absent\.keras does not exist"):
        shipyard.register(tmp_path / "absent.keras", "digits", settings=settings)


def test_an_example_the_model_cannot_run(settings: Settings, cnn: Any) -> None:
    with pytest.raises(InvalidInputError, match="cannot run its example input"):
        shipyard.register(cnn, "digits", example_input=np.zeros((2, 5)), settings=settings)
    assert version_rows(settings) == 0


def test_keras_on_another_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(InvalidInputError, match=r"^Keras is set to the jax backend; .*torch"):
        import_keras()


def test_another_backend_asked_for_before_import_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.delitem(sys.modules, "keras")
    with pytest.raises(InvalidInputError, match="Set KERAS_BACKEND=torch before Keras"):
        import_keras()
    assert "keras" not in sys.modules
