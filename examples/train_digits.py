"""Train a digits classifier (a PyTorch MLP, Adam, cross-entropy) as a Shipyard run.

    shipyard run -- python examples/train_digits.py            # version 1, on scikit-learn's digits
    shipyard retrain digits                                    # the same script, on served traffic

A retrain passes ``retrain_data`` (the served, labelled traffic as Parquet): the script then
learns from it together with the original data. ``broken=true`` trains on shuffled labels, a
bug the demo rolls out to watch it rolled back.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import shipyard


def served_rows(path: str) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path).to_pydict()
    columns = [c for c in table if c.startswith("input.")]
    columns.sort(key=lambda c: int(re.findall(r"\d+", c)[-1]))  # input[10] after input[9]
    x = np.column_stack([table[c] for c in columns]).astype(np.float32)
    return x, np.asarray([int(np.ravel(v)[0]) for v in table["label"]], dtype=np.int64)


def fit(x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_of = torch.nn.CrossEntropyLoss()
    inputs, targets = torch.from_numpy(x / 16.0), torch.from_numpy(y)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            loss = loss_of(model(inputs[batch]), targets[batch])
            loss.backward()
            optimizer.step()
    return model


class Scaled(torch.nn.Module):
    """The served model takes raw pixel values (0..16), as the traffic sends them."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x / 16.0), dim=1)


def main() -> None:
    defaults = {"epochs": 30, "seed": 0, "broken": False, "retrain_data": ""}
    with shipyard.start_run("digits", params=defaults) as run:
        p = run.params
        digits = load_digits()
        x, y = digits.data.astype(np.float32), digits.target.astype(np.int64)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
        if p.get("retrain_data"):
            served_x, served_y = served_rows(p["retrain_data"])
            print(f"learning from {len(served_y)} served rows as well")
            x_train = np.concatenate([x_train, served_x])
            y_train = np.concatenate([y_train, served_y])
            x_test, y_test = served_x, served_y  # judged on the world as it is now
        run.log_dataset(x_train, "train", targets=y_train)
        if p["broken"]:
            y_train = np.random.default_rng(1).permutation(y_train)  # the bug
        net = fit(x_train, y_train, int(p["epochs"]), int(p["seed"]))
        model = Scaled(net).eval()
        with torch.no_grad():
            accuracy = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
        run.log_metric("accuracy", accuracy)
        print(f"test accuracy {accuracy:.3f}")
        with tempfile.TemporaryDirectory() as tmp:
            reference = Path(tmp) / "reference.csv"  # what drift is measured against
            np.savetxt(reference, x_train, delimiter=",", fmt="%g")
            version = run.register_model(
                model,
                name="digits",
                example_input=x_train[:8],
                reference_data=reference,
                metrics={"accuracy": accuracy},
            )
        print(f"registered {version.ref}")


if __name__ == "__main__":
    main()
