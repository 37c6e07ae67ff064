"""Keras 3 on scikit-learn's 8x8 digits, from training to a served model.

A Sequential CNN compiled and fitted the Keras way, on the torch backend (no TensorFlow
needed), registered in Shipyard from the model object, optimized, served on a free port and
asked to classify the held-out digits with one Open Inference Protocol (V2) request.

    .venv/bin/python examples/keras_digits.py --home /tmp/shipyard-keras
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is first imported

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import shipyard
from shipyard.optimize import optimize
from shipyard.server import Server


def build() -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(home: str | Path | None = None, epochs: int = 5) -> float:
    """Train, register, optimize, serve and call; the served model's held-out accuracy."""
    settings = shipyard.Settings(home=home) if home is not None else shipyard.Settings()
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.3, random_state=0, stratify=digits.target
    )
    keras.utils.set_random_seed(0)
    model = build()
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"trained the Keras CNN for {epochs} epochs: test accuracy {accuracy:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp)
        np.save(files / "train.npy", x_train)
        np.save(files / "test.npy", x_test)
        np.save(files / "labels.npy", y_test)
        version = shipyard.register(
            model,
            "digits-keras",
            reference_data=files / "train.npy",
            metrics={"accuracy": float(accuracy)},
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
        answer = infer(f"{server.url}/v2/models/digits-keras/infer", x_test)
    finally:
        server.stop()
    (output,) = answer["outputs"]
    probabilities = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
    served_accuracy = float((probabilities.argmax(axis=1) == y_test).mean())
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
    parser.add_argument("--epochs", type=int, default=5)
    arguments = parser.parse_args()
    main(arguments.home, arguments.epochs)
