"""Evidently's data drift report on the data of benchmarks/monitor.py, for comparison.

    .venv-evidently/bin/python benchmarks/monitor_evidently.py --data DIR --current-rows N

Runs in its own virtual environment (.venv-evidently, made by benchmarks/monitor.py), never
Shipyard's: Evidently is no dependency of Shipyard. Reads the arrays benchmarks/monitor.py
wrote (reference.npy, current.npy, names.json), times ``Report([DataDriftPreset()]).run``
(the DataFrames are built before the clock starts) and prints one JSON line: seconds (the
median of the repeats), peak_rss_mb (this process's high-water mark), rss_before_mb (with
the data loaded, before the first report) and drifted_columns.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
from evidently import Report
from evidently.presets import DataDriftPreset


def drift_report(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    result: dict[str, Any] = snapshot.dict()
    return result


def drifted_columns(result: dict[str, Any]) -> list[str]:
    """Columns whose ValueDrift metric crossed its threshold (a p-value below it, or a
    distance at or above it, as Evidently decides)."""
    drifted = []
    for metric in result["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        value, threshold = float(metric["value"]), float(config["threshold"])
        p_value = "p_value" in str(config.get("method", ""))
        if (value < threshold) if p_value else (value >= threshold):
            drifted.append(str(config["column"]))
    return drifted


def peak_rss_mb() -> float:
    """The high-water mark of this process's RSS (since the reset, on Linux)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--current-rows", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    names = json.loads((args.data / "names.json").read_text())
    reference = pd.DataFrame(np.load(args.data / "reference.npy"), columns=names)
    rows = np.load(args.data / "current.npy", mmap_mode="r")[: args.current_rows]
    current = pd.DataFrame(np.array(rows), columns=names)
    drift_report(reference.iloc[:2000], current.iloc[:2000])  # imports and first-call costs
    with contextlib.suppress(OSError):  # Linux: reset the RSS high-water mark to RSS now
        Path("/proc/self/clear_refs").write_text("5")
    rss_before = psutil.Process().memory_info().rss / 2**20
    times, result = [], {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = drift_report(reference, current)
        times.append(time.perf_counter() - start)
    peak = peak_rss_mb()
    import evidently

    print(
        json.dumps(
            {
                "seconds": statistics.median(times),
                "seconds_all": times,
                "peak_rss_mb": peak,
                "rss_before_mb": rss_before,
                "drifted_columns": sorted(drifted_columns(result)),
                "current_rows": len(current),
                "reference_rows": len(reference),
                "evidently": evidently.__version__,
                "pandas": pd.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
