"""A served version's interface, prepared once so each request is checked cheaply."""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.registry.domain import ModelKind, ModelVersion, TensorSpec


@dataclass(frozen=True)
class ModelInterface:
    name: str
    version: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    inputs_by_name: dict[str, TensorSpec]
    output_names: frozenset[str]
    output_datatypes: dict[str, str]
    text: bool  # strings in (a text-embedding model)

    @classmethod
    def of(cls, version: ModelVersion) -> ModelInterface:
        signature = version.signature
        return cls(
            name=version.name,
            version=version.version,
            inputs=signature.inputs,
            outputs=signature.outputs,
            inputs_by_name={s.name: s for s in signature.inputs},
            output_names=frozenset(s.name for s in signature.outputs),
            output_datatypes={s.name: s.datatype for s in signature.outputs},
            text=version.kind is ModelKind.TEXT_EMBEDDING,
        )
