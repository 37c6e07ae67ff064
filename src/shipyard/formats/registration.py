"""``shipyard.register``: convert any supported source to ONNX, check it, store it as a version."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.formats.base import Converted
from shipyard.formats.flavors import check_flavor, convert, detect_flavor
from shipyard.formats.options import RegistrationOptions
from shipyard.formats.reference import (
    EXAMPLE_ROWS,
    example_to_json,
    read_example,
    read_reference,
    validate_reference,
    write_reference,
)
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
    ``example_input``), a Keras 3 model or ``.keras`` file (on the torch backend), a path to
    an ``.onnx`` file, a Hugging Face model folder, or a pickled scikit-learn file (only with
    ``trust_pickle=True``). The model is converted to
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
        converted = convert(source, flavor, staging, example, reference, options)
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
