"""A small world that changes, for the retraining tests: two features, a label that is
``x0 > threshold``, and a training script that learns it with scikit-learn.

The script trains on the world as it was (threshold 0) unless a retrain gives it the served
traffic, which it then learns from. What it does is read from a mode file, so a test can make
the next training fail, register nothing, or learn noise.
"""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from shipyard import Registry
from shipyard.tracking.command import run_command

NEW_THRESHOLD = 1.0  # where the label's boundary moved to

TRAIN = """\
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

import shipyard

with shipyard.start_run("world", params={"threshold": 0.0, "mode_file": ""}) as run:
    params = run.params
    mode = Path(params["mode_file"]).read_text().strip() if params["mode_file"] else "good"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2)).astype(np.float32)
    y = (x[:, 0] > params["threshold"]).astype(np.int64)
    if params.get("retrain_data"):
        import pyarrow.parquet as pq

        table = pq.read_table(params["retrain_data"]).to_pydict()
        columns = [c for c in table if c.startswith("input.")]
        x = np.column_stack([table[c] for c in columns]).astype(np.float32)
        y = np.asarray(table["label"], dtype=np.int64)
        print(f"learning from {len(y)} served rows")
    run.log_dataset(x, "train", targets=y)
    if mode == "fail":
        print("the data loader broke", file=sys.stderr)
        sys.exit(3)
    if mode == "inverted":  # a bug that swaps the classes
        y = 1 - y
    model = LogisticRegression().fit(x, y)
    accuracy = float(model.score(x, y))
    run.log_metric("accuracy", accuracy)
    if mode != "noregister":
        version = run.register_model(
            model, name="world", metrics={"accuracy": accuracy}, example_input=x[:2]
        )
        print(f"registered {version.ref}")
"""


def write_script(folder: Path) -> tuple[Path, Path]:
    """The training script and its mode file (``good`` to begin with)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "train.py"
    script.write_text(TRAIN)
    mode = folder / "mode"
    mode.write_text("good")
    return script, mode


def train_champion(registry: Registry, folder: Path) -> tuple[Path, str]:
    """Version 1 trained by the script as a run, and made the production version."""
    script, mode = write_script(folder)
    done = run_command(
        registry,
        [sys.executable, str(script)],
        params={"mode_file": str(mode)},
        cwd=folder,
        echo=io.StringIO(),  # the output is kept with the run
    )
    assert done.exit_code == 0, done.output
    registry.set_alias("world", "production", 1)
    return mode, done.run.id


def new_world(rows: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2)).astype(np.float32)
    return x, (x[:, 0] > NEW_THRESHOLD).astype(np.int64)


def log_served(registry: Registry, requests: int, *, inputs: bool = True, seed: int = 1) -> None:
    """``requests`` one-row requests of the changed world, served by the champion, logged
    (with their inputs unless told not) and labelled."""
    champion = registry.get_version("world@production")
    x, y = new_world(requests, seed)
    logged, labels = [], {}
    for index in range(requests):
        request_id = f"s{seed}-{index}"
        answered = int(x[index, 0] > 0.0)  # what the champion, trained on the old world, says
        row = [{"x.0": float(x[index, 0]), "x.1": float(x[index, 1])}] if inputs else None
        logged.append((request_id, datetime.now(UTC), {"label": [answered]}, row))
        labels[request_id] = [int(y[index])]
    registry.monitoring.add_predictions(champion, logged)
    assert registry.monitoring.set_labels("world", labels).unknown == []
