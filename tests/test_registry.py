"""Versions, references, aliases, the event log and deletion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import shipyard
from helpers import stored_digests, tiny_expected
from shipyard import Registry, Settings
from shipyard.errors import (
    AliasNotFoundError,
    ConflictError,
    InvalidInputError,
    InvalidNameError,
    InvalidReferenceError,
    ModelNotFoundError,
    VersionNotFoundError,
)
from shipyard.registry import ArtifactFile, ModelRef, ModelVersion, NewVersion, VersionStatus

DATABASES = ("sqlite", "postgresql")  # each test on both (tests/conftest.py)
ARTIFACT_STORES = ("folder", "s3")  # and with its artifacts in each


def _reference(tmp_path: Path, name: str, seed: int) -> Path:
    path = tmp_path / f"{name}.npy"
    np.save(path, np.random.default_rng(seed).normal(size=(20, 3)).astype(np.float32))
    return path


@pytest.fixture
def three_versions(registry: Registry, tiny_onnx_path: Path, tmp_path: Path) -> Registry:
    """``tiny`` with versions 1, 2 and 3 (different reference data, so different manifests)."""
    for i in range(3):
        shipyard.register(
            tiny_onnx_path,
            "tiny",
            reference_data=_reference(tmp_path, f"ref{i}", i),
            registry=registry,
        )
    return registry


def test_versions_increment(registry: Registry, tiny_onnx_path: Path) -> None:
    versions = [shipyard.register(tiny_onnx_path, "tiny", registry=registry) for _ in range(3)]
    assert [v.version for v in versions] == [1, 2, 3]
    assert [v.ref for v in versions] == ["tiny:1", "tiny:2", "tiny:3"]
    assert all(v.status is VersionStatus.READY for v in versions)
    assert all(v.flavor == "onnx" for v in versions)


def test_version_numbers_are_per_model(registry: Registry, tiny_onnx_path: Path) -> None:
    assert shipyard.register(tiny_onnx_path, "a", registry=registry).version == 1
    assert shipyard.register(tiny_onnx_path, "b", registry=registry).version == 1
    assert shipyard.register(tiny_onnx_path, "a", registry=registry).version == 2


def test_get_version_by_reference(three_versions: Registry) -> None:
    registry = three_versions
    assert registry.get_version("tiny").version == 3
    assert registry.get_version("tiny:2").version == 2
    assert registry.get_version(ModelRef("tiny", version=1)).version == 1
    registry.set_alias("tiny", "prod", 2)
    by_alias = registry.get_version("tiny@prod")
    assert by_alias.version == 2
    assert by_alias.aliases == ("prod",)
    assert registry.get_version("tiny:3").aliases == ()


def test_metadata_round_trips(registry: Registry, tiny_onnx_path: Path) -> None:
    version = shipyard.register(
        tiny_onnx_path,
        "tiny",
        metrics={"auc": 0.93},
        tags={"team": "risk"},
        run_id="run-42",
        description="a tiny linear model",
        registry=registry,
    )
    stored = registry.get_version("tiny:1")
    assert stored == version
    assert stored.metrics == {"auc": 0.93}
    assert stored.tags == {"team": "risk"}
    assert stored.run_id == "run-42"
    assert stored.created_at.tzinfo is not None
    assert registry.get_model("tiny").description == "a tiny linear model"
    second = shipyard.register(tiny_onnx_path, "tiny", parent_version=1, registry=registry)
    assert registry.get_version("tiny:2").parent_version == 1 == second.parent_version


def test_list_models_and_versions(registry: Registry, tiny_onnx_path: Path) -> None:
    assert registry.list_models() == []
    shipyard.register(tiny_onnx_path, "zeta", registry=registry)
    shipyard.register(tiny_onnx_path, "alpha", registry=registry)
    shipyard.register(tiny_onnx_path, "alpha", alias="prod", registry=registry)
    models = registry.list_models()
    assert [m.name for m in models] == ["alpha", "zeta"]
    assert [m.latest_version for m in models] == [2, 1]
    assert models[0].aliases == {"prod": 2}
    versions = registry.list_versions("alpha")
    assert [v.version for v in versions] == [1, 2]
    assert [v.aliases for v in versions] == [(), ("prod",)]


def test_alias_at_registration(registry: Registry, tiny_onnx_path: Path) -> None:
    version = shipyard.register(tiny_onnx_path, "tiny", alias="staging", registry=registry)
    assert version.aliases == ("staging",)
    assert registry.get_version("tiny@staging").version == 1
    (event,) = [e for e in registry.events("tiny") if e.kind == "alias.set"]
    assert (event.alias, event.from_version, event.to_version) == ("staging", None, 1)
    assert event.reason == "set at registration"


def test_alias_moves_are_logged(tmp_path: Path, tiny_onnx_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", actor="alice")
    with Registry(settings) as registry:
        for _ in range(3):
            shipyard.register(tiny_onnx_path, "tiny", registry=registry)
        registry.set_alias("tiny", "prod", 1, reason="first release")
        moved = registry.set_alias("tiny", "prod", 2, reason="better auc")
        assert moved.version == 2
        assert moved.aliases == ("prod",)
        registry.set_alias("tiny", "prod", 3)
        assert registry.get_version("tiny@prod").version == 3
        assert registry.get_model("tiny").aliases == {"prod": 3}

        events = registry.events("tiny")
        assert [e.id for e in events] == sorted((e.id for e in events), reverse=True)
        history = [
            (e.kind, e.alias, e.from_version, e.to_version, e.reason, e.actor)
            for e in reversed(events)
        ]
        assert history == [
            ("version.registered", None, None, 1, None, "alice"),
            ("version.registered", None, None, 2, None, "alice"),
            ("version.registered", None, None, 3, None, "alice"),
            ("alias.set", "prod", None, 1, "first release", "alice"),
            ("alias.set", "prod", 1, 2, "better auc", "alice"),
            ("alias.set", "prod", 2, 3, None, "alice"),
        ]
        registered = events[-1]
        assert registered.details["flavor"] == "onnx"
        first_digest = registry.get_version("tiny:1").artifact_digest
        assert registered.details["artifact_digest"] == first_digest
        assert all(e.at.tzinfo is not None for e in events)
        assert [e.kind for e in registry.events("tiny", limit=2)] == ["alias.set", "alias.set"]


def test_events_filter_by_model(registry: Registry, tiny_onnx_path: Path) -> None:
    shipyard.register(tiny_onnx_path, "a", registry=registry)
    shipyard.register(tiny_onnx_path, "b", registry=registry)
    assert [e.model for e in registry.events("a")] == ["a"]
    assert sorted(e.model for e in registry.events()) == ["a", "b"]
    assert registry.events("nobody") == []


def test_actor_defaults_to_the_os_user(registry: Registry, tiny_onnx_path: Path) -> None:
    import getpass

    version = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    assert version.created_by == getpass.getuser()


def test_delete_alias(registry: Registry, tiny_onnx_path: Path) -> None:
    shipyard.register(tiny_onnx_path, "tiny", alias="prod", registry=registry)
    registry.delete_alias("tiny", "prod", reason="retired")
    with pytest.raises(AliasNotFoundError, match="has no alias 'prod'"):
        registry.get_version("tiny@prod")
    latest = registry.events("tiny")[0]
    assert (latest.kind, latest.alias, latest.from_version, latest.reason) == (
        "alias.deleted",
        "prod",
        1,
        "retired",
    )
    with pytest.raises(AliasNotFoundError, match="has no alias 'prod'"):
        registry.delete_alias("tiny", "prod")


# Errors ----------------------------------------------------------------------------------


def test_alias_to_a_missing_version(registry: Registry, tiny_onnx_path: Path) -> None:
    shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    with pytest.raises(VersionNotFoundError, match="has no version 7"):
        registry.set_alias("tiny", "prod", 7)
    assert registry.get_model("tiny").aliases == {}
    assert [e.kind for e in registry.events("tiny")] == ["version.registered"]


def test_unknown_model(registry: Registry) -> None:
    with pytest.raises(ModelNotFoundError, match="no model named 'ghost'"):
        registry.get_model("ghost")
    with pytest.raises(ModelNotFoundError, match="no model named 'ghost'"):
        registry.get_version("ghost")
    with pytest.raises(ModelNotFoundError, match="no model named 'ghost'"):
        registry.list_versions("ghost")
    with pytest.raises(ModelNotFoundError, match="no model named 'ghost'"):
        registry.set_alias("ghost", "prod", 1)
    with pytest.raises(ModelNotFoundError, match="no model named 'ghost'"):
        shipyard.load("ghost@prod", registry=registry)


def test_unknown_version_and_alias(registry: Registry, tiny_onnx_path: Path) -> None:
    shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    with pytest.raises(VersionNotFoundError, match="'tiny' has no version 2"):
        registry.get_version("tiny:2")
    with pytest.raises(AliasNotFoundError, match="'tiny' has no alias 'prod'"):
        registry.get_version("tiny@prod")
    with pytest.raises(AliasNotFoundError, match="'tiny' has no alias 'prod'"):
        shipyard.load("tiny@prod", registry=registry)


def test_bad_names_and_references(registry: Registry) -> None:
    with pytest.raises(InvalidNameError, match="invalid model name 'Bad'"):
        registry.get_model("Bad")
    with pytest.raises(InvalidReferenceError, match="must be a whole number"):
        registry.get_version("tiny:latest")
    with pytest.raises(InvalidNameError, match="invalid alias name 'Prod'"):
        registry.set_alias("tiny", "Prod", 1)
    with pytest.raises(InvalidNameError, match="invalid model name"):
        registry.events("no/slashes")


def test_read_file_that_a_version_lacks(registry: Registry, tiny_onnx_path: Path) -> None:
    version = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    with pytest.raises(InvalidInputError, match=r"has no artifact file 'weights\.bin'"):
        registry.read_file(version, "weights.bin")


# Deleting --------------------------------------------------------------------------------


def test_delete_aliased_version_needs_force(three_versions: Registry) -> None:
    registry = three_versions
    registry.set_alias("tiny", "prod", 2)
    registry.set_alias("tiny", "canary", 2)
    with pytest.raises(ConflictError, match="target of alias"):
        registry.delete_version("tiny:2")
    assert [v.version for v in registry.list_versions("tiny")] == [1, 2, 3]
    assert registry.get_model("tiny").aliases == {"canary": 2, "prod": 2}

    deleted = registry.delete_version("tiny:2", force=True)
    assert deleted.version == 2
    assert set(deleted.aliases) == {"canary", "prod"}
    assert [v.version for v in registry.list_versions("tiny")] == [1, 3]
    assert registry.get_model("tiny").aliases == {}
    with pytest.raises(AliasNotFoundError, match="no alias 'prod'"):
        registry.get_version("tiny@prod")
    with pytest.raises(VersionNotFoundError, match="no version 2"):
        registry.get_version("tiny:2")

    kinds = [(e.kind, e.alias, e.from_version) for e in registry.events("tiny")[:3]]
    assert sorted(kinds, key=str) == sorted(
        [
            ("alias.deleted", "canary", 2),
            ("alias.deleted", "prod", 2),
            ("version.deleted", None, 2),
        ],
        key=str,
    )
    assert kinds[0] == ("version.deleted", None, 2)


def test_version_numbers_are_not_reused(three_versions: Registry, tiny_onnx_path: Path) -> None:
    registry = three_versions
    registry.delete_version("tiny:3")
    assert shipyard.register(tiny_onnx_path, "tiny", registry=registry).version == 3
    registry.delete_version("tiny:1")
    assert registry.get_version("tiny").version == 3


def test_delete_unaliased_version(three_versions: Registry) -> None:
    registry = three_versions
    registry.set_alias("tiny", "prod", 3)
    registry.delete_version("tiny:1")
    assert [v.version for v in registry.list_versions("tiny")] == [2, 3]
    assert registry.get_version("tiny@prod").version == 3


def _file(version: ModelVersion, path: str) -> ArtifactFile:
    entry = version.file(path)
    assert entry is not None, f"{version.ref} has no {path}"
    return entry


def test_delete_keeps_shared_blobs(
    registry: Registry, settings: Settings, tiny_onnx_path: Path, tmp_path: Path
) -> None:
    first = shipyard.register(
        tiny_onnx_path, "tiny", reference_data=_reference(tmp_path, "a", 1), registry=registry
    )
    second = shipyard.register(
        tiny_onnx_path, "tiny", reference_data=_reference(tmp_path, "b", 2), registry=registry
    )
    model_1, model_2 = _file(first, "model.onnx"), _file(second, "model.onnx")
    ref_1, ref_2 = _file(first, "reference.npy"), _file(second, "reference.npy")
    assert model_1.digest == model_2.digest  # same content, stored once
    assert ref_1.digest != ref_2.digest
    assert first.artifact_digest != second.artifact_digest
    assert len(stored_digests(settings)) == 5  # one model, two references, two manifests

    registry.delete_version("tiny:1")
    remaining = set(stored_digests(settings))
    assert remaining == {model_1.digest, ref_2.digest, second.artifact_digest}
    registry.verify("tiny:2")
    x = np.ones((2, 3))
    assert np.allclose(shipyard.load("tiny:2", registry=registry).predict(x)["y"], tiny_expected(x))

    registry.delete_version("tiny:2")
    assert stored_digests(settings) == []


def test_identical_registrations_share_everything(
    registry: Registry, settings: Settings, tiny_onnx_path: Path
) -> None:
    first = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    second = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    assert first.artifact_digest == second.artifact_digest
    assert first.files == second.files
    assert len(stored_digests(settings)) == 2  # model.onnx and the manifest
    registry.delete_version("tiny:1")
    assert len(stored_digests(settings)) == 2
    registry.verify("tiny:2")
    registry.delete_version("tiny:2")
    assert stored_digests(settings) == []
    with pytest.raises(VersionNotFoundError, match="'tiny' has no versions"):
        registry.get_version("tiny")


def test_numpy_metrics_are_stored_as_floats(registry: Registry, tiny_onnx_path: Path) -> None:
    version = shipyard.register(
        tiny_onnx_path,
        "tiny",
        metrics={"auc": np.float32(0.5), "loss": np.float64(0.25), "n": 3},
        registry=registry,
    )
    stored = registry.get_version("tiny:1")
    assert stored.metrics == version.metrics == {"auc": 0.5, "loss": 0.25, "n": 3.0}
    assert all(type(v) is float for v in stored.metrics.values())


def test_metrics_must_be_numbers(settings: Settings, tiny_onnx_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="metric 'auc' must be a number, got str"):
        shipyard.register(tiny_onnx_path, "tiny", metrics={"auc": "high"}, settings=settings)
    with pytest.raises(InvalidInputError, match="metric 'auc' must be a number, got list"):
        shipyard.register(tiny_onnx_path, "tiny", metrics={"auc": [0.9]}, settings=settings)
    assert not settings.home.exists()


def test_a_version_derived_from_another_keeps_its_metadata(
    registry: Registry, tiny_onnx_path: Path, tmp_path: Path
) -> None:
    parent = shipyard.register(
        tiny_onnx_path, "tiny", metrics={"auc": 0.9}, tags={"team": "risk"}, registry=registry
    )
    staged = {}
    for name, content in registry.read_files(parent).items():
        staged[name] = tmp_path / name
        staged[name].write_bytes(content)
    new = NewVersion.derived_from(parent, staged)
    new.tags["copied"] = "yes"
    child = registry.create_version("tiny", new)
    assert child.parent_version == parent.version
    assert (child.flavor, child.kind, child.signature) == (
        parent.flavor,
        parent.kind,
        parent.signature,
    )
    assert child.metrics == parent.metrics
    assert child.conversion == parent.conversion
    assert child.tags == {"team": "risk", "copied": "yes"}
    assert registry.get_version("tiny:1").tags == {"team": "risk"}  # the parent's own are kept
