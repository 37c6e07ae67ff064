"""Model names, alias names and references (``name``, ``name:3``, ``name@alias``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipyard.errors import InvalidNameError, InvalidReferenceError

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def validate_name(name: str, what: str = "model name") -> str:
    """Return ``name`` if it is a valid model or alias name, else raise InvalidNameError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidNameError(
            f"invalid {what} {name!r}: use 1-64 characters of lower-case letters, digits, "
            "'.', '_' or '-', starting with a letter or digit (no '/', '..', spaces or upper case)"
        )
    return name


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: at most one of ``version`` and ``alias``; neither means latest."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        if not isinstance(text, str) or not text:
            raise InvalidReferenceError(
                "empty model reference; use NAME, NAME:VERSION or NAME@ALIAS"
            )
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(validate_name(name), alias=validate_name(alias, "alias name"))
        if ":" in text:
            name, _, version = text.partition(":")
            if not (version.isascii() and version.isdigit()) or int(version) < 1:
                raise InvalidReferenceError(
                    f"invalid model reference {text!r}: the version after ':' must be a whole "
                    "number >= 1, as in fraud:3"
                )
            return cls(validate_name(name), version=int(version))
        return cls(validate_name(text))

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
