"""A dataset's fingerprint: the sha256 of its content, its rows and its columns.

Arrays hash their dtype, shape and bytes (so a float32 and a float64 copy differ); a table
hashes its column names and each column; a file or a folder of files hashes the bytes.
Two runs that trained on the same data show the same digest, whatever it was called.
numpy is imported when an array is hashed, not by ``shipyard runs`` reading runs back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidInputError
from shipyard.registry.runs import Dataset, check_key

if TYPE_CHECKING:
    import numpy as np

CHUNK = 1 << 20


def fingerprint(
    name: str, data: Any, *, targets: Any | None = None, source: str | None = None
) -> Dataset:
    check_key("dataset name", name)
    digest = hashlib.sha256()
    rows, columns = _feed(digest, data)
    if targets is not None:
        target_rows, _ = _feed(digest, targets)
        if target_rows != rows:
            raise InvalidInputError(
                f"dataset {name!r} has {rows} rows but {target_rows} targets: they must match"
            )
    if source is None and isinstance(data, str | Path):
        source = str(Path(data).resolve())
    return Dataset(name, digest.hexdigest(), rows, columns, source)


def _feed(digest: Any, data: Any) -> tuple[int, Any]:
    if isinstance(data, str | Path):
        return _feed_path(digest, Path(data))
    import numpy as np

    columns = getattr(data, "columns", None)
    if columns is not None and hasattr(data, "__getitem__"):  # a pandas or polars frame
        names = [str(c) for c in columns]
        for column in names:
            digest.update(column.encode() + b"\0")
            _feed_array(digest, np.asarray(data[column]))
        return len(data), names
    array = np.asarray(data)
    if array.dtype == object:
        array = array.astype(str)
    _feed_array(digest, array)
    rows = int(array.shape[0]) if array.ndim else 1
    return rows, (int(array.shape[1]) if array.ndim > 1 else 1)


def _feed_array(digest: Any, array: np.ndarray) -> None:
    import numpy as np

    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())


def _feed_path(digest: Any, path: Path) -> tuple[int, Any]:
    if not path.exists():
        raise InvalidInputError(f"dataset file {path} does not exist")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    rows = 0
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with file.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                rows += chunk.count(b"\n")
    header = _header(files[0]) if len(files) == 1 else None
    if header is not None:
        rows = max(rows - 1, 0)
    return rows, header if header is not None else len(files)


def _header(path: Path) -> list[str] | None:
    # A CSV's first line names its columns; other files are counted in lines.
    if path.suffix.lower() != ".csv":
        return None
    with path.open(encoding="utf-8", errors="replace") as fh:
        return [cell.strip() for cell in fh.readline().rstrip("\n").split(",")]
