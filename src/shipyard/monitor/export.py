"""The prediction log as a table: one row per served row, with its label when one came.

What was logged is what comes out: outputs by default, inputs where payload logging was on,
redacted fields dropped or hashed. Parquet keeps lists as lists; CSV gets them as JSON.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidInputError
from shipyard.registry.monitoring import StoredPrediction

FORMATS = (".parquet", ".csv")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``10m``, ``2h`` or a plain number of seconds."""
    stripped = text.strip()
    match = _RELATIVE.match(stripped)
    if match:
        return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))}).total_seconds()
    try:
        return float(stripped)
    except ValueError:
        raise InvalidInputError(
            f"cannot read {text!r} as a duration: use 90s, 10m, 2h or a number of seconds"
        ) from None


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``7d``, ``12h``, ``30m`` ago, or an ISO date or time (UTC unless it names a zone)."""
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"cannot read {text!r} as a time: use 7d, 12h, 30m, or an ISO date like 2026-11-01"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def rows_of(model: str, predictions: list[StoredPrediction]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for record in predictions:
        outputs = record.outputs or {}
        count = max((len(v) for v in outputs.values() if isinstance(v, list)), default=1)
        inputs = record.inputs or []
        labels = record.label if isinstance(record.label, list) else [record.label] * count
        for i in range(count):
            row: dict[str, Any] = {
                "request_id": record.request_id,
                "row": i,
                "model": model,
                "version": record.version,
                "served_at": record.created_at.isoformat(),
            }
            if i < len(inputs):
                row.update({f"input.{k}": v for k, v in inputs[i].items()})
            for name, value in outputs.items():
                row[f"output.{name}"] = (
                    value[i] if isinstance(value, list) and i < len(value) else value
                )
            row["label"] = labels[i] if i < len(labels) else None
            row["labelled_at"] = record.labelled_at.isoformat() if record.labelled_at else None
            rows.append(row)
    return rows


def write_table(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa

    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInputError(f"export to {', '.join(FORMATS)}, not {path.name!r}")
    if not path.parent.is_dir():
        raise InvalidInputError(f"folder {path.parent} does not exist")
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    if suffix == ".csv":
        data = {c: [_csv_cell(row.get(c)) for row in rows] for c in columns}
        import pyarrow.csv as pacsv

        pacsv.write_csv(pa.table(data) if rows else pa.table({"request_id": []}), str(path))
        return
    import pyarrow.parquet as pq

    arrays = {c: _parquet_column([row.get(c) for row in rows]) for c in columns}
    if not rows:
        arrays = {"request_id": pa.array([], pa.string())}
    pq.write_table(pa.table(arrays), str(path))


def _csv_cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


def _parquet_column(values: list[Any]) -> Any:
    """An Arrow column; one mixing types (a label given as 1 here, "yes" there) as JSON text."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return pa.array([None if v is None else json.dumps(v) for v in values], pa.string())
