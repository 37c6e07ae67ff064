"""PyTorch modules, exported to ONNX with a dynamic batch axis."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import shipyard
from helpers import blob_files, version_rows
from shipyard import Registry, Settings
from shipyard.errors import InvalidInputError
from shipyard.registry import TensorSpec

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def mlp() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    ).eval()


def test_mlp_with_dynamic_batch(registry: Registry, mlp: Any) -> None:
    example = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)
    version = shipyard.register(mlp, "mlp", example_input=example, registry=registry)
    assert version.flavor == "pytorch"
    assert version.signature.inputs == (TensorSpec("input", "FP32", (-1, 6)),)
    assert version.signature.outputs == (TensorSpec("output", "FP32", (-1, 3)),)
    assert version.conversion["parity"]["passed"] is True
    assert version.conversion["opset"] == 17
    assert np.asarray(version.input_example).shape == (2, 6)

    predictor = shipyard.load("mlp", registry=registry)
    batch = np.random.default_rng(1).normal(size=(7, 6)).astype(np.float32)
    with torch.no_grad():
        expected = mlp(torch.from_numpy(batch)).numpy()
    got = predictor.predict(batch)["output"]
    assert got.shape == (7, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_torch_tensor_example_and_float64(registry: Registry, mlp: Any) -> None:
    version = shipyard.register(
        mlp, "mlp", example_input=torch.zeros(1, 6, dtype=torch.float64), registry=registry
    )
    assert version.conversion["parity"]["passed"] is True
    out = shipyard.load("mlp", registry=registry).predict(np.ones((3, 6)))["output"]
    with torch.no_grad():
        expected = mlp(torch.ones(3, 6)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_reference_data_checks_parity(registry: Registry, mlp: Any, tmp_path: Any) -> None:
    reference = tmp_path / "ref.npy"
    np.save(reference, np.random.default_rng(2).normal(size=(40, 6)).astype(np.float32))
    version = shipyard.register(
        mlp, "mlp", example_input=np.zeros((1, 6)), reference_data=reference, registry=registry
    )
    assert version.conversion["parity"]["rows"] == 40
    assert version.conversion["reference_data"]["rows"] == 40


def test_two_outputs(registry: Registry) -> None:
    class TwoHeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Linear(4, 4)

        def forward(self, x: Any) -> Any:
            h = self.body(x)
            return h.sum(dim=1, keepdim=True), torch.sigmoid(h)

    torch.manual_seed(0)
    module = TwoHeads()
    shipyard.register(module, "heads", example_input=np.ones((2, 4)), registry=registry)
    outputs = shipyard.load("heads", registry=registry).predict(np.ones((5, 4)))
    assert set(outputs) == {"output_0", "output_1"}
    assert outputs["output_0"].shape == (5, 1)
    assert outputs["output_1"].shape == (5, 4)


def test_without_example_input(settings: Settings, mlp: Any) -> None:
    with pytest.raises(InvalidInputError, match="needs an example input"):
        shipyard.register(mlp, "mlp", settings=settings)
    assert version_rows(settings) == 0


def test_module_that_fails_on_its_example(settings: Settings, mlp: Any) -> None:
    with pytest.raises(InvalidInputError, match="cannot run its example input"):
        shipyard.register(mlp, "mlp", example_input=np.zeros((2, 5)), settings=settings)
    assert version_rows(settings) == 0
    assert blob_files(settings) == []


def test_module_that_raises(settings: Settings) -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            raise RuntimeError("kaput")

    with pytest.raises(InvalidInputError, match="cannot run its example input: kaput"):
        shipyard.register(Broken(), "broken", example_input=np.zeros((2, 3)), settings=settings)


def test_scalar_example(settings: Settings, mlp: Any) -> None:
    with pytest.raises(InvalidInputError, match="must have a batch axis"):
        shipyard.register(mlp, "mlp", example_input=3.0, settings=settings)


def test_example_of_strings(settings: Settings, mlp: Any) -> None:
    with pytest.raises(InvalidInputError, match="not a numeric array"):
        shipyard.register(mlp, "mlp", example_input=[["a"] * 6], settings=settings)
