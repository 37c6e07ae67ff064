"""The options of a registration: one typed, validated object that the CLI and the Python API
build, the conversion reads and the new version records."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidInputError
from shipyard.formats.base import DEFAULT_TOLERANCE
from shipyard.formats.onnx_file import TextOptions
from shipyard.registry import validate_name


@dataclass(frozen=True)
class RegistrationOptions:
    """Everything about a registration but the model, its name and the registry it goes to.

    Validated when built: a bad alias, tolerance or metric is refused before anything is
    read or converted. The flavor is checked against the known flavors at registration.
    """

    flavor: str | None = None  # None: told from the source
    reference_data: str | Path | None = None  # baseline rows: parity, the monitor's reference
    example_input: Any = None  # a model input; also what a PyTorch model is traced with
    alias: str | None = None  # pointed at the new version
    tolerance: float = DEFAULT_TOLERANCE  # how far the ONNX outputs may be from the source's
    allow_parity_failure: bool = False  # register even when parity fails (recorded as failed)
    trust_pickle: bool = False  # allow unpickling, which runs the file's code
    text: TextOptions | None = None  # an ONNX encoder served as a text-embedding model
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    run_id: str | None = None  # the training run that produced the model
    parent_version: int | None = None  # the version of the same model this one derives from
    description: str | None = None  # describes the model (kept from its first version)

    def __post_init__(self) -> None:
        if self.alias is not None:
            validate_name(self.alias, "alias name")
        if not 0 <= self.tolerance < 1:
            raise InvalidInputError(f"tolerance must be in [0, 1), got {self.tolerance}")
        # plain floats and strings, so that what is stored reads back the same
        object.__setattr__(self, "metrics", _metrics(self.metrics or {}))
        object.__setattr__(self, "tags", dict(self.tags or {}))

    @classmethod
    def with_keywords(
        cls, base: RegistrationOptions | None, keywords: Mapping[str, Any]
    ) -> RegistrationOptions:
        """``base`` (or the defaults) with ``keywords`` naming fields to change; a keyword
        that names no field is a TypeError, as for any function."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(keywords) - set(known))
        if unknown:
            raise TypeError(
                f"register() got unknown option(s) {', '.join(map(repr, unknown))}; "
                f"the options are {', '.join(known)}"
            )
        options = base if base is not None else cls()
        return dataclasses.replace(options, **keywords) if keywords else options


def _metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Plain floats (numpy and torch scalars included), or an InvalidInputError."""
    values: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            values[str(key)] = float(value)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"metric {key!r} must be a number, got {type(value).__name__}"
            ) from None
    return values
