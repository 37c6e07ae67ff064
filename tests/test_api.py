"""The top-level Python API: where a registration goes, and which options it takes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import shipyard
from shipyard import Registry, Settings
from shipyard.errors import InvalidInputError, InvalidNameError
from shipyard.formats import RegistrationOptions

DATABASES = ("sqlite", "postgresql")  # each test on both (tests/conftest.py)
ARTIFACT_STORES = ("folder", "s3")  # and with its artifacts in each


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


# Registration options -----------------------------------------------------------------------


def test_keywords_go_on_top_of_the_options(registry: Registry, tiny_onnx_path: Path) -> None:
    options = RegistrationOptions(alias="staging", tags={"team": "risk"}, run_id="run-1")
    version = shipyard.register(
        tiny_onnx_path, "tiny", options=options, alias="production", registry=registry
    )
    assert version.aliases == ("production",)
    assert (version.tags, version.run_id) == ({"team": "risk"}, "run-1")
    assert options.alias == "staging"  # the options given are left as they were


def test_an_unknown_keyword_is_refused_before_anything_is_written(
    settings: Settings, tiny_onnx_path: Path
) -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'tolerence'; the options are flavor"):
        shipyard.register(tiny_onnx_path, "tiny", tolerence=0.1, settings=settings)
    assert not settings.home.exists()


def test_options_are_validated_when_built() -> None:
    with pytest.raises(InvalidNameError, match="invalid alias name 'Prod'"):
        RegistrationOptions(alias="Prod")
    with pytest.raises(InvalidInputError, match=r"tolerance must be in \[0, 1\), got 1"):
        RegistrationOptions(tolerance=1)
    with pytest.raises(InvalidInputError, match="metric 'auc' must be a number, got str"):
        RegistrationOptions(metrics={"auc": "high"})
    options = RegistrationOptions(metrics={"auc": np.float32(0.5)})
    assert options.metrics == {"auc": 0.5}
    assert type(options.metrics["auc"]) is float
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.alias = "production"  # type: ignore[misc]
