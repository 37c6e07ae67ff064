"""Running the app: uvicorn with uvloop and httptools (one write per response, see
``protocol``), a public start/stop API, SIGTERM.

    server = Server(settings, models=["fraud@production"])
    server.start()          # in a background thread; server.url is then set
    ...
    server.stop()

``Server.run()`` serves in the foreground (the CLI): SIGTERM or Ctrl-C stops accepting,
lets in-flight requests finish, drains the batchers and returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any

import uvicorn

from shipyard.errors import NotReadyError, StorageError
from shipyard.registry import Registry
from shipyard.server.app import ShipyardApp
from shipyard.server.protocol import SingleWriteProtocol
from shipyard.settings import Settings


class Server:
    http_protocol: type[asyncio.Protocol] = SingleWriteProtocol

    def __init__(
        self,
        settings: Settings,
        *,
        models: list[str] | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings
        self.app = ShipyardApp(settings, registry=registry, models=models)
        self._uvicorn = uvicorn.Server(self._config())
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            host=self.settings.host,
            port=self.settings.port,
            loop="uvloop",
            http=self.http_protocol,
            lifespan="on",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=int(self.settings.shutdown_timeout_s),
            server_header=False,
            proxy_headers=False,
            date_header=False,
        )

    @property
    def url(self) -> str:
        if self.port is None:
            raise NotReadyError("the server has not started")
        host = self.settings.host if ":" not in self.settings.host else f"[{self.settings.host}]"
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        """Serve in the foreground until SIGTERM/SIGINT."""
        _configure_logging()
        self.app.manager.resolve()  # a missing model, version or alias fails here, clearly
        if threading.current_thread() is not threading.main_thread():
            self._uvicorn.run()
        else:
            # uvicorn re-raises SIGTERM once it has shut down gracefully; under the default
            # handler that kills the process (exit 143) after a clean drain. Ignore the re-raise
            # so that run() returns and the CLI exits 0.
            previous = signal.signal(signal.SIGTERM, lambda *_: None)
            try:
                self._uvicorn.run()
            finally:
                signal.signal(signal.SIGTERM, previous)
        if not self._uvicorn.started:
            raise StorageError("the server did not start (see the log above)")

    def start(self, timeout_s: float = 60.0) -> None:
        """Serve from a background thread; returns once the socket accepts connections."""
        _configure_logging()
        self._thread = threading.Thread(
            target=self._serve_in_thread, name="shipyard-server", daemon=True
        )
        self._thread.start()
        deadline = threading.Event()
        waited = 0.0
        while not self._uvicorn.started:
            if not self._thread.is_alive():
                raise StorageError("the server stopped during startup (see the log)")
            deadline.wait(0.01)
            waited += 0.01
            if waited > timeout_s:
                raise StorageError(f"the server did not start within {timeout_s:.0f} s")
        self.port = _bound_port(self._uvicorn)

    def _serve_in_thread(self) -> None:
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._uvicorn.serve())
        finally:
            loop.close()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until every model is loaded and warmed (readiness answers 200)."""
        waited = 0.0
        pause = threading.Event()
        while not self.app.is_ready():
            if waited > timeout_s:
                raise NotReadyError(f"the models were not ready within {timeout_s:.0f} s")
            pause.wait(0.02)
            waited += 0.02

    def stop(self, timeout_s: float = 60.0) -> None:
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()


def _bound_port(server: uvicorn.Server) -> int:
    for listener in server.servers:
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    raise StorageError("the server has no listening socket")


def _configure_logging() -> None:
    logger = logging.getLogger("shipyard")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
