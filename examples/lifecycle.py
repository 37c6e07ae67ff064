"""The whole life of a model on the embedded default (SQLite + a folder), in a few minutes.

    make demo          # or: .venv/bin/python examples/lifecycle.py [HOME]

1. train v1 on scikit-learn's digits as a run (examples/train_digits.py) and register it;
2. optimize it (the optimizer registers a faster version only where one pays);
3. serve it, drive traffic and send the labels back as feedback;
4. the world changes (the images arrive inverted): the monitor shows the drift and the drop;
5. ``retrain``: the same training command on the served, labelled traffic gives v2, gated
   offline against v1 and rolled out as a canary until promoted;
6. a deliberately broken version (trained on shuffled labels) is rolled out and rolled back
   by the server on its own evidence;
7. the HTML report, and a summary of versions, decisions and figures.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from sklearn.datasets import load_digits

import shipyard
from shipyard.monitor.api import status, write_report
from shipyard.optimize import optimize
from shipyard.retrain import RetrainOptions, retrain
from shipyard.rollout import service
from shipyard.server import Server
from shipyard.tracking.command import run_command

SCRIPT = Path(__file__).with_name("train_digits.py")
CANARY = {"interval_s": 1, "steps": [0.25, 0.5], "min_samples": 30, "deadline_s": 180}
console = Console(soft_wrap=True)  # a log keeps a line whole, at any width


class Traffic:
    """Requests of one digit each from a thread, each labelled right after it is answered."""

    def __init__(self, url: str) -> None:
        digits = load_digits()
        self.x, self.y = digits.data.astype(np.float32), digits.target
        self.url = url
        self.inverted = False  # the world as it changes
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        rng = np.random.default_rng(0)
        while not self._stop.is_set():
            index = int(rng.integers(len(self.y)))
            row = 16.0 - self.x[index] if self.inverted else self.x[index]
            body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64],
                                "data": row.tolist()}]}  # fmt: skip
            self.sent += 1
            try:
                _, headers = _post(f"{self.url}/v2/models/digits/infer", body)
            except urllib.error.HTTPError:
                self.failed += 1
                continue
            label = {"request_id": headers["x-request-id"], "label": [int(self.y[index])]}
            _post(f"{self.url}/v2/models/digits/feedback", label)

    def wait(self, requests: int, description: str) -> None:
        with Progress(console=console, transient=False) as progress:
            task = progress.add_task(description, total=requests)
            start = self.sent
            while self.sent - start < requests:
                progress.update(task, completed=self.sent - start)
                time.sleep(0.1)
            progress.update(task, completed=requests)


def wait_rollout(registry: shipyard.Registry, rollout_id: int, description: str) -> Any:
    with Progress(console=console) as progress:
        task = progress.add_task(description, total=100)
        while True:
            rollout = registry.rollouts.get(rollout_id)
            progress.update(task, completed=100 * rollout.weight, description=(
                f"{description}: {rollout.state}, {rollout.weight:.0%} of traffic"))  # fmt: skip
            if rollout.finished_at is not None:
                return rollout
            time.sleep(0.25)


def train(registry: shipyard.Registry, **params: Any) -> shipyard.ModelVersion:
    done = run_command(registry, [sys.executable, str(SCRIPT)], params=params, echo=io.StringIO())
    if done.exit_code != 0:
        raise SystemExit(f"training failed:\n{done.output}")
    ((name, version),) = registry.runs.versions_of(done.run.id)
    return registry.get_version(f"{name}:{version}")


def main(home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)
    settings = shipyard.Settings(home=home)
    console.rule(f"Shipyard {shipyard.__version__}: the life of a model, home {home}")
    summary: list[tuple[str, str]] = []
    with shipyard.Registry(settings) as registry:
        v1 = train(registry)
        registry.set_alias("digits", "production", v1.version)
        console.print(f"1. trained and registered {v1.ref}: accuracy {v1.metrics['accuracy']:.3f}")
        summary.append((v1.ref, f"trained on digits, accuracy {v1.metrics['accuracy']:.3f}"))
        report = optimize(v1.ref, registry=registry)
        console.print(f"2. optimize {v1.ref}: {report.verdict}")
        summary.append(("optimize", report.verdict))

    served = shipyard.Settings(
        home=home, port=0, access_log=False, monitor_flush_seconds=1.0, rollout_bake_s=0,
        model_monitoring={"digits": {"log_inputs": True}},
    )  # fmt: skip
    server = Server(served, models=["digits"])
    server.start()
    try:
        server.wait_ready()
        console.print(f"3. serving digits@production at {server.url}")
        with Traffic(server.url) as traffic, shipyard.Registry(served) as registry:
            traffic.wait(200, "traffic and feedback")
            traffic.inverted = True
            traffic.wait(600, "4. the world changes: the images arrive inverted")
            time.sleep(2)  # the monitor's next window
            seen = status(registry, "digits@production", "10m").evaluation
            drift, live = seen.drift, seen.performance.get("accuracy", float("nan"))
            drifted = f"{drift.drifted_share:.0%} of the pixels drifted" if drift else "no drift"
            console.print(f"   monitor: {drifted}; live accuracy {live:.3f} "
                          f"(registered {v1.metrics['accuracy']:.3f})")  # fmt: skip
            summary.append(("monitor", f"{drifted}, live accuracy {live:.3f}"))

            console.print("5. retrain digits on its served, labelled traffic")
            result = retrain(registry, "digits", RetrainOptions(rollout=CANARY), echo=io.StringIO())
            if result.candidate is None or result.gate is None:
                raise SystemExit("the retrain registered nothing")
            console.print(f"   {result.candidate.ref}: {result.gate.reason}")
            summary.append((result.candidate.ref, f"retrained; gate {result.gate.reason}"))
            if result.rollout is None:
                raise SystemExit("the retrained version did not pass its gate")
            done = wait_rollout(registry, result.rollout.id, f"   canary {result.candidate.ref}")
            console.print(f"   rollout {done.id}: {done.state} ({_reason(registry, done)})")
            summary.append((f"rollout {done.id}", f"{done.state}: {_reason(registry, done)}"))

            broken = train(registry, broken=True, seed=1)
            console.print(f"6. a broken {broken.ref} (trained on shuffled labels) rolls out")
            rollout = service.start(registry, "digits", broken.version,
                                    {"strategy": "canary", **CANARY})  # fmt: skip
            done = wait_rollout(registry, rollout.id, f"   canary {broken.ref}")
            console.print(f"   rollout {done.id}: {done.state} ({_reason(registry, done)})")
            summary.append((f"rollout {done.id}", f"{done.state}: {_reason(registry, done)}"))
            production = registry.get_version("digits@production")
        failed = traffic.failed
    finally:
        server.stop()

    with shipyard.Registry(settings) as registry:
        path = home / "report.html"
        write_report(registry, "digits@production", path, "1h")
        versions = registry.list_versions("digits")
    console.print(f"7. report: {path.resolve()}")
    console.rule("summary")
    for version in versions:
        console.print(f"  {version.ref:<10} aliases {', '.join(version.aliases) or '-'}")
    for what, said in summary:
        console.print(f"  {what:<10} {said}")
    console.print(f"  traffic    {traffic.sent} requests, {failed} failed; production is "
                  f"{production.ref}")  # fmt: skip
    if production.version == broken.version or failed:
        raise SystemExit("the broken version stayed in production, or requests failed")


def _post(url: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read()), dict(response.headers)


def _reason(registry: shipyard.Registry, rollout: Any) -> str:
    """Why the rollout ended: for one rolled back, the analysis that decided it; otherwise
    the reason of its last move."""
    decided = (rollout.analysis or {}).get("reason")
    if rollout.state == "rolled_back" and decided:
        return str(decided)
    moves = [e for e in registry.events(rollout.model, limit=50) if e.kind.startswith("rollout.")]
    return moves[0].reason if moves and moves[0].reason else "-"


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".shipyard") / "demo")
