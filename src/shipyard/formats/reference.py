"""Reference data and input examples: read from files, checked against a signature.

Reference data is the baseline that drift monitoring compares live traffic with. Numeric
tables (``.npy``, ``.csv``, ``.parquet``) fit a single 2-D input; text models take a file
of lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError, SignatureMismatchError
from shipyard.registry.domain import ModelKind, Signature
from shipyard.runtime.predictor import coerce

REFERENCE_SUFFIXES = (".npy", ".csv", ".parquet", ".txt")
NUMERIC_FILE = "reference.npy"
TEXT_FILE = "reference.txt"
EXAMPLE_ROWS = 3


@dataclass
class ReferenceData:
    values: np.ndarray | list[str]
    columns: list[str] | None  # from a CSV header or Parquet schema
    source: str

    @property
    def rows(self) -> int:
        return len(self.values)

    def head(self, n: int) -> np.ndarray | list[str]:
        return self.values[:n]


def read_reference(path: Path) -> ReferenceData:
    if not path.is_file():
        raise InvalidInputError(f"reference data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            raise InvalidInputError(f"cannot read {path} as a numpy array: {exc}") from None
        return ReferenceData(values, None, str(path))
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix == ".txt":
        lines = [line for line in _read_utf8(path).splitlines() if line.strip()]
        if not lines:
            raise InvalidInputError(f"reference text file {path} has no non-empty lines")
        return ReferenceData(lines, None, str(path))
    raise InvalidInputError(
        f"cannot read reference data from {path}: use one of {', '.join(REFERENCE_SUFFIXES)}"
    )


def _read_csv(path: Path) -> ReferenceData:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    first = _read_utf8(path).partition("\n")[0]
    if not first.strip():
        raise InvalidInputError(f"reference CSV {path} is empty")
    has_header = any(not _is_number(cell) for cell in first.strip().split(","))
    try:
        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(autogenerate_column_names=not has_header)
        )
    except pa.ArrowException as exc:
        raise InvalidInputError(f"cannot read {path} as CSV: {exc}") from None
    if table.num_rows == 0:
        raise InvalidInputError(f"reference CSV {path} has a header but no rows")
    data = _numeric_columns(table, path)
    return ReferenceData(data, list(table.column_names) if has_header else None, str(path))


def _read_utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path} is not UTF-8 text: {exc}") from None


def _is_number(cell: str) -> bool:
    if not cell.strip():
        return True  # a missing value
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _numeric_columns(table: Any, path: Path) -> np.ndarray:
    import pyarrow as pa

    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if not (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind)
            or pa.types.is_null(kind)
        ):
            raise SignatureMismatchError(
                f"{path} column {name!r} holds {kind} values; the model takes numbers"
            )
        columns.append(column.to_numpy(zero_copy_only=False).astype(np.float64))
    return np.column_stack(columns)


def _read_parquet(path: Path) -> ReferenceData:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InvalidInputError(f"cannot read {path} as Parquet: {exc}") from None
    return ReferenceData(_numeric_columns(table, path), list(table.column_names), str(path))


def validate_reference(
    data: ReferenceData, signature: Signature, kind: ModelKind, feature_names: list[str] | None
) -> np.ndarray | list[str]:
    """The data in the form the model takes, or a SignatureMismatchError saying what differs."""
    if kind is ModelKind.TEXT_EMBEDDING:
        if not isinstance(data.values, list):
            raise SignatureMismatchError(
                f"{data.source}: a text model takes a .txt file with one text per line"
            )
        return data.values
    if isinstance(data.values, list):
        raise SignatureMismatchError(
            f"{data.source}: this model takes numbers ({_describe(signature)}), not lines of text"
        )
    if len(signature.inputs) != 1:
        raise SignatureMismatchError(
            f"reference data fits models with one input; this one has {len(signature.inputs)} "
            f"({_describe(signature)})"
        )
    spec = signature.inputs[0]
    if data.columns is not None and feature_names is not None and data.columns != feature_names:
        raise SignatureMismatchError(
            f"{data.source} has columns {data.columns}; the model was trained on {feature_names}"
        )
    if spec.datatype == "BYTES":
        raise SignatureMismatchError(
            f"{data.source}: input {spec.name!r} takes strings, not numbers"
        )
    if data.values.ndim == len(spec.shape) - 1 == 1 and spec.shape[-1] == data.values.shape[-1]:
        raise SignatureMismatchError(
            f"{data.source} holds a single row; reference data needs many rows of "
            f"{spec.shape[-1]} columns"
        )
    try:
        return coerce(data.values, spec)
    except SignatureMismatchError as exc:
        raise SignatureMismatchError(f"reference data {data.source}: {exc.message}") from None


def _describe(signature: Signature) -> str:
    return ", ".join(f"{s.name} {s.datatype} {list(s.shape)}" for s in signature.inputs)


def read_example(value: Any) -> Any:
    """An input example given as a path (.npy, .json, .txt, .csv) or as values."""
    if isinstance(value, str | Path) and Path(value).suffix in (".npy", ".json", ".csv", ".txt"):
        path = Path(value)
        if not path.is_file():
            raise InvalidInputError(f"input example file {path} does not exist")
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return read_reference(path).values
    return value


def example_to_json(example: Any) -> Any:
    """A JSON-able copy of an input example, for the version row."""
    if hasattr(example, "detach") and hasattr(example, "numpy"):  # a torch.Tensor
        example = example.detach().cpu().numpy()
    if isinstance(example, np.ndarray):
        return example.tolist()
    if isinstance(example, dict):
        return {k: example_to_json(v) for k, v in example.items()}
    if isinstance(example, list | tuple):
        return [example_to_json(v) for v in example]
    if isinstance(example, np.generic):
        return example.item()
    return example


def write_reference(values: np.ndarray | list[str], staging: Path) -> tuple[str, Path]:
    if isinstance(values, list):
        path = staging / TEXT_FILE
        path.write_text("\n".join(v.replace("\n", " ") for v in values) + "\n", encoding="utf-8")
        return TEXT_FILE, path
    path = staging / NUMERIC_FILE
    np.save(path, values, allow_pickle=False)
    return NUMERIC_FILE, path


def stored_reference(files: dict[str, bytes]) -> np.ndarray | list[str] | None:
    """A version's stored reference data (as ``write_reference`` wrote it), or None."""
    if NUMERIC_FILE in files:
        import io

        return np.load(io.BytesIO(files[NUMERIC_FILE]), allow_pickle=False)  # type: ignore[no-any-return]
    if TEXT_FILE in files:
        return [line for line in files[TEXT_FILE].decode("utf-8").splitlines() if line]
    return None
