"""PyTorch on scikit-learn's 8x8 digits, from training to a served model.

Trains an MLP or a small CNN (examples/digits_cnn.py) with Adam and cross-entropy, registers
it in Shipyard with its training images as reference data, lets the optimizer look for a
faster graph, serves the result on a free port and classifies the held-out digits with one
Open Inference Protocol (V2) request.

    .venv/bin/python examples/pytorch_digits.py --model cnn --home /tmp/shipyard-digits
"""

from __future__ import annotations

import argparse
import json
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch
from digits_cnn import DigitsCNN, data, fit

import shipyard
from shipyard.optimize import optimize
from shipyard.server import Server


def build(kind: str) -> torch.nn.Module:
    if kind == "cnn":
        return DigitsCNN()
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(64, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 10),
    )


def main(home: str | Path | None = None, kind: str = "cnn", epochs: int = 10) -> float:
    """Train, register, optimize, serve and call; the served model's held-out accuracy."""
    settings = shipyard.Settings(home=home) if home is not None else shipyard.Settings()
    torch.manual_seed(0)
    x_train, x_test, y_train, y_test = data()  # images of shape (n, 1, 8, 8) in [0, 1]
    model = fit(build(kind), x_train, y_train, epochs)
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    print(f"trained the {kind} for {epochs} epochs: test accuracy {accuracy:.3f}")

    name = f"digits-{kind}"
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp)
        np.save(files / "train.npy", x_train)
        np.save(files / "test.npy", x_test)
        np.save(files / "labels.npy", y_test)
        version = shipyard.register(
            model,
            name,
            example_input=x_train[:1],
            reference_data=files / "train.npy",
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
        answer = infer(f"{server.url}/v2/models/{name}/infer", x_test)
    finally:
        server.stop()
    (output,) = answer["outputs"]
    logits = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
    served_accuracy = float((logits.argmax(axis=1) == y_test).mean())
    print(
        f"served {served.ref} (v{answer['model_version']}): accuracy {served_accuracy:.3f} "
        f"on {len(y_test)} held-out digits"
    )
    return served_accuracy


def infer(url: str, images: np.ndarray) -> dict[str, Any]:
    """One V2 inference request with the images as a JSON FP32 tensor named ``input``."""
    tensor = {"name": "input", "datatype": "FP32", "shape": list(images.shape),
              "data": images.astype(np.float32).ravel().tolist()}  # fmt: skip
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
    parser.add_argument("--model", choices=["mlp", "cnn"], default="cnn")
    parser.add_argument("--epochs", type=int, default=10)
    arguments = parser.parse_args()
    main(arguments.home, arguments.model, arguments.epochs)
