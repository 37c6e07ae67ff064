"""A version's reference profile: built once from its reference data and the model's own
outputs on it, then kept in the database next to the version."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from shipyard.formats.reference import stored_reference
from shipyard.monitor.profile import Profile
from shipyard.registry import ModelKind, ModelVersion, Registry
from shipyard.runtime.loading import load_version
from shipyard.runtime.predictor import Predictor
from shipyard.runtime.session import Threading

log = logging.getLogger("shipyard.monitor")

PROFILE_BATCH = 256  # reference rows per model call while profiling


def reference_profile(
    registry: Registry, version: ModelVersion, predictor: Predictor | None = None
) -> Profile | None:
    """The stored profile, or one built now from the reference data (None without any)."""
    store = registry.monitoring
    stored = store.get_profile(version)
    if stored is not None:
        return Profile.from_dict(stored)
    if not version.conversion.get("reference_data"):
        return None  # nothing to profile, and no file to read (a load has verified them)
    files = registry.read_files(version)
    reference = stored_reference(files)
    if reference is None:
        return None
    if predictor is None:
        predictor = load_version(registry, version, Threading(intra_op=1), files)
    profile = build_profile(version, predictor, reference)
    store.put_profile(version, profile.to_dict())
    return profile


def profile_registered(registry: Registry, version: ModelVersion) -> None:
    """Profile a version just registered; a failure is logged (the server profiles later)."""
    try:
        reference_profile(registry, version)
    except Exception:
        log.exception("profiling %s failed; it is profiled again when served", version.ref)


def build_profile(
    version: ModelVersion, predictor: Predictor, reference: np.ndarray | list[str]
) -> Profile:
    input_name = version.signature.inputs[0].name  # reference data fits one-input models
    outputs: dict[str, list[Any]] = {}
    for start in range(0, len(reference), PROFILE_BATCH):
        chunk = reference[start : start + PROFILE_BATCH]
        for name, value in predictor.predict(chunk).items():
            outputs.setdefault(name, []).append(value)
    joined = {name: np.concatenate(parts) for name, parts in outputs.items()}
    values: Any = reference
    if version.kind is ModelKind.TEXT_EMBEDDING:
        values = np.asarray(reference, dtype=object)
    columns = version.conversion.get("reference_data", {}).get("columns")
    return Profile.build(
        version.signature,
        version.kind,
        {input_name: values},
        joined,
        columns or version.conversion.get("feature_names"),
    )
