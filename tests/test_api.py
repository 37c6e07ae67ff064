"""The top-level Python API: where a registration goes, and which options it takes."""

from __future__ import annotations

from pathlib import Path

import pytest

import shipyard
from shipyard import Registry, Settings


def test_without_registry_or_settings_the_environment_names_the_home(
    tmp_path: Path, tiny_onnx_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "from-env"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    version = shipyard.register(tiny_onnx_path, "tiny")
    assert shipyard.load("tiny").signature == version.signature
    with Registry(Settings(home=home)) as registry:
        assert registry.get_version("tiny") == version


def test_a_registry_wins_over_settings(
    registry: Registry, tmp_path: Path, tiny_onnx_path: Path
) -> None:
    elsewhere = Settings(home=tmp_path / "elsewhere")
    shipyard.register(tiny_onnx_path, "tiny", registry=registry, settings=elsewhere)
    assert registry.get_version("tiny").version == 1
    assert not elsewhere.home.exists()


def test_optimize_needs_a_registry_or_settings() -> None:
    from shipyard.optimize import optimize

    with pytest.raises(TypeError, match=r"optimize\(\) needs the registry= .* or its settings="):
        optimize("tiny")
