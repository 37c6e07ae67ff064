"""Rollout benchmark: what a split and a shadow cost the serving path, and how fast bad
candidates are caught.

    .venv/bin/python benchmarks/rollout.py               # all three parts
    .venv/bin/python benchmarks/rollout.py --part cost   # routing and shadow cost only

1. Routing cost: the breast-cancer classifier (the tabular workload of benchmarks/monitor.py)
   served by three ``shipyard serve`` processes from copies of one registry: no rollout; a
   canary held at a 50/50 split (every request routed and its evidence gathered); a shadow
   mirroring 100% of requests to the candidate. wrk on loopback, the three servers in
   alternating order each round, so the ratios are of one run on one machine. Targets:
   split/none throughput at 64 connections >= 0.98; shadow/none p50 at one connection
   <= 1.2.
2. Bad candidates: for each of the rollout tests' bad classifiers (tests/rollout_models.py),
   a canary (steps 5, 10, 25, 50%, interval 1 s, min 100 samples, 3 failed analyses) on a
   bounded load loop in-process: how many requests the candidate answered, and the seconds
   from start to rolled back.

Nothing is asserted: the figures are printed and written to $BENCH_OUT/rollout.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from monitor import WRK_SCRIPT, Serve, _post, cancer_bodies, wrk  # noqa: E402

STRATEGIES = {"none": None, "split": ("canary", 0.5), "shadow": ("shadow", 0.0)}
BAD = ("failing", "constant", "slow")


def _hold(home: Path, strategy: str, weight: float) -> None:
    """A rollout of cancer:2 held in progressing at ``weight`` (no controller moves it)."""
    from shipyard import Registry, Settings
    from shipyard.rollout import service
    from shipyard.rollout.states import State, move

    with Registry(Settings(home=home)) as registry:
        settings = {"strategy": strategy, "mirror": 1.0}
        rollout = service.start(registry, "cancer", 2, settings)
        lease = registry.leases.acquire(f"rollout:{rollout.id}", "benchmark", ttl_s=86_400)
        assert lease is not None
        rollout = move(registry.rollouts, lease, rollout, State.VALIDATING, "benchmark")
        move(
            registry.rollouts, lease, rollout, State.PROGRESSING, "benchmark",
            weight=weight, step=1, restart_clock=True,
        )  # fmt: skip


def routing_cost(folder: Path, rounds: int, seconds: float) -> dict[str, Any]:
    from shipyard import Registry, Settings

    home, logs = folder / "home", folder / "logs"
    logs.mkdir(parents=True)
    bodies = cancer_bodies(home, folder)
    with Registry(Settings(home=home)) as registry:  # the candidate: the same model again
        version = registry.get_version("cancer@production")
        source = registry.artifacts.blob_path(version.files[0].digest)
    import shipyard

    onnx = folder / "cancer.onnx"
    shutil.copy(source, onnx)
    shipyard.register(onnx, "cancer", settings=Settings(home=home))
    script = folder / "infer.lua"
    script.write_text(WRK_SCRIPT % ",".join(json.dumps(body) for body in bodies))
    servers: dict[str, Serve] = {}
    runs: dict[str, dict[int, list[dict[str, float]]]] = {s: {1: [], 64: []} for s in STRATEGIES}
    env = {"SHIPYARD_MONITOR": '{"enabled": false}', "SHIPYARD_ROLLOUTS": "false"}
    try:
        for label, held in STRATEGIES.items():
            own = folder / f"home-{label}"
            shutil.copytree(home, own)
            if held is not None:
                _hold(own, *held)
            servers[label] = Serve(own, logs, label, env)
        for server in servers.values():
            server.wait_ready()
            status, text = _post(server.url + "/v2/models/cancer/infer", bodies[0])
            if status != 200:
                raise RuntimeError(f"{server.label}: {status} {text}")
        time.sleep(2.0)  # every server has followed its rollout's split
        labels = list(STRATEGIES)
        for turn in range(rounds):
            for label in labels if turn % 2 == 0 else labels[::-1]:
                url = servers[label].url + "/v2/models/cancer/infer"
                for connections in (1, 64):
                    wrk(url, script, 1.0, connections)
                    result = wrk(url, script, seconds, connections)
                    runs[label][connections].append(result)
                    print(
                        f"  round {turn + 1} {label:>6} c={connections:<2}: "
                        f"{result['rps']:8.0f} req/s  p50 {result['p50_ms']:.3f} ms  "
                        f"p99 {result['p99_ms']:.2f} ms  non-2xx {result['non2xx']:.0f}"
                    )
    finally:
        for server in servers.values():
            server.stop()

    def median(label: str, connections: int, key: str) -> float:
        return statistics.median(r[key] for r in runs[label][connections])

    def paired(label: str, connections: int, key: str) -> float:
        pairs = zip(runs[label][connections], runs["none"][connections], strict=True)
        return statistics.median(a[key] / b[key] for a, b in pairs)

    return {
        "runs": runs,
        "split_over_none_rps_c64": median("split", 64, "rps") / median("none", 64, "rps"),
        "split_over_none_rps_c64_paired": paired("split", 64, "rps"),
        "shadow_over_none_p50_c1": median("shadow", 1, "p50_ms") / median("none", 1, "p50_ms"),
        "shadow_over_none_p50_c1_paired": paired("shadow", 1, "p50_ms"),
        "shadow_over_none_rps_c64": median("shadow", 64, "rps") / median("none", 64, "rps"),
        "non2xx": sum(r["non2xx"] for s in runs.values() for c in s.values() for r in c),
        "seconds": seconds,
        "rounds": rounds,
    }


def bad_candidates(folder: Path) -> dict[str, Any]:
    from rollout_models import body, register_classifier
    from shipyard import Registry, Settings
    from shipyard.rollout import service
    from shipyard.server import Server

    spec = {"interval_s": 1, "deadline_s": 120, "min_samples": 100}
    results = {}
    for kind in BAD:
        home = folder / f"bad-{kind}"
        settings = Settings(
            home=home, port=0, access_log=False, reload_interval_s=0.2,
            monitor={"enabled": False},  # type: ignore[arg-type]
        )  # fmt: skip
        with Registry(settings) as registry:
            register_classifier(registry, home / "src", "good", alias="production")
            register_classifier(registry, home / "src", kind)
            server = Server(settings, models=["clf"], registry=registry)
            server.start()
            server.wait_ready()
            statuses: Counter[tuple[str, int]] = Counter()
            stop = threading.Event()
            thread = threading.Thread(target=_load, args=(server.url, body, statuses, stop))
            thread.start()
            try:
                started = time.monotonic()
                rollout = service.start(registry, "clf", 2, spec)
                while registry.rollouts.get(rollout.id).finished_at is None:
                    time.sleep(0.05)
                    if time.monotonic() - started > 300:
                        raise RuntimeError(f"{kind}: the rollout did not finish")
                elapsed = time.monotonic() - started
            finally:
                stop.set()
                thread.join()
                server.stop()
            done = registry.rollouts.get(rollout.id)
        answered = sum(n for (version, _), n in statuses.items() if version == "2")
        results[kind] = {
            "state": done.state,
            "reason": (done.analysis or {}).get("reason"),
            "candidate_requests": answered,
            "candidate_failed": sum(
                n for (v, status), n in statuses.items() if v == "2" and status != 200
            ),
            "all_requests": sum(statuses.values()),
            "seconds_to_rollback": round(elapsed, 2),
            "weight_at_end": max(
                (e.details.get("weight", 0.0) for e in registry.events("clf")), default=0.0
            ),
        }
        print(f"  {kind:>8}: {results[kind]}")
    return results


def _load(url: str, body: Any, statuses: Counter[tuple[str, int]], stop: threading.Event) -> None:
    import httpx2

    rng = np.random.default_rng(1)
    with httpx2.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            rows = rng.normal(size=(4, 3)).astype(np.float32)
            if rng.random() < 0.2:
                rows[0, 0] = 12.0  # the failing candidate's lookup is out of bounds
            response = http.post("/v2/models/clf/infer", content=json.dumps(body(rows)))
            statuses[(response.headers.get("x-model-version", "?"), response.status_code)] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("cost", "bad", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    options = parser.parse_args()
    out = Path(os.environ.get("BENCH_OUT", ROOT / "bench-results"))
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"cpu": _cpu()}
    with tempfile.TemporaryDirectory(prefix="shipyard-rollout-bench-") as tmp:
        if options.part in ("cost", "all"):
            print("== routing and shadow cost (cancer classifier, wrk)")
            results["cost"] = routing_cost(Path(tmp) / "cost", options.rounds, options.seconds)
        if options.part in ("bad", "all"):
            print("== bad candidates under a canary")
            results["bad"] = bad_candidates(Path(tmp))
    (out / "rollout.json").write_text(json.dumps(results, indent=2, default=str))
    cost = results.get("cost")
    if cost:
        print(
            f"split/none throughput at c=64: {cost['split_over_none_rps_c64']:.3f} "
            f"(paired {cost['split_over_none_rps_c64_paired']:.3f}; target >= 0.98)"
        )
        print(f"shadow/none p50 at c=1: {cost['shadow_over_none_p50_c1']:.3f} "
              f"(paired {cost['shadow_over_none_p50_c1_paired']:.3f}; target <= 1.2)")  # fmt: skip


def _cpu() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
