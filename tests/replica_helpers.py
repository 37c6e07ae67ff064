"""Plain helpers for the tests of several ``shipyard serve`` replicas on one registry: their
environment, a client load that checks and counts every answer, paced polling."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import numpy as np

from rollout_models import body, expected_labels
from server_helpers import ServeProcess, client, wait_for

ROWS = 4
WAIT_S = 120.0  # the machine is shared: generous, only a guard against a hang
POLL_S = 0.1  # between reads of the registry (every session takes SQLite's write lock)


def serve_environment(monitor: dict[str, Any] | None = None, /, **extra: str) -> dict[str, str]:
    """Short clocks: a tick every 0.3 s, a promoted version's bake of 1 s; the monitor off
    unless its settings are given (``replica=`` names the replica either way)."""
    options: dict[str, Any] = {"enabled": False} if monitor is None else dict(monitor)
    if "replica" in extra:
        options["replica"] = extra.pop("replica")
    return {
        "SHIPYARD_RELOAD_INTERVAL_S": "0.3",
        "SHIPYARD_ROLLOUT_BAKE_S": "1",
        # nested settings are JSON in one variable (no SHIPYARD_MONITOR__ENABLED spelling)
        "SHIPYARD_MONITOR": json.dumps(options),
        **extra,
    }


def serve(home: Path, logs: Path, env: dict[str, str]) -> ServeProcess:
    return ServeProcess(home, logs, "--model", "clf", "--no-access-log", env=env)


@dataclass
class Load:
    """A bounded load loop on one server: every answer checked and counted, in order; a
    refused connection (a killed server) counted as ("-", -1)."""

    url: str
    seed: int = 7
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (version, status)
    versions: list[str] = field(default_factory=list)  # of each answer, in order
    wrong: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Load:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(60)

    def _run(self) -> None:
        rng = np.random.default_rng(self.seed)
        with client(self.url) as http:
            while not self.stop.is_set():
                rows = rng.normal(size=(ROWS, 3)).astype(np.float32)
                try:
                    response = http.post("/v2/models/clf/infer", content=json.dumps(body(rows)))
                except httpx2.TransportError:
                    self.statuses[("-", -1)] += 1
                    self.stop.wait(0.05)
                    continue
                version = response.headers.get("x-model-version", "?")
                self.statuses[(version, response.status_code)] += 1
                self.versions.append(version)
                if response.status_code == 200:
                    label = next(o for o in response.json()["outputs"] if o["name"] == "label")
                    if label["data"] != expected_labels(rows).tolist():  # the "good" ones agree
                        self.wrong.append(response.text)

    @property
    def answered(self) -> int:
        return len(self.versions)

    def failures(self) -> dict[tuple[str, int], int]:
        return {key: n for key, n in self.statuses.items() if key[1] != 200}


def poll(condition: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """wait_for, reading the registry at most every POLL_S."""

    def paced() -> Any:
        time.sleep(POLL_S)
        return condition()

    return wait_for(paced, what, timeout_s)


def stop_all(*things: Load | ServeProcess | None) -> None:
    for thing in things:
        if isinstance(thing, Load):
            thing.finish()
        elif thing is not None:
            thing.stop()
