"""Tracking benchmark: logging metric points beside MLflow 3, and ``shipyard runs list`` and
``shipyard runs compare`` over 10,000 runs, side by side in one run.

    .venv/bin/python benchmarks/tracking.py [--quick] [--json out.json]

1. Logging points of one metric (step 0, 1, ...) to one run, timed from the start of the
   run to its end (the last flush and the run's finish included) inside the process that
   logs (interpreter start-up and imports left out, for both tools), a fresh store each
   repeat, made (its migrations run) before the clock starts:
   - Shipyard: ``start_run`` + ``log_metric(key, value, step=i)`` in a loop, 10,000 points,
     the run's own batching (one INSERT per 1000 points); and, 500 points, the same loop
     with a ``flush()`` after every point (a transaction a point).
   - MLflow 3.18.0 on a local SQLite store (``sqlite:///.../mlflow.db``) in its own
     virtual environment .venv-mlflow (made here on first use, ``mlflow`` or, where its pin
     of ``mlflow-tracing`` is missing from the index, ``mlflow-skinny`` of the same version
     with SQLAlchemy: the same client and store; MLflow is never a dependency of
     Shipyard), in a child process that times itself and prints JSON:
     ``MlflowClient().log_batch`` in chunks of 1000 points (its limit), 10,000 points; the
     ``mlflow.log_metric`` loop, synchronous (its default, a transaction a point) and
     ``synchronous=False`` (its async logging; ``end_run`` waits for it), 500 points each,
     since a transaction costs MLflow milliseconds a point here.
   Batched against batched is the comparison that counts: it runs in rounds, Shipyard then
   MLflow, and the target is on the median of each round's own ratio (the two ran back to
   back, so that ratio is free of the machine's drift between rounds): Shipyard >= 10x
   MLflow's log_batch. Other ratios are of points a second.
2. A registry of 10,000 runs of one experiment (four params, three metrics of ten points
   each, code and environment as ``start_run`` records them), filled by bulk INSERTs, then
   the real CLI in child processes: ``runs list`` (the newest 50, its default), ``runs
   compare -e sweep`` (the newest 50 of the experiment, its default), ``runs compare ID ID
   ID --plot loss`` and ``runs show ID``, each timed as the wall clock of the whole
   ``.venv/bin/shipyard --home HOME ...`` command (start-up included, bytecode cached), and
   inside a child Python as the ``shipyard.cli`` import and the command after it. Target:
   < 1 s wall clock each. Diagnostics, timed once: all 10,000 runs (``--limit 0``) as a
   table and as JSON.

Figures are medians of the repeats, after a warm-up. Ratios hold on a shared, noisy machine
because both sides ran in this one run; CPU seconds are shown beside the wall clock.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ME = Path(__file__).resolve()
MLFLOW_VENV = ROOT / ".venv-mlflow"
MLFLOW_VERSION = "3.18.0"
MLFLOW_REQUIREMENTS = [f"mlflow=={MLFLOW_VERSION}"]
MLFLOW_SKINNY_REQUIREMENTS = [f"mlflow-skinny=={MLFLOW_VERSION}", "sqlalchemy<3", "alembic<2"]
MLFLOW_BATCH = 1000  # log_batch takes at most 1000 metrics a call
SHIPYARD_CLI = Path(sys.executable).with_name("shipyard")

POINTS = 10_000
# A point a transaction costs MLflow 8 to 20 ms here: its loops, and Shipyard's
# flush-each-point twin, log fewer points and compare by rate.
LOOP_POINTS = 500
LOOP_REPEATS = 3
RUNS = 10_000
EXPERIMENT = "sweep"
STEPS_PER_METRIC = 10
TARGET_SPEEDUP = 10.0
TARGET_SECONDS = 1.0


def value_at(step: int) -> float:
    return 1.0 / (step + 1)


def median(times: list[float]) -> float:
    return statistics.median(times)


# 1. Logging: Shipyard --------------------------------------------------------------------


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of ``work()`` in this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def figures(points: int, walls: list[float], cpus: list[float]) -> dict[str, Any]:
    return {
        "points": points,
        "seconds": median(walls),
        "cpu_s": median(cpus),
        "points_per_s": points / median(walls),
        "seconds_all": walls,
        "cpu_s_all": cpus,
    }


def pooled(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several one-repeat measurements as one measurement's."""
    walls = [w for r in rounds for w in r["seconds_all"]]
    result = figures(rounds[0]["points"], walls, [c for r in rounds for c in r["cpu_s_all"]])
    for phase in ("start_run_s", "log_s", "end_s"):
        if phase in rounds[0]:
            result[phase] = median([r[phase] for r in rounds])
    return result


