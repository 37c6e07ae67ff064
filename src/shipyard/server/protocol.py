"""The HTTP protocol the server runs: uvicorn's httptools protocol, with one write per response.

uvicorn writes a response in two calls, its status line and headers, then its body, and each
``transport.write`` on an idle socket is a ``send`` of its own: two system calls and two TCP
segments, and on a machine where the client shares the cores a second wake-up for it too.
Here the connection's transport is corked for one turn of the event loop: a write is held
until the end of the turn (or the next write, or a close), so the headers and the body that
an ASGI app sends in one go leave in one segment. A response streamed over several turns
goes out as it comes, a turn's worth at a time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CorkedTransport:
    """A transport whose writes in one turn of the loop leave in one ``write``."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self.uncork)
        else:  # the second write of a turn (a response's body): both go now, in one call
            self._held = None
            self._transport.writelines((held, data))

    def uncork(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():  # the peer has gone: nothing to send to
                self._transport.write(held)

    def close(self) -> None:
        self.uncork()
        self._transport.close()

    def write_eof(self) -> None:
        self.uncork()
        self._transport.write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        # the rest of the transport's interface (extra info, abort, buffer sizes...) as it is
        return getattr(self._transport, name)


class SingleWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a corked transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        corked = CorkedTransport(transport, self.loop)
        super().connection_made(corked)  # type: ignore[arg-type]
