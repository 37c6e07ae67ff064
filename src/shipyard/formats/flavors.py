"""The flavors a model registers as: one declaration each of how a source of that flavor is
recognised, what the flavor accepts and which converter turns it into ONNX.

``FLAVORS``, detection, the flavor check and the choice of converter all read ``TABLE``; a
new flavor is one more entry there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError, UnknownFlavorError
from shipyard.formats.base import Converted, Samples
from shipyard.formats.huggingface import convert_huggingface
from shipyard.formats.keras import convert_keras, is_keras_model, load_keras_file
from shipyard.formats.onnx_file import convert_onnx_file
from shipyard.formats.options import RegistrationOptions
from shipyard.formats.pickle_file import load_pickle
from shipyard.formats.pytorch import convert_pytorch
from shipyard.formats.reference import ReferenceData
from shipyard.formats.sklearn import convert_sklearn

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
MAX_PARITY_ROWS = 256


@dataclass(frozen=True)
class Conversion:
    """What a converter is given besides the source."""

    staging: Path  # where its files go
    example: Any  # the input example, as read
    samples: Samples | None  # rows (texts for a text model) to check parity on
    options: RegistrationOptions


@dataclass(frozen=True)
class Flavor:
    name: str
    takes_path: bool  # a file or a folder; else a model object in memory
    recognises: Callable[[Any], bool]  # a Path (or an object) of this flavor?
    convert: Callable[[Any, Conversion], Converted]  # given a Path, or the object
    reads_texts: bool = False  # its parity samples are texts
    takes_tokenizer: bool = False  # it may be declared a text model (RegistrationOptions.text)
    # A model object of this flavor given as a path instead: registered as this flavor...
    saved_as: str | None = None
    # ...or, when it has no file form, refused with this.
    path_refusal: str | None = None


def _suffix(*suffixes: str) -> Callable[[Path], bool]:
    return lambda path: path.suffix in suffixes and not path.is_dir()


def _model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def _library(obj: object) -> str:
    return type(obj).__module__.split(".")[0]


def _is_estimator(obj: object) -> bool:
    return _library(obj) == "sklearn" or (hasattr(obj, "fit") and hasattr(obj, "get_params"))


def _is_torch_module(obj: object) -> bool:
    return _library(obj) == "torch" or any(
        cls.__module__.startswith("torch.nn") and cls.__name__ == "Module"
        for cls in type(obj).__mro__
    )


def _onnx(path: Path, job: Conversion) -> Converted:
    return convert_onnx_file(path, job.staging, job.samples, job.options.text)


def _huggingface(folder: Path, job: Conversion) -> Converted:
    sentences = job.samples if isinstance(job.samples, list) else None
    return convert_huggingface(folder, job.staging, sentences, job.options.tolerance)


def _pickle(path: Path, job: Conversion) -> Converted:
    estimator = load_pickle(path, trust_pickle=job.options.trust_pickle)
    converted = _sklearn(estimator, job)
    converted.details["pickled"] = True
    return converted


def _sklearn(estimator: Any, job: Conversion) -> Converted:
    return convert_sklearn(estimator, job.staging, job.samples, job.options.tolerance)


def _pytorch(module: Any, job: Conversion) -> Converted:
    return convert_pytorch(module, job.staging, job.example, job.samples, job.options.tolerance)


def _keras(model: Any, job: Conversion) -> Converted:
    return convert_keras(model, job.staging, job.example, job.samples, job.options.tolerance)


def _keras_file(path: Path, job: Conversion) -> Converted:
    converted = _keras(load_keras_file(path), job)
    converted.details["keras_file"] = path.name
    return converted


TABLE = (
    Flavor(
        "onnx",
        takes_path=True,
        recognises=_suffix(".onnx"),
        convert=_onnx,
        takes_tokenizer=True,
    ),
    Flavor(
        "sklearn",
        takes_path=False,
        recognises=_is_estimator,
        convert=_sklearn,
        saved_as="pickle",  # a scikit-learn model on disk is a pickle
    ),
    Flavor(  # before pytorch: on the torch backend a Keras model is a torch.nn.Module too
        "keras",
        takes_path=False,
        recognises=is_keras_model,
        convert=_keras,
        saved_as="keras-file",
    ),
    Flavor(
        "pytorch",
        takes_path=False,
        recognises=_is_torch_module,
        convert=_pytorch,
        path_refusal="a PyTorch model registers from Python (shipyard.register(module, ...)) "
        "with an example input, or from the CLI once exported to .onnx",
    ),
    Flavor(
        "huggingface",
        takes_path=True,
        recognises=_model_folder,
        convert=_huggingface,
        reads_texts=True,
    ),
    Flavor(
        "pickle",
        takes_path=True,
        recognises=_suffix(*PICKLE_SUFFIXES),
        convert=_pickle,
    ),
    Flavor(
        "keras-file",
        takes_path=True,
        recognises=_suffix(".keras"),
        convert=_keras_file,
    ),
)
FLAVORS = tuple(flavor.name for flavor in TABLE)
_BY_NAME = {flavor.name: flavor for flavor in TABLE}


def detect_flavor(source: object) -> str:
    """The flavor of a path or an in-memory model object."""
    if isinstance(source, str | Path):
        path = Path(source)
        for flavor in TABLE:
            if flavor.takes_path and flavor.recognises(path):
                return flavor.name
        if path.is_dir():
            raise UnknownFlavorError(
                f"{path} is a folder without config.json; Shipyard reads Hugging Face model "
                "folders (config.json, safetensors weights, tokenizer.json)"
            )
        raise UnknownFlavorError(
            f"cannot tell the flavor of {path}: expected an .onnx file, a pickled scikit-learn "
            f"model ({', '.join(PICKLE_SUFFIXES)}), a Keras .keras file or a Hugging Face model "
            f"folder; pass flavor= one of {', '.join(FLAVORS)}"
        )
    for flavor in TABLE:
        if not flavor.takes_path and flavor.recognises(source):
            return flavor.name
    raise UnknownFlavorError(
        f"cannot register an object of type {type(source).__module__}.{type(source).__name__}: "
        f"expected a scikit-learn estimator, a torch.nn.Module, a Keras model or a path; known "
        f"flavors are {', '.join(FLAVORS)}"
    )


def check_flavor(flavor: str) -> str:
    if flavor not in _BY_NAME:
        raise UnknownFlavorError(
            f"unknown flavor {flavor!r}; known flavors are {', '.join(FLAVORS)}"
        )
    return flavor


def convert(
    source: Any,
    name: str,
    staging: Path,
    example: Any,
    reference: ReferenceData | None,
    options: RegistrationOptions,
) -> Converted:
    """``source`` converted by the converter of flavor ``name``, once the flavor accepts it."""
    flavor = _BY_NAME[name]
    samples = _samples(example, reference, flavor.reads_texts)
    if options.text is not None and not flavor.takes_tokenizer:
        raise InvalidInputError("a tokenizer is declared only for an ONNX encoder (.onnx file)")
    is_path = isinstance(source, str | Path)
    if flavor.takes_path and not is_path:
        raise InvalidInputError(f"the {name} flavor takes a path, got {type(source).__name__}")
    if is_path and not flavor.takes_path:
        if flavor.saved_as is None:
            raise InvalidInputError(
                flavor.path_refusal or f"the {name} flavor takes a model object, not a path"
            )
        flavor = _BY_NAME[flavor.saved_as]
    job = Conversion(staging, example, samples, options)
    return flavor.convert(Path(source) if is_path else source, job)


def _samples(example: Any, reference: ReferenceData | None, texts: bool) -> Samples | None:
    if reference is not None:
        head = reference.head(MAX_PARITY_ROWS)
        return head if isinstance(head, list) else np.asarray(head)
    if example is None:
        return None
    if texts:
        return [example] if isinstance(example, str) else [str(t) for t in example]
    if isinstance(example, dict):
        return None
    try:
        return np.asarray(example)
    except ValueError as exc:
        raise InvalidInputError(f"the input example is not a rectangular array: {exc}") from None