def shipyard_logging(folder: Path, points: int, repeats: int, per_point: bool) -> dict[str, Any]:
    """``start_run``, ``log_metric`` ``points`` times (with a ``flush()`` after each when
    ``per_point``) and the run's end, in a fresh registry each repeat."""
    import shipyard

    phases: list[tuple[float, float, float]] = []

    def once(index: int, count: int) -> tuple[float, float]:
        # A new path each time: a process remembers the databases it has migrated.
        home = folder / f"shipyard-{'point' if per_point else 'batch'}-{index}-{uuid.uuid4().hex}"
        with shipyard.Registry(shipyard.Settings(home=home)) as registry:  # migrations: untimed
            marks: list[float] = []
            ids: list[str] = []

            def log() -> None:
                marks.append(time.perf_counter())
                with shipyard.start_run("bench", params={"lr": 0.1}, registry=registry) as run:
                    ids.append(run.id)
                    marks.append(time.perf_counter())
                    for step in range(count):
                        run.log_metric("loss", value_at(step), step=step)
                        if per_point:
                            run.flush()
                    marks.append(time.perf_counter())
                marks.append(time.perf_counter())

            wall, cpu = timed(log)
            phases.append((marks[1] - marks[0], marks[2] - marks[1], marks[3] - marks[2]))
            assert registry.runs.count_points(ids[0]) == count
        shutil.rmtree(home)
        return wall, cpu

    once(-1, min(points, 100))  # warm-up: imports, first statements
    phases.clear()
    walls, cpus = zip(*(once(i, points) for i in range(repeats)), strict=True)
    result = figures(points, list(walls), list(cpus))
    result["start_run_s"] = median([p[0] for p in phases])
    result["log_s"] = median([p[1] for p in phases])
    result["end_s"] = median([p[2] for p in phases])
    return result


# 1. Logging: MLflow, in .venv-mlflow ------------------------------------------------------


def mlflow_worker(folder: Path, mode: str, points: int, repeats: int) -> None:
    """In .venv-mlflow: time ``mode`` (batch, async or loop) and print one JSON line."""
    import logging

    logging.disable(logging.WARNING)  # MLflow's migration chatter on every fresh store
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    def once(index: int, count: int) -> tuple[float, float]:
        store = folder / f"mlflow-{mode}-{index}-{uuid.uuid4().hex}"
        store.mkdir(parents=True)
        mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
        mlflow.set_experiment("bench")  # creates the store (its migrations): untimed
        client = MlflowClient()
        runs = []

        def log() -> None:
            with mlflow.start_run() as run:
                runs.append(run.info.run_id)
                mlflow.log_params({"lr": 0.1})
                if mode == "batch":
                    now = int(time.time() * 1000)
                    for first in range(0, count, MLFLOW_BATCH):
                        chunk = range(first, min(first + MLFLOW_BATCH, count))
                        client.log_batch(
                            run.info.run_id,
                            metrics=[Metric("loss", value_at(s), now, s) for s in chunk],
                            synchronous=True,
                        )
                else:
                    synchronous = mode == "loop"
                    for step in range(count):
                        mlflow.log_metric(
                            "loss", value_at(step), step=step, synchronous=synchronous
                        )

        wall, cpu = timed(log)  # end_run (the with block) waits for async logging
        logged = len(client.get_metric_history(runs[0], "loss"))
        assert logged == count, f"{logged} points of {count} logged"
        shutil.rmtree(store)
        return wall, cpu

    once(-1, min(points, 100))  # warm-up: imports, first statements
    walls, cpus = zip(*(once(i, points) for i in range(repeats)), strict=True)
    print(json.dumps(figures(points, list(walls), list(cpus))))


