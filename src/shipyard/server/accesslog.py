"""Access log: one JSON line per request, buffered and written off the request path."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

import orjson

FLUSH_SECONDS = 0.1
FLUSH_ENTRIES = 128  # small flushes keep any one pause of the event loop short
FIELDS = (
    "time", "method", "path", "status", "ms", "request_id", "model", "version", "rows", "client",
)  # fmt: skip


class AccessLog:
    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self._stream = stream or sys.stderr
        self._entries: list[tuple[Any, ...]] = []
        self._flush_scheduled = False

    def record(self, *values: Any) -> None:
        """One request's values, in the order of FIELDS; formatted later, off the request path."""
        if not self.enabled:
            return
        self._entries.append(values)
        if len(self._entries) >= FLUSH_ENTRIES:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._on_timer)

    def _on_timer(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        if not self._entries:
            return
        entries, self._entries = self._entries, []
        lines = [orjson.dumps(dict(zip(FIELDS, values, strict=True))) for values in entries]
        try:
            self._stream.write(b"\n".join(lines).decode() + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full log stream must not take the server down
