"""A scikit-learn Pipeline on the wine dataset, from training to a served model.

StandardScaler + LogisticRegression fitted on scikit-learn's wine data, registered in
Shipyard with its training rows as reference data (a CSV with the feature names), optimized,
served on a free port and asked to classify the held-out wines with one Open Inference
Protocol (V2) request.

    .venv/bin/python examples/sklearn_pipeline.py --home /tmp/shipyard-wine
"""

from __future__ import annotations

import argparse
import json
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard
from shipyard.optimize import optimize
from shipyard.server import Server


def main(home: str | Path | None = None) -> float:
    """Train, register, optimize, serve and call; the served model's held-out accuracy."""
    settings = shipyard.Settings(home=home) if home is not None else shipyard.Settings()
    wine = load_wine()
    x_train, x_test, y_train, y_test = train_test_split(
        wine.data, wine.target, test_size=0.3, random_state=0, stratify=wine.target
    )
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pipeline.fit(x_train, y_train)
    accuracy = float(pipeline.score(x_test, y_test))
    print(f"trained {' + '.join(pipeline.named_steps)} on wine: test accuracy {accuracy:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp)
        header = ",".join(wine.feature_names)
        np.savetxt(files / "train.csv", x_train, delimiter=",", header=header, comments="")
        np.save(files / "test.npy", x_test.astype(np.float32))
        np.save(files / "labels.npy", y_test)
        version = shipyard.register(
            pipeline,
            "wine",
            reference_data=files / "train.csv",
            metrics={"accuracy": accuracy},
            settings=settings,
        )
        print(f"registered {version.ref} (parity {version.conversion['parity']['value']:.2g})")
        report = optimize(
            version.ref,
            eval_data=files / "test.npy",
            labels=files / "labels.npy",
            settings=settings,
        )
    print(f"optimize: {report.verdict}")
    served = report.registered or version

    server = Server(
        settings.model_copy(update={"port": 0, "access_log": False}), models=[served.ref]
    )
    server.start()
    try:
        server.wait_ready()
        answer = infer(f"{server.url}/v2/models/wine/infer", x_test)
    finally:
        server.stop()
    outputs = {output["name"]: output for output in answer["outputs"]}
    labels = np.asarray(outputs["label"]["data"])
    served_accuracy = float((labels == y_test).mean())
    print(
        f"served {served.ref} (v{answer['model_version']}): accuracy {served_accuracy:.3f} "
        f"on {len(y_test)} held-out wines, first labels {labels[:5].tolist()}"
    )
    return served_accuracy


def infer(url: str, rows: np.ndarray) -> dict[str, Any]:
    """One V2 inference request with the rows as a JSON FP32 tensor named ``input``."""
    tensor = {"name": "input", "datatype": "FP32", "shape": list(rows.shape),
              "data": rows.astype(np.float32).ravel().tolist()}  # fmt: skip
    request = urllib.request.Request(
        url,
        data=json.dumps({"inputs": [tensor]}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="the Shipyard home (default: $SHIPYARD_HOME or .shipyard)")
    main(parser.parse_args().home)
