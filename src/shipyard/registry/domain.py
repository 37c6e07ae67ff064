"""Plain domain objects the registry takes in and hands out; database rows never leave the
store."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# V2 (Open Inference Protocol) datatype names, the vocabulary of every signature.
DATATYPES = (
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
)  # fmt: skip


class VersionStatus(enum.StrEnum):
    READY = "ready"
    ARCHIVED = "archived"


class ModelKind(enum.StrEnum):
    """What a version's served interface looks like."""

    TENSOR = "tensor"  # tensors in, tensors out
    TEXT_EMBEDDING = "text-embedding"  # strings in, one vector per string out


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # one of DATATYPES
    shape: tuple[int, ...]  # -1 marks a dynamic dimension

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["datatype"]), tuple(int(d) for d in data["shape"]))


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        return cls(
            tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
        )

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


@dataclass(frozen=True)
class ArtifactFile:
    path: str  # logical name inside the version, e.g. "model.onnx"
    digest: str  # sha256 hex
    size: int


@dataclass(frozen=True)
class Model:
    name: str
    description: str | None
    created_at: datetime
    created_by: str | None
    latest_version: int | None = None
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    status: VersionStatus
    flavor: str
    kind: ModelKind
    artifact_digest: str  # sha256 of the version's manifest
    signature: Signature
    input_example: Any
    metrics: dict[str, float]
    tags: dict[str, str]
    conversion: dict[str, Any]  # converter, parity figures, feature names, pipeline facts
    run_id: str | None
    parent_version: int | None
    created_at: datetime
    created_by: str | None
    files: tuple[ArtifactFile, ...]
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, path: str) -> ArtifactFile | None:
        for f in self.files:
            if f.path == path:
                return f
        return None


@dataclass(frozen=True)
class Event:
    id: int
    at: datetime
    model: str
    kind: str
    alias: str | None
    from_version: int | None
    to_version: int | None
    reason: str | None
    actor: str | None
    details: dict[str, Any]


def plain(value: Any) -> Any:
    """A JSON-ready copy of a domain object: dataclasses to dicts, enums to values, times to ISO."""
    if hasattr(value, "__dataclass_fields__"):
        return {name: plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


@dataclass
class NewVersion:
    """Everything a converter produced, staged on disk, ready to become a version."""

    flavor: str
    kind: ModelKind
    signature: Signature
    files: Mapping[str, Path]  # logical name -> staged file
    input_example: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    conversion: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    parent_version: int | None = None
    description: str | None = None

    @classmethod
    def derived_from(cls, parent: ModelVersion, files: Mapping[str, Path]) -> NewVersion:
        """A version of the same model with ``parent``'s metadata and these files, its
        lineage naming ``parent``."""
        return cls(
            flavor=parent.flavor,
            kind=parent.kind,
            signature=parent.signature,
            files=files,
            input_example=parent.input_example,
            metrics=dict(parent.metrics),
            tags=dict(parent.tags),
            conversion=dict(parent.conversion),
            run_id=parent.run_id,
            parent_version=parent.version,
        )
