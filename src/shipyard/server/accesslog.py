"""Access log: one JSON line per request, buffered and written off the request path."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

import orjson

FLUSH_SECONDS = 0.2


class AccessLog:
    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self._stream = stream or sys.stderr
        self._lines: list[bytes] = []
        self._flush_scheduled = False

    def record(self, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._lines.append(orjson.dumps(entry))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            self._stream.write(b"\n".join(lines).decode() + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full log stream must not take the server down
