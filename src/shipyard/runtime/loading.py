"""Load a registered version as a Predictor: resolve, verify every file, build the session."""

from __future__ import annotations

from collections.abc import Mapping

from shipyard.registry import ModelRef, ModelVersion, Registry
from shipyard.runtime.predictor import Predictor
from shipyard.runtime.session import Threading
from shipyard.settings import Settings


def load(
    ref: str | ModelRef,
    *,
    registry: Registry | None = None,
    settings: Settings | None = None,
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
) -> Predictor:
    """``shipyard.load("fraud@production")``: the version's verified files behind a Predictor."""
    owned = registry is None
    registry = registry or Registry(settings)
    base = registry.settings
    threading = Threading(
        intra_op=base.intra_op_threads if intra_op_threads is None else intra_op_threads,
        inter_op=base.inter_op_threads if inter_op_threads is None else inter_op_threads,
    )
    try:
        return load_version(registry, registry.get_version(ref), threading)
    finally:
        if owned:
            registry.close()


def load_version(
    registry: Registry,
    version: ModelVersion,
    threading: Threading,
    files: Mapping[str, bytes] | None = None,
) -> Predictor:
    """``version`` behind a Predictor running with ``threading``: its files read and
    verified now, unless ``files`` holds them read and verified already."""
    if files is None:
        files = registry.read_files(version)
    return Predictor.from_version(version, files, threading)
