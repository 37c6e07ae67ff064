"""Where models live: metadata in SQL, artifacts in a content-addressed store.

Imports nothing above itself (formats, runtime, server... build on it).
"""

from shipyard.registry.domain import (
    ArtifactFile,
    Event,
    Model,
    ModelKind,
    ModelVersion,
    NewVersion,
    Signature,
    TensorSpec,
    VersionStatus,
    plain,
)
from shipyard.registry.names import ModelRef, validate_name
from shipyard.registry.registry import (
    ProgressFactory,
    Registry,
    quiet_progress,
    registry_from,
)

__all__ = [
    "ArtifactFile",
    "Event",
    "Model",
    "ModelKind",
    "ModelRef",
    "ModelVersion",
    "NewVersion",
    "ProgressFactory",
    "Registry",
    "Signature",
    "TensorSpec",
    "VersionStatus",
    "plain",
    "quiet_progress",
    "registry_from",
    "validate_name",
]
