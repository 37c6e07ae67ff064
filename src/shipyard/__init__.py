"""Shipyard: take a trained model to production and keep it healthy there.

The public API, kept small on purpose (a test pins it)::

    import shipyard
    shipyard.register(estimator, name="fraud", reference_data="train.csv", alias="production")
    predictor = shipyard.load("fraud@production")
    predictor.predict(rows)

    with shipyard.start_run("fraud", params={"depth": 3}) as run:
        run.log_metric("auc", 0.97)
        run.register_model(estimator, name="fraud")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError
from shipyard.registry import (
    ModelRef,
    ModelVersion,
    ProgressFactory,
    Registry,
    quiet_progress,
    registry_from,
)
from shipyard.settings import Settings
from shipyard.version import __version__

if TYPE_CHECKING:
    from shipyard.formats.options import RegistrationOptions
    from shipyard.runtime.predictor import Predictor
    from shipyard.tracking import ActiveRun

__all__ = [
    "ModelRef",
    "ModelVersion",
    "Predictor",
    "Registry",
    "Settings",
    "ShipyardError",
    "__version__",
    "load",
    "register",
    "start_run",
]


def register(
    source: Any,
    name: str,
    *,
    options: RegistrationOptions | None = None,
    registry: Registry | None = None,
    settings: Settings | None = None,
    progress: ProgressFactory = quiet_progress,
    **keywords: Any,
) -> ModelVersion:
    """Register a model as the next version of ``name``; see ``shipyard.formats.register``.

    The options are ``options`` (a ``shipyard.formats.RegistrationOptions``) with any of its
    fields given as keywords on top, e.g. ``reference_data="train.csv", alias="production"``;
    a keyword that names no option is a TypeError. The version goes into ``registry``, else
    into the registry of ``settings``, else into the one the environment names. Its
    reference profile (what monitoring compares traffic with) is built here too, when it has
    reference data."""
    from shipyard.formats.options import RegistrationOptions
    from shipyard.formats.registration import register as _register
    from shipyard.monitor.references import profile_registered

    chosen = RegistrationOptions.with_keywords(options, keywords)
    target = _target(registry, settings)
    version = _register(source, name, target, chosen, progress=progress)
    if version.conversion.get("reference_data"):
        with registry_from(target) as opened:
            profile_registered(opened, version)
    return version


def load(
    ref: str | ModelRef,
    *,
    registry: Registry | None = None,
    settings: Settings | None = None,
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
) -> Predictor:
    """Load ``name``, ``name:3`` or ``name@alias`` as a Predictor; see ``shipyard.runtime.load``.

    It comes from ``registry``, else from the registry of ``settings``, else from the one the
    environment names."""
    from shipyard.runtime.loading import load as _load

    return _load(
        ref,
        _target(registry, settings),
        intra_op_threads=intra_op_threads,
        inter_op_threads=inter_op_threads,
    )


def start_run(experiment: str = "default", **keywords: Any) -> ActiveRun:
    """Open a tracking run of ``experiment``; see ``shipyard.tracking.start_run`` for the
    keywords (params, tags, run_id, code_dir, registry, settings)."""
    from shipyard.tracking import start_run as _start_run

    return _start_run(experiment, **keywords)


def _target(registry: Registry | None, settings: Settings | None) -> Registry | Settings:
    # The edge of the Python API: the one place below the CLI and the server that reads the
    # environment, and only when the caller named no registry and no settings.
    if registry is not None:
        return registry
    return settings if settings is not None else Settings()


def __getattr__(name: str) -> Any:
    # Predictor lives behind ONNX Runtime, which `import shipyard` does not pay for.
    if name == "Predictor":
        from shipyard.runtime.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
