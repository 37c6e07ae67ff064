"""What of a request may be written: outputs by default, inputs only with payload logging,
and named fields dropped or replaced by a salted hash before anything leaves the process."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from shipyard.monitor.profile import Column
from shipyard.settings import ModelMonitorSettings


class Redactor:
    """Turns one request's inputs and outputs into the JSON records the log keeps."""

    def __init__(self, settings: ModelMonitorSettings, input_columns: list[Column]) -> None:
        self.settings = settings
        self.redacted = set(settings.redact)
        # the feature names of each 2-D input tensor, so rows are logged as {feature: value}
        self._names: dict[str, list[str]] = {}
        for column in input_columns:
            if column.read == "value" and column.index is not None:
                self._names.setdefault(column.tensor, []).append(column.name)

    def outputs(self, outputs: dict[str, Any]) -> dict[str, Any] | None:
        if not self.settings.log_outputs:
            return None
        record: dict[str, Any] = {}
        for name, value in outputs.items():
            if name.startswith("__"):
                continue  # internal companions such as token counts
            array = np.asarray(value)
            if array.dtype.kind in "biuf" and name not in self.redacted:
                record[name] = np.ascontiguousarray(array)  # the database writes arrays as lists
            else:
                self._put(record, name, array.tolist())
        return record

    def inputs(self, payload: Any) -> list[dict[str, Any]] | None:
        """One record per row ({field: value}), or None without payload logging."""
        if not self.settings.log_inputs:
            return None
        if isinstance(payload, list):  # a text model's strings
            rows: list[dict[str, Any]] = []
            for text in payload:
                row: dict[str, Any] = {}
                self._put(row, "text", text)
                rows.append(row)
            return rows
        count = len(next(iter(payload.values()))) if payload else 0
        rows = [{} for _ in range(count)]
        for tensor, array in payload.items():
            array = np.asarray(array)
            names = self._names.get(tensor)
            if array.ndim == 2 and names is not None and len(names) == array.shape[1]:
                for i, name in enumerate(names):
                    for row, value in zip(rows, array[:, i].tolist(), strict=True):
                        self._put(row, name, value)
            else:
                for row, value in zip(rows, array.tolist(), strict=True):
                    self._put(row, tensor, value)
        return rows

    def _put(self, record: dict[str, Any], name: str, value: Any) -> None:
        if name not in self.redacted:
            record[name] = _plain(value)
        elif self.settings.redaction == "hash":
            record[name] = salted_hash(self.settings.salt, value)
        # "drop": the field is left out


def salted_hash(salt: str, value: Any) -> str:
    """sha256 of salt and the value's text: equal values still join, the value stays hidden."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else repr(value)
    return "sha256:" + hashlib.sha256(f"{salt}\x00{text}".encode()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # JSON has no NaN or inf
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
