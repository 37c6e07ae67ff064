"""Pickled scikit-learn files: loading one runs its code, so only on explicit trust."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from shipyard.errors import (
    ConversionError,
    InvalidInputError,
    MissingDependencyError,
    UnsafeInputError,
)


def load_pickle(path: Path, *, trust_pickle: bool) -> Any:
    if not trust_pickle:
        raise UnsafeInputError(
            f"refusing to load {path}: unpickling runs arbitrary code from the file. If you "
            "trust where it came from, pass --trust-pickle (trust_pickle=True in Python)"
        )
    if not path.is_file():
        raise InvalidInputError(f"model file {path} does not exist")
    try:
        if path.suffix == ".joblib":
            try:
                import joblib
            except ImportError:
                raise MissingDependencyError.for_extra("joblib", "sklearn") from None
            return joblib.load(path)
        with path.open("rb") as fh:
            return pickle.load(fh)
    except (MissingDependencyError, InvalidInputError):
        raise
    except Exception as exc:
        raise ConversionError(f"cannot unpickle {path}: {exc}") from None
