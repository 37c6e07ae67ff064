"""``shipyard.register``: convert any supported source to ONNX, check it, store it as a version."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError
from shipyard.formats.base import Converted, Samples, check_flavor, detect_flavor
from shipyard.formats.huggingface import convert_huggingface
from shipyard.formats.onnx_file import convert_onnx_file
from shipyard.formats.options import RegistrationOptions
from shipyard.formats.pickle_file import load_pickle
from shipyard.formats.pytorch import convert_pytorch
from shipyard.formats.reference import (
    EXAMPLE_ROWS,
    ReferenceData,
    example_to_json,
    read_example,
    read_reference,
    validate_reference,
    write_reference,
)
from shipyard.formats.sklearn import convert_sklearn
from shipyard.registry import (
    ModelKind,
    ModelVersion,
    NewVersion,
    ProgressFactory,
    Registry,
    Signature,
    quiet_progress,
    registry_from,
    validate_name,
)
from shipyard.runtime.predictor import MODEL_FILE, Predictor
from shipyard.runtime.session import V2_TO_NUMPY
from shipyard.settings import Settings

MAX_PARITY_ROWS = 256


def register(
    source: Any,
    name: str,
    registry: Registry | Settings,
    options: RegistrationOptions | None = None,
    *,
    progress: ProgressFactory = quiet_progress,
) -> ModelVersion:
    """Register a model as the next version of ``name`` in ``registry`` (or in the registry
    of these settings, opened only once the source and the options are checked).

    ``source`` is a scikit-learn estimator or Pipeline, a ``torch.nn.Module`` (with
    ``example_input``), a path to an ``.onnx`` file, a Hugging Face model folder, or a
    pickled scikit-learn file (only with ``trust_pickle=True``). The model is converted to
    ONNX once, here, and refused when its outputs differ from the source's by more than
    ``tolerance`` (unless ``allow_parity_failure``). ``text`` declares an ONNX encoder a
    text-embedding model (its tokenizer.json, pooling and normalisation). Nothing is
    stored unless every step succeeds.
    """
    validate_name(name)
    options = options if options is not None else RegistrationOptions()
    flavor = check_flavor(options.flavor) if options.flavor is not None else detect_flavor(source)
    reference = (
        read_reference(Path(options.reference_data)) if options.reference_data is not None else None
    )
    example = read_example(options.example_input)

    with (
        registry_from(registry) as target,
        tempfile.TemporaryDirectory(prefix="shipyard-stage-") as tmp,
    ):
        staging = Path(tmp)
        done = progress(f"convert {flavor} model", 0)
        converted = _convert(source, flavor, staging, example, reference, options)
        done(1)
        if converted.parity is not None:
            converted.parity.enforce(f"{name} ({flavor})", options.allow_parity_failure)
        files = dict(converted.files)
        conversion: dict[str, Any] = {**converted.details, "flavor": flavor}
        if converted.parity is not None:
            conversion["parity"] = converted.parity.to_dict()
        if converted.feature_names is not None:
            conversion["feature_names"] = converted.feature_names
        checked_reference: np.ndarray | list[str] | None = None
        if reference is not None:
            checked_reference = validate_reference(
                reference, converted.signature, converted.kind, converted.feature_names
            )
            file_name, path = write_reference(checked_reference, staging)
            files[file_name] = path
            conversion["reference_data"] = {
                "file": file_name,
                "rows": len(checked_reference),
                "source": Path(reference.source).name,
                "columns": reference.columns or converted.feature_names,
            }
        stored_example = _example(example, checked_reference, converted)
        return target.create_version(
            name,
            NewVersion(
                flavor=flavor,
                kind=converted.kind,
                signature=converted.signature,
                files=files,
                input_example=example_to_json(stored_example),
                metrics=dict(options.metrics),
                tags=dict(options.tags),
                conversion=conversion,
                run_id=options.run_id,
                parent_version=options.parent_version,
                description=options.description,
            ),
            alias=options.alias,
            progress=progress,
        )


def _samples(example: Any, reference: ReferenceData | None, flavor: str) -> Samples | None:
    if reference is not None:
        head = reference.head(MAX_PARITY_ROWS)
        return head if isinstance(head, list) else np.asarray(head)
    if example is None:
        return None
    if flavor == "huggingface":
        return [example] if isinstance(example, str) else [str(t) for t in example]
    if isinstance(example, dict):
        return None
    try:
        return np.asarray(example)
    except ValueError as exc:
        raise InvalidInputError(f"the input example is not a rectangular array: {exc}") from None


def _convert(
    source: Any,
    flavor: str,
    staging: Path,
    example: Any,
    reference: ReferenceData | None,
    options: RegistrationOptions,
) -> Converted:
    samples = _samples(example, reference, flavor)
    tolerance, text = options.tolerance, options.text
    if text is not None and flavor != "onnx":
        raise InvalidInputError("a tokenizer is declared only for an ONNX encoder (.onnx file)")
    if flavor in ("onnx", "huggingface", "pickle") and not isinstance(source, str | Path):
        raise InvalidInputError(f"the {flavor} flavor takes a path, got {type(source).__name__}")
    if isinstance(source, str | Path):
        if flavor == "sklearn":
            flavor = "pickle"  # a scikit-learn model on disk is a pickle
        elif flavor == "pytorch":
            raise InvalidInputError(
                "a PyTorch model registers from Python (shipyard.register(module, ...)) with an "
                "example input, or from the CLI once exported to .onnx"
            )
    if flavor == "onnx":
        return convert_onnx_file(Path(source), staging, samples, text)
    if flavor == "huggingface":
        sentences = samples if isinstance(samples, list) else None
        return convert_huggingface(Path(source), staging, sentences, tolerance)
    if flavor == "pickle":
        estimator = load_pickle(Path(source), trust_pickle=options.trust_pickle)
        converted = convert_sklearn(estimator, staging, samples, tolerance)
        converted.details["pickled"] = True
        return converted
    if flavor == "sklearn":
        return convert_sklearn(source, staging, samples, tolerance)
    return convert_pytorch(source, staging, example, samples, tolerance)


def _example(example: Any, reference: np.ndarray | list[str] | None, converted: Converted) -> Any:
    """The stored input example: the one given, else the first reference rows, else zeros."""
    signature = converted.signature
    if example is not None:
        value = example
    elif reference is not None:
        value = reference[:EXAMPLE_ROWS]
    elif converted.kind is ModelKind.TEXT_EMBEDDING:
        value = ["an example sentence"]
    else:
        value = {spec.name: _zeros(spec.shape, spec.datatype) for spec in signature.inputs}
    _check_runs(value, converted, signature)
    return value


def _zeros(shape: tuple[int, ...], datatype: str) -> np.ndarray:
    concrete = tuple(1 if d < 0 else d for d in shape)
    if datatype == "BYTES":
        return np.full(concrete, "", dtype=object)
    return np.zeros(concrete, dtype=V2_TO_NUMPY[datatype])


def _check_runs(example: Any, converted: Converted, signature: Signature) -> None:
    """The stored example must be one the model accepts."""
    files = {path: p.read_bytes() for path, p in converted.files.items() if path != MODEL_FILE}
    files[MODEL_FILE] = converted.files[MODEL_FILE].read_bytes()
    Predictor(files, signature, converted.kind).predict(example)
