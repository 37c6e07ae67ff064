"""Load a registered version as a Predictor: resolve, verify every file, build the session."""

from __future__ import annotations

from shipyard.registry import ModelRef, Registry, registry_from
from shipyard.runtime.predictor import Predictor
from shipyard.runtime.session import Threading
from shipyard.settings import Settings


def load(
    ref: str | ModelRef,
    registry: Registry | Settings,
    *,
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
) -> Predictor:
    """The verified files of ``ref`` in ``registry`` (or in the registry of these settings)
    behind a Predictor; thread counts not given come from the registry's settings."""
    with registry_from(registry) as source:
        version = source.get_version(ref)
        files = source.read_files(version)
        base = source.settings
    threading = Threading(
        intra_op=base.intra_op_threads if intra_op_threads is None else intra_op_threads,
        inter_op=base.inter_op_threads if inter_op_threads is None else inter_op_threads,
    )
    return Predictor.from_version(version, files, threading)
