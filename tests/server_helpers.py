"""Plain helpers for the inference server tests: servers on free ports, processes, metrics.

Fixtures live in conftest.py; everything here is ordinary code the tests call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx2
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from shipyard import Registry, Settings
from shipyard.server import Server

# Generous upper bounds that only keep a broken server from hanging the suite.
HANG_GUARD_S = 60.0
SHIPYARD = str(Path(sys.executable).with_name("shipyard"))


# Models -----------------------------------------------------------------------------------


def tiny_variant_bytes(scale: float) -> bytes:
    """The tiny model (x FP32 [-1, 3] -> y FP32 [-1, 2]) with weights W * scale, bias b."""
    from helpers import tiny_onnx_bytes

    weights, bias = tiny_weights(scale)
    return tiny_onnx_bytes(weights, bias)


def tiny_weights(scale: float) -> tuple[np.ndarray, np.ndarray]:
    from helpers import TINY_B, TINY_W

    return (TINY_W * np.float32(scale)).astype(np.float32), TINY_B


def tiny_variant_expected(x: Any, scale: float) -> np.ndarray:
    weights, bias = tiny_weights(scale)
    result: np.ndarray = np.asarray(x, dtype=np.float32) @ weights + bias
    return result


def register_tiny(registry: Registry, folder: Path, scale: float, **options: Any) -> Any:
    """Register the tiny model scaled by ``scale`` as the next version of "tiny"."""
    import shipyard

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"tiny-{scale}.onnx"
    path.write_bytes(tiny_variant_bytes(scale))
    return shipyard.register(path, options.pop("name", "tiny"), registry=registry, **options)


def blob_of(registry: Registry, version: Any, path: str = "model.onnx") -> Path:
    entry = version.file(path)
    assert entry is not None
    blob: Path = registry.artifacts.blob_path(entry.digest)
    return blob


# In-process servers ------------------------------------------------------------------------


def server_settings(home: Path, **update: Any) -> Settings:
    """Settings for a test server: a free port, no access log on the test's stderr."""
    values: dict[str, Any] = {"home": home, "port": 0, "access_log": False}
    values.update(update)
    return Settings(**values)


@contextlib.contextmanager
def running_server(
    settings: Settings,
    models: list[str] | None = None,
    registry: Registry | None = None,
    *,
    ready: bool = True,
) -> Iterator[Server]:
    """A started server (ready unless told not to wait), always stopped on the way out."""
    server = Server(settings, models=models, registry=registry)
    try:
        server.start(timeout_s=HANG_GUARD_S)
        if ready:
            server.wait_ready(timeout_s=HANG_GUARD_S)
        yield server
    finally:
        server.stop(timeout_s=HANG_GUARD_S)


def client(server: Server | str, **options: Any) -> httpx2.Client:
    base = server if isinstance(server, str) else server.url
    return httpx2.Client(base_url=base, timeout=HANG_GUARD_S, **options)


def triton_url(server: Server | str) -> str:
    base = server if isinstance(server, str) else server.url
    return base.removeprefix("http://")


AsgiAnswer = tuple[int, dict[bytes, bytes], bytes]


def asgi_call(
    app: Any, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> AsgiAnswer:
    """One request straight into an ASGI app, no socket: (status, headers, body)."""
    return asyncio.run(_asgi_request(app, method, path, body, headers or {}))


async def _asgi_request(
    app: Any, method: str, path: str, body: bytes, headers: dict[str, str]
) -> AsgiAnswer:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "http_version": "1.1",
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
        "headers": [(b"host", b"test"), (b"content-length", str(len(body)).encode())]
        + [(key.lower().encode(), value.encode()) for key, value in headers.items()],
    }
    messages: list[dict[str, Any]] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(HANG_GUARD_S)  # the client stays until answered
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start, *chunks = messages
    assert start["type"] == "http.response.start"
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in chunks)


# V2 bodies ----------------------------------------------------------------------------------


def v2_tiny(rows: Any, **extra: Any) -> dict[str, Any]:
    """A JSON V2 request for the tiny model."""
    data = np.asarray(rows, dtype=np.float32)
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": list(data.shape),
                "data": data.ravel().tolist(),
            }
        ]
    }
    body.update(extra)
    return body


def binary_body(header: dict[str, Any], *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    """A V2 request with the binary tensor extension: the JSON header, then raw bytes."""
    import orjson

    head = orjson.dumps(header)
    return head + b"".join(blobs), {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }


def bytes_elements(*items: bytes) -> bytes:
    """BYTES tensor elements in binary form: each a 4-byte little-endian length, then the bytes."""
    return b"".join(len(item).to_bytes(4, "little") + item for item in items)


# Metrics -----------------------------------------------------------------------------------


class Scrape:
    """One /metrics page, parsed with prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample_name: str, **labels: str) -> float:
        """The sum of every sample named ``sample_name`` whose labels include ``labels``."""
        total = 0.0
        for family in self.families.values():
            for sample in family.samples:
                if sample.name == sample_name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def labels(self, sample_name: str) -> list[dict[str, str]]:
        return [
            dict(sample.labels)
            for family in self.families.values()
            for sample in family.samples
            if sample.name == sample_name
        ]


def scrape(http: httpx2.Client) -> Scrape:
    response = http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


# Waiting -----------------------------------------------------------------------------------


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = HANG_GUARD_S) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.02)


# Server processes (``shipyard serve``) -----------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(home: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(home)
    env.update(variables)
    return env


def storage_environment(settings: Settings) -> dict[str, str]:
    """The variables that point a child process at the database and store of ``settings``."""
    env: dict[str, str] = {}
    if settings.db_url:
        env["SHIPYARD_DB_URL"] = settings.db_url
    if settings.artifact_url:
        env["SHIPYARD_ARTIFACT_URL"] = settings.artifact_url
    return env


class ServeProcess:
    """``shipyard serve`` in a child process, its stderr in a file; stopped by its PID."""

    def __init__(
        self,
        home: Path,
        log_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = log_dir / f"serve-{self.port}.stderr"
        self._stderr: IO[bytes] = self.stderr_path.open("wb")
        command = [SHIPYARD, "serve", "--port", str(self.port), *args]
        self.process = subprocess.Popen(
            command,
            env=clean_environment(home, **(env or {})),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout_s: float = HANG_GUARD_S) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"shipyard serve exited with {self.process.returncode}:\n{self.stderr()}"
                )
            try:
                return httpx2.get(self.url + "/v2/health/ready", timeout=5).status_code == 200
            except httpx2.TransportError:
                return False

        wait_for(ready, "shipyard serve to become ready", timeout_s)

    def terminate(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; always reaps the child and closes its log."""
        try:
            if self.process.poll() is None:
                os.kill(self.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(self.pid, signal.SIGKILL)
                    self.process.wait(timeout=30)
        finally:
            self._stderr.close()