def mlflow_python() -> tuple[str | None, str]:
    """The interpreter of .venv-mlflow, made and filled on first use; else why not.

    ``mlflow`` itself first; where its exact pin of ``mlflow-tracing`` cannot be had (as on
    a package index that lacks that release), ``mlflow-skinny`` of the same version with
    SQLAlchemy and Alembic: the same client and the same SQLite store, less the UI server's
    packages (Flask, gunicorn, pandas...), which logging does not touch."""
    python = MLFLOW_VENV / "bin" / "python"
    check = (
        "import importlib.metadata as m, mlflow, sqlalchemy; "
        "print(mlflow.__version__, *(d for d in ('mlflow', 'mlflow-skinny') "
        "if any(x.metadata['Name'] == d for x in m.distributions())))"
    )

    def installed() -> tuple[str | None, str]:
        found = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
        words = found.stdout.split()
        if found.returncode == 0 and words and words[0] == MLFLOW_VERSION:
            return str(python), f"{words[-1]} {MLFLOW_VERSION}"
        return None, f"mlflow {MLFLOW_VERSION} does not import: {found.stderr.strip()[-1500:]}"

    if python.exists() and installed()[0] is not None:
        return installed()
    base = shutil.which("python3.11") or sys.executable
    print(f"making {MLFLOW_VENV.name} ({base}; pip install {' '.join(MLFLOW_REQUIREMENTS)})")
    done = subprocess.run([base, "-m", "venv", "--clear", str(MLFLOW_VENV)], capture_output=True)
    if done.returncode != 0:
        return None, f"python -m venv failed: {done.stderr.decode().strip()[-1500:]}"
    # As venv does from Python 3.13: git leaves the environment out of the work tree.
    (MLFLOW_VENV / ".gitignore").write_text("*\n")
    why = ""
    for requirements in (MLFLOW_REQUIREMENTS, MLFLOW_SKINNY_REQUIREMENTS):
        install = [str(python), "-m", "pip", "install", "--quiet", *requirements]
        done = subprocess.run(install, capture_output=True, text=True)
        if done.returncode == 0:
            return installed()
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no reason given"
        print(f"  pip install {' '.join(requirements)} failed: {why}")
    return None, f"pip install failed: {why}"


