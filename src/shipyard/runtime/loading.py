"""Load a registered version as a Predictor: resolve, verify every file, build the session."""

from __future__ import annotations

from shipyard.registry import ModelRef, Registry
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
    try:
        version = registry.get_version(ref)
        files = registry.read_files(version)
    finally:
        if owned:
            registry.close()
    base = registry.settings
    threading = Threading(
        intra_op=base.intra_op_threads if intra_op_threads is None else intra_op_threads,
        inter_op=base.inter_op_threads if inter_op_threads is None else inter_op_threads,
    )
    return Predictor.from_version(version, files, threading)
