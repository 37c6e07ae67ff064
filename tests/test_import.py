"""`import shipyard` stays light, and the public API is exactly what it claims."""

from __future__ import annotations

import json
import subprocess
import sys

import shipyard

HEAVY = ("torch", "sklearn", "scipy", "transformers", "onnxruntime", "sentence_transformers")


def test_import_does_not_load_heavy_libraries() -> None:
    script = (
        "import json, sys, shipyard\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(result.stdout) == []


def test_public_api_is_pinned() -> None:
    assert set(shipyard.__all__) == {
        "ModelRef",
        "ModelVersion",
        "Predictor",
        "Registry",
        "Settings",
        "ShipyardError",
        "__version__",
        "load",
        "register",
        "start_run",
    }
    assert len(shipyard.__all__) == len(set(shipyard.__all__))


def test_every_public_name_resolves() -> None:
    for name in shipyard.__all__:
        assert getattr(shipyard, name) is not None


def test_predictor_is_the_runtime_class() -> None:
    from shipyard.runtime.predictor import Predictor

    assert shipyard.Predictor is Predictor


def test_unknown_attribute_raises_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = shipyard.nope  # type: ignore[attr-defined]
