"""A small CNN on scikit-learn's 8x8 digits, trained with PyTorch and registered in Shipyard.

    .venv/bin/python examples/digits_cnn.py      # trains, registers `digits-cnn`, prints accuracy

``train()`` and ``register()`` are used by benchmarks/optimize.py too, ``DigitsCNN``,
``data()`` and ``fit()`` by examples/pytorch_digits.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import shipyard


class DigitsCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(32, 64, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(64, 64, 3, padding=1),
            torch.nn.ReLU(),
        )
        self.head = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(64 * 4 * 4, 128),
            torch.nn.ReLU(),
            torch.nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # type: ignore[no-any-return]


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.3, random_state=0, stratify=digits.target
    )
    return x_train, x_test, y_train, y_test


def train(epochs: int = 15, seed: int = 0) -> tuple[DigitsCNN, Any]:
    torch.manual_seed(seed)
    x_train, x_test, y_train, y_test = data()
    model = fit(DigitsCNN(), x_train, y_train, epochs)
    return model, (x_train, x_test, y_train, y_test)


def fit(model: torch.nn.Module, x_train: np.ndarray, y_train: np.ndarray, epochs: int) -> Any:
    """Adam and cross-entropy in mini-batches of 64; the model is returned in eval mode."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs, ys = torch.from_numpy(x_train), torch.from_numpy(y_train).long()
    for _ in range(epochs):
        order = torch.randperm(len(xs))
        for start in range(0, len(xs), 64):
            idx = order[start : start + 64]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
            loss.backward()
            optimizer.step()
    return model.eval()


def register(model: DigitsCNN, x_train: np.ndarray, **options: Any) -> shipyard.ModelVersion:
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference.npy"
        np.save(reference, x_train)
        return shipyard.register(
            model, "digits-cnn", example_input=x_train[:1], reference_data=reference, **options
        )


def main() -> None:
    model, (x_train, x_test, _, y_test) = train()
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    version = register(model, x_train, metrics={"accuracy": accuracy})
    print(f"registered {version.ref}: test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
