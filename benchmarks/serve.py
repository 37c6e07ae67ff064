"""Serving benchmark: Shipyard beside the raw in-process pipeline, the bare ASGI floor and
the peer servers of ../shared/bench, in one run, then the ratios the targets are stated in.

    .venv/bin/python benchmarks/serve.py                      # raw, bare, shipyard, mlserver
    .venv/bin/python benchmarks/serve.py --peers bentoml litserve mlserver rayserve
    .venv/bin/python benchmarks/serve.py --report-only        # re-read the last results
    .venv/bin/python benchmarks/serve.py --peer-dir ../before/peer --peers shipyard-before mlserver

Load comes from wrk in a separate process on loopback (1, 16 and 64 connections), one server
at a time; see ../shared/bench/README.md. Results go to $BENCH_OUT (default ./bench-results).
Nothing here is asserted: the figures are printed and go into the closing notes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT.parent / "shared" / "bench" / "run_all.sh"
PEER_DIR = ROOT / "benchmarks" / "peers" / "shipyard"


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return max(runs, key=lambda r: r["rps_2xx"])


def at(runs: list[dict[str, Any]], conns: int) -> dict[str, Any] | None:
    return next((r for r in runs if r["conns"] == conns), None)


def load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def report(out: Path, peers: list[str]) -> dict[str, Any]:
    raw = load(out, "raw")
    results = {name: load(out, name) for name in ["bare", "shipyard", *peers]}
    summary: dict[str, Any] = {}
    for workload in ("embed", "tabular"):
        print(f"\n== {workload}")
        rows = {}
        if raw:
            raw_best = max(raw["workloads"][workload], key=lambda r: r["items_per_s"])
            rows["raw"] = raw_best["items_per_s"]
            print(
                f"raw in-process best: {raw_best['items_per_s']:,.0f} items/s "
                f"(batch {raw_best['batch_size']})"
            )
        for name, data in results.items():
            if not data or workload not in data.get("workloads", {}):
                continue
            runs = data["workloads"][workload]["runs"]
            top = best(runs)
            rows[name] = top["rps_2xx"]
            line = ", ".join(
                f"c={r['conns']}: {r['rps_2xx']:,.0f}/s p50 {r['p50_ms']:.2f} "
                f"p99 {r['p99_ms']:.2f} ms non2xx {r['non2xx']}"
                for r in runs
            )
            print(f"{name:>10}: best {top['rps_2xx']:,.0f}/s | {line}")
        ours = results.get("shipyard")
        if not ours or workload not in ours.get("workloads", {}):
            continue
        runs = ours["workloads"][workload]["runs"]
        figures: dict[str, float] = {}
        if "raw" in rows:
            figures["shipyard_best_over_raw_best"] = rows["shipyard"] / rows["raw"]
        if "bare" in rows:
            figures["shipyard_best_over_bare_best"] = rows["shipyard"] / rows["bare"]
            bare_c1 = at(results["bare"]["workloads"][workload]["runs"], 1)  # type: ignore[index]
            ours_c1 = at(runs, 1)
            if bare_c1 and ours_c1:
                figures["p50_c1_over_bare_p50_c1"] = ours_c1["p50_ms"] / bare_c1["p50_ms"]
                figures["p99_c1_over_bare_p99_c1"] = ours_c1["p99_ms"] / bare_c1["p99_ms"]
        for peer in peers:
            if peer in rows:
                figures[f"shipyard_best_over_{peer}_best"] = rows["shipyard"] / rows[peer]
        c16 = at(runs, 16)
        if c16:
            figures["p99_over_p50_c16"] = c16["p99_ms"] / c16["p50_ms"]
        for key, value in figures.items():
            print(f"  {key}: {value:.2f}")
        summary[workload] = figures
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", nargs="*", default=["mlserver"])
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--peer-dir",
        type=Path,
        action="append",
        default=[],
        help="another peer folder with a peer.json (say, an earlier build of Shipyard)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path(os.environ.get("BENCH_OUT", "bench-results"))
    )
    args = parser.parse_args()
    out = args.out.resolve()
    if not args.report_only:
        if not HARNESS.is_file():
            sys.exit(f"the peer harness is missing: {HARNESS}")
        env = {**os.environ, "BENCH_OUT": str(out)}
        targets = ["raw", "bare", "shipyard", *args.peers]
        dirs = [part for d in [PEER_DIR, *args.peer_dir] for part in ("--peer-dir", str(d))]
        subprocess.run(["bash", str(HARNESS), *dirs, *targets], env=env, check=True)
    summary = report(out, args.peers)
    (out / "shipyard-summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
