"""Load a registered version as a Predictor: resolve, verify every file, build the session."""

from __future__ import annotations

from collections.abc import Mapping

from shipyard.registry import ModelRef, ModelVersion, Registry, registry_from
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
        base = source.settings
        threading = Threading(
            intra_op=base.intra_op_threads if intra_op_threads is None else intra_op_threads,
            inter_op=base.inter_op_threads if inter_op_threads is None else inter_op_threads,
        )
        return load_version(source, source.get_version(ref), threading)


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
