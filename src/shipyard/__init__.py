"""Shipyard: take a trained model to production and keep it healthy there.

The public API, kept small on purpose (a test pins it)::

    import shipyard
    shipyard.register(estimator, name="fraud", reference_data="train.csv", alias="production")
    predictor = shipyard.load("fraud@production")
    predictor.predict(rows)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError
from shipyard.registry import ModelRef, ModelVersion, Registry
from shipyard.settings import Settings
from shipyard.version import __version__

if TYPE_CHECKING:
    from shipyard.runtime.predictor import Predictor

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
]


def register(source: Any, name: str, **options: Any) -> ModelVersion:
    """Register a model as the next version of ``name``; see ``shipyard.formats.register``.

    The version's reference profile (what monitoring compares traffic with) is built here
    too, when it has reference data."""
    from shipyard.formats.registration import register as _register
    from shipyard.monitor.references import profile_registered

    version = _register(source, name, **options)
    if version.conversion.get("reference_data"):
        registry = options.get("registry")
        if registry is not None:
            profile_registered(registry, version)
        else:
            with Registry(options.get("settings")) as owned:
                profile_registered(owned, version)
    return version


def load(ref: str | ModelRef, **options: Any) -> Predictor:
    """Load ``name``, ``name:3`` or ``name@alias`` as a Predictor; see ``shipyard.runtime.load``."""
    from shipyard.runtime.loading import load as _load

    return _load(ref, **options)


def __getattr__(name: str) -> Any:
    # Predictor lives behind ONNX Runtime, which `import shipyard` does not pay for.
    if name == "Predictor":
        from shipyard.runtime.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