def run_worker(python: str, *args: str) -> dict[str, Any]:
    """This script as a worker in ``python``; its last stdout line is its JSON result."""
    done = subprocess.run(
        [python, str(ME), *args], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def logging_benchmark(
    folder: Path, points: int, loop_points: int, repeats: int, no_mlflow: bool
) -> dict[str, Any]:
    """The batched pair in rounds, Shipyard then MLflow, so that each round's own ratio is
    free of the machine's drift between rounds; then the per-point loops."""
    loop_repeats = min(repeats, LOOP_REPEATS)
    print(f"== logging to one run: {points:,} points batched ({repeats} rounds), "
          f"{loop_points:,} a transaction each ({loop_repeats} repeats)")  # fmt: skip
    python, about = (None, "left out (--no-mlflow)") if no_mlflow else mlflow_python()
    results: dict[str, Any] = {"mlflow_env": about}
    if python is None and not no_mlflow:
        print(f"MLflow left out: {about}")

    def mlflow(mode: str, count: int, times: int) -> dict[str, Any]:
        assert python is not None
        return run_worker(
            python, "--worker", "mlflow", "--mode", mode, "--data", str(folder),
            "--points", str(count), "--repeats", str(times),
        )  # fmt: skip

    ours, theirs = [], []
    for round_ in range(repeats):
        print(f"  round {round_ + 1}: Shipyard, MLflow log_batch ...", flush=True)
        ours.append(shipyard_logging(folder, points, 1, per_point=False))
        if python is not None and "mlflow_batch" not in results:
            try:
                theirs.append(mlflow("batch", points, 1))
            except RuntimeError as error:
                print(f"MLflow log_batch failed: {error}")
                results["mlflow_batch"] = {"error": str(error)}
    results["shipyard_batched"] = pooled(ours)
    if theirs and "mlflow_batch" not in results:
        results["mlflow_batch"] = pooled(theirs)
        results["paired_speedup_batched"] = median(
            [t["seconds"] / o["seconds"] for o, t in zip(ours, theirs, strict=True)]
        )
    print("  Shipyard, a flush each point ...", flush=True)
    results["shipyard_per_point"] = shipyard_logging(
        folder, loop_points, loop_repeats, per_point=True
    )
    if python is None:
        return results
    for mode in ("async", "loop"):
        print(f"  MLflow log_metric loop ({mode}) ...", flush=True)
        try:
            results[f"mlflow_{mode}"] = mlflow(mode, loop_points, loop_repeats)
        except RuntimeError as error:
            print(f"MLflow {mode} failed: {error}")
            results[f"mlflow_{mode}"] = {"error": str(error)}
    return results


# 2. The CLI over 10,000 runs -------------------------------------------------------------


def fill_registry(home: Path, runs: int) -> list[str]:
    """``runs`` runs of EXPERIMENT, one second apart, by bulk INSERTs; their ids, newest
    first."""
    from sqlalchemy import insert

    import shipyard
    from shipyard.registry.schema import RunMetricRow, RunRow
    from shipyard.tracking.provenance import code_version, environment

    code, env = code_version(ROOT), environment(ROOT)
    began = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [f"{i:08x}{'0' * 24}" for i in range(runs)]
    rows, points = [], []
    for i, run_id in enumerate(ids):
        lr = (0.001, 0.003, 0.01, 0.03, 0.1)[i % 5]
        final = {"loss": 1.0 / (1 + i % 97), "accuracy": 0.5 + (i % 89) / 200}
        final["val_loss"] = final["loss"] * 1.1
        started = began + timedelta(seconds=60 * i)
        rows.append(
            {
                "id": run_id,
                "experiment": EXPERIMENT,
                "status": "finished",
                "params": {"lr": lr, "batch_size": 32 << (i % 4), "seed": i, "optimizer": "adam"},
                "tags": {},
                "latest": {k: [v, STEPS_PER_METRIC - 1] for k, v in final.items()},
                "code": code,
                "environment": env,
                "command": {"argv": ["python", "train.py"], "cwd": str(ROOT)},
                "exit_code": 0,
                "error": None,
                "started_at": started,
                "finished_at": started + timedelta(seconds=42),
                "created_by": "bench",
            }
        )
        at = started.timestamp()
        for key, last in final.items():
            for step in range(STEPS_PER_METRIC):
                value = last * (STEPS_PER_METRIC - step) if key != "accuracy" else last
                points.append(
                    {"run_id": run_id, "key": key, "step": step, "value": value, "at": at + step}
                )
    with shipyard.Registry(shipyard.Settings(home=home)) as registry:
        with registry.database.session() as session:
            session.execute(insert(RunRow), rows)
        for first in range(0, len(points), 50_000):
            with registry.database.session() as session:
                session.execute(insert(RunMetricRow), points[first : first + 50_000])
    return ids[::-1]


IN_PROCESS = """
import json, sys, time
start = time.perf_counter()
from shipyard.cli import app
imported = time.perf_counter()
try:
    app(sys.argv[2:], prog_name="shipyard")
except SystemExit as done:
    assert not done.code, done.code
ended = time.perf_counter()
with open(sys.argv[1], "w") as out:
    json.dump({"import_s": imported - start, "command_s": ended - imported}, out)
"""


def time_command(home: Path, args: list[str], repeats: int, folder: Path) -> dict[str, Any]:
    """Wall clock of ``shipyard --home HOME *args`` (start-up included), and inside a child
    Python: the CLI's import, then the command. Its stdout is a pipe, as in a script."""
    argv = ["--home", str(home), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.pop("COLUMNS", None)
    # Bytecode cached, as an installed package has it, in a folder of the run's own (where
    # PYTHONDONTWRITEBYTECODE is set, every start would compile Shipyard's modules again).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")

    def wall() -> tuple[float, str, str]:
        start = time.perf_counter()
        done = subprocess.run(
            [str(SHIPYARD_CLI), *argv], capture_output=True, text=True, env=env, check=False
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"shipyard {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return seconds, done.stdout, done.stderr

    def inside() -> dict[str, float]:
        out = folder / "in-process.json"
        subprocess.run(
            [sys.executable, "-c", IN_PROCESS, str(out), *argv],
            capture_output=True, env=env, check=True,
        )  # fmt: skip
        figures: dict[str, float] = json.loads(out.read_text())
        return figures

    first, output, stderr = wall()  # a warm-up where there are repeats: the page cache
    walls = [wall()[0] for _ in range(repeats)] if repeats > 1 else [first]
    insides = [inside() for _ in range(repeats)]
    return {
        "wall_s": median(walls),
        "wall_s_all": walls,
        "import_s": median([f["import_s"] for f in insides]),
        "command_s": median([f["command_s"] for f in insides]),
        "stdout_lines": len(output.splitlines()),
        "stdout_kb": len(output.encode()) / 1024,
        "stderr": stderr.strip(),
        "output": output,
    }


def cli_benchmark(folder: Path, runs: int, repeats: int) -> dict[str, Any]:
    home = folder / "runs-home"
    print(f"== the CLI over {runs:,} runs of one experiment ({repeats} repeats; each "
          "--limit 0 one)")  # fmt: skip
    start = time.perf_counter()
    ids = fill_registry(home, runs)
    results: dict[str, Any] = {"runs": runs, "fill_s": time.perf_counter() - start}
    print(f"  filled in {results['fill_s']:.1f} s", flush=True)
    targeted = {  # what one types: the defaults (the newest 50), a few runs, one run
        "list": ["runs", "list"],
        "compare_experiment": ["runs", "compare", "-e", EXPERIMENT],
        "compare_3_plot": ["runs", "compare", *(i[:8] for i in ids[:3]), "--plot", "loss"],
        "show": ["runs", "show", ids[0][:8]],
    }
    every_run = {  # diagnostics: all 10,000 runs, as a table and as JSON
        "list_all": ["runs", "list", "--limit", "0"],
        "compare_experiment_all": ["runs", "compare", "-e", EXPERIMENT, "--limit", "0"],
        "compare_experiment_all_json": [
            "runs", "compare", "-e", EXPERIMENT, "--limit", "0", "--json",
        ],
    }  # fmt: skip
    commands: dict[str, Any] = {}
    for name, args in [*targeted.items(), *every_run.items()]:
        print(f"  shipyard {' '.join(args)} ...", flush=True)
        times = repeats if name in targeted else 1
        commands[name] = {
            "argv": args,
            "targeted": name in targeted,
            **time_command(home, args, times, folder),
        }
    results["commands"] = commands
    return results


# The run ----------------------------------------------------------------------------------


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Ratios of rates (points a second), so that loops of fewer points compare too."""
    summary: dict[str, Any] = {}
    logged = results.get("logging", {})

    def rate(key: str) -> float | None:
        value = logged.get(key, {}).get("points_per_s")
        return float(value) if value else None

    pairs = {
        "batched_over_mlflow_log_batch": ("shipyard_batched", "mlflow_batch"),
        "batched_over_mlflow_async_loop": ("shipyard_batched", "mlflow_async"),
        "batched_over_mlflow_loop": ("shipyard_batched", "mlflow_loop"),
        "per_point_over_mlflow_loop": ("shipyard_per_point", "mlflow_loop"),
    }
    for name, (ours, theirs) in pairs.items():
        mine, other = rate(ours), rate(theirs)
        if mine and other:
            summary[f"speedup_{name}"] = mine / other
    if "paired_speedup_batched" in logged:
        summary["speedup_batched_over_mlflow_log_batch_paired"] = logged["paired_speedup_batched"]
    if "mlflow_batch" in logged and "cpu_s" in logged["mlflow_batch"]:
        summary["cpu_ratio_mlflow_log_batch_over_batched"] = (
            logged["mlflow_batch"]["cpu_s"] / logged["shipyard_batched"]["cpu_s"]
        )
    # The target on the paired ratio: each round's sides ran back to back.
    speedup = summary.get(
        "speedup_batched_over_mlflow_log_batch_paired",
        summary.get("speedup_batched_over_mlflow_log_batch"),
    )
    if speedup is not None:
        summary["logging_target_met"] = speedup >= TARGET_SPEEDUP
    commands = results.get("cli", {}).get("commands", {})
    for name, timing in commands.items():
        summary[f"cli_{name}_wall_s"] = timing["wall_s"]
    targeted = [t for t in commands.values() if t["targeted"]]
    if targeted:
        summary["cli_target_met"] = all(t["wall_s"] < TARGET_SECONDS for t in targeted)
    return summary


def show(results: dict[str, Any]) -> None:
    logged = results.get("logging")
    if logged:
        print("\n== logging to one run (medians; in-process, from the start of the run to its "
              "end; fresh stores)")  # fmt: skip
        print(f"{'':<46}{'points':>8}{'seconds':>9}{'CPU s':>8}{'points/s':>10}")
        labels = {
            "shipyard_batched": "Shipyard log_metric loop (its batching)",
            "shipyard_per_point": "Shipyard log_metric + flush() each point",
            "mlflow_batch": f"MLflow {MLFLOW_VERSION} log_batch, {MLFLOW_BATCH} a call",
            "mlflow_async": "MLflow log_metric loop, synchronous=False",
            "mlflow_loop": "MLflow log_metric loop (synchronous)",
        }
        for key, label in labels.items():
            timing = logged.get(key)
            if timing and "seconds" in timing:
                print(f"{label:<46}{timing['points']:>8,}{timing['seconds']:>9.3f}"
                      f"{timing['cpu_s']:>8.3f}{timing['points_per_s']:>10,.0f}")  # fmt: skip
        ours = logged["shipyard_batched"]
        print(f"Shipyard batched, its phases: start_run {ours['start_run_s']:.3f} s, the loop "
              f"{ours['log_s']:.3f} s, the end (last flush) {ours['end_s']:.3f} s")  # fmt: skip
    cli = results.get("cli")
    if cli:
        print(f"\n== shipyard CLI over {cli['runs']:,} runs (median seconds; wall: the whole "
              "command; import, command: inside one Python; * one run)")  # fmt: skip
        print(f"{'command':<48}{'wall':>7}{'import':>8}{'command':>9}{'lines':>8}")
        for timing in cli["commands"].values():
            args = " ".join(timing["argv"]) + ("" if timing["targeted"] else " *")
            args = args if len(args) <= 46 else args[:43] + "..."
            print(f"{args:<48}{timing['wall_s']:>7.3f}{timing['import_s']:>8.3f}"
                  f"{timing['command_s']:>9.3f}{timing['stdout_lines']:>8,}")  # fmt: skip
            if timing["stderr"]:
                print(f"{'':<4}stderr: {timing['stderr']}")
    print("\n== summary")
    width = max((len(k) for k in results["summary"]), default=0)
    for key, value in results["summary"].items():
        shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")


def without_output(results: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in results.items():
        if key == "cli":
            commands = {
                name: {k: v for k, v in timing.items() if k != "output"}
                for name, timing in value["commands"].items()
            }
            yield key, {**value, "commands": commands}
        else:
            yield key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer repeats, points and runs.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--repeats", type=int, help="Repeats of each figure [5; quick 2].")
    parser.add_argument("--points", type=int, help=f"Points logged in batches [{POINTS:,}].")
    parser.add_argument(
        "--loop-points", type=int, help=f"Points logged a transaction each [{LOOP_POINTS:,}]."
    )
    parser.add_argument("--runs", type=int, help=f"Runs for the CLI [{RUNS:,}].")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--no-cli", action="store_true")
    parser.add_argument("--no-logging", action="store_true")
    parser.add_argument("--worker", choices=["mlflow"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["batch", "async", "loop"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    points = args.points or POINTS
    if args.worker == "mlflow":
        mlflow_worker(args.data, args.mode, points, repeats)
        return
    loop_points = args.loop_points or (100 if args.quick else LOOP_POINTS)
    runs = args.runs or (1_000 if args.quick else RUNS)
    results: dict[str, Any] = {"repeats": repeats, "cpu": _cpu(), "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-tracking-") as tmp:
        folder = Path(tmp)
        if not args.no_logging:
            results["logging"] = logging_benchmark(
                folder, points, loop_points, repeats, args.no_mlflow
            )
        if not args.no_cli:
            results["cli"] = cli_benchmark(folder, runs, repeats)
    results["summary"] = summarize(results)
    show(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(without_output(results)), indent=2, default=str))


def _cpu() -> str:
    for line in _lines("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


if __name__ == "__main__":
    main()
