"""``retrain``: the champion's own training command run again on its labelled traffic, the
result gated offline against the champion and rolled out; and each way that fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from retrain_world import log_served, train_champion
from shipyard import Registry, Settings
from shipyard.cli import app
from shipyard.errors import ConflictError, InvalidInputError, NoTrainingDataError, RetrainError
from shipyard.retrain import RetrainOptions, retrain
from shipyard.retrain.service import lease_name


class Quiet:
    """Swallows the training command's output (it is kept with the run anyway)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@pytest.fixture
def world(tmp_path: Path) -> tuple[Registry, Path, str]:
    registry = Registry(Settings(home=tmp_path / "home"))
    mode, run_id = train_champion(registry, tmp_path / "src")
    yield registry, mode, run_id
    registry.close()


def _retrain(registry: Registry, **options: Any) -> Any:
    return retrain(registry, "world", RetrainOptions(**options), echo=Quiet())


def test_a_retrain_learns_the_new_world_passes_its_gate_and_rolls_out(world: Any) -> None:
    registry, _, first_run = world
    log_served(registry, 300)
    result = _retrain(registry, slice_feature="x.1", rollout={"interval_s": 1})
    assert result.candidate.ref == "world:2"
    assert result.candidate.run_id == result.run.id != first_run
    # The training command was the champion's own, given the traffic as new data.
    run = registry.runs.get(result.run.id)
    assert run.command == registry.runs.get(first_run).command
    assert run.params["retrain_of"] == "world:1"
    assert run.params["retrain_data"].endswith("traffic.parquet")
    assert run.tags == {"retrain_of": "world:1", "trigger": "manual"}
    (dataset,) = registry.runs.datasets(run.id)
    assert dataset.rows == result.data.rows
    # Some 30% of the requests were held out, and the candidate trained on the rest.
    assert result.data.requests == 300
    assert 60 < len(result.data.held_out) < 120
    assert result.data.rows + len(result.data.held_out) == 300
    gate = result.gate
    assert gate.passed
    assert gate.overall.rows == len(result.data.held_out)
    assert gate.overall.candidate > gate.overall.champion + 0.05
    assert [s.slice.split(" in ")[0] for s in gate.slices] == ["x.1"] * 4
    assert sum(s.rows for s in gate.slices) == gate.overall.rows
    # A rollout of the candidate was started from the champion.
    rollout = result.rollout
    assert (rollout.baseline, rollout.candidate, rollout.strategy) == (1, 2, "canary")
    assert rollout.spec["interval_s"] == 1
    kinds = [e.kind for e in registry.events("world") if e.kind.startswith("retrain.")]
    assert kinds == ["retrain.gated", "retrain.started"]
    gated = next(e for e in registry.events("world") if e.kind == "retrain.gated")
    assert gated.reason.startswith("passed: accuracy ")
    assert gated.details["overall"]["rows"] == gate.overall.rows


def test_a_candidate_worse_than_the_champion_is_refused(world: Any) -> None:
    registry, mode, _ = world
    log_served(registry, 300)
    mode.write_text("inverted")
    result = _retrain(registry)
    assert result.candidate.ref == "world:2"
    assert not result.passed
    assert result.rollout is None
    assert registry.rollouts.history("world") == []
    gated = next(e for e in registry.events("world") if e.kind == "retrain.gated")
    assert gated.reason.startswith("refused: all: accuracy ")


def test_a_failing_training_command_registers_nothing(world: Any) -> None:
    registry, mode, _ = world
    log_served(registry, 100)
    mode.write_text("fail")
    with pytest.raises(RetrainError, match=r"the training command failed \(exit status 3\)"):
        _retrain(registry)
    assert [v.version for v in registry.list_versions("world")] == [1]
    (failed, _) = registry.runs.search()
    assert (failed.status, failed.exit_code) == ("failed", 3)
    output = next(f for f in registry.runs.files(failed.id) if f.path == "output.log")
    assert b"the data loader broke" in registry.artifacts.read_verified(output.digest, "log")
    event = registry.events("world")[0]
    assert (event.kind, event.reason.split(";")[0]) == (
        "retrain.failed",
        "the training command failed (exit status 3)",
    )
    assert registry.leases.current(lease_name("world")) is None  # given back


def test_a_training_command_that_registers_nothing(world: Any) -> None:
    registry, mode, _ = world
    log_served(registry, 100)
    mode.write_text("noregister")
    with pytest.raises(RetrainError, match="registered no version of world"):
        _retrain(registry)


def test_no_feedback_and_no_new_data_says_so(world: Any) -> None:
    registry, _, _ = world
    with pytest.raises(NoTrainingDataError, match="world has no labelled traffic"):
        _retrain(registry)
    log_served(registry, 20, inputs=False)
    with pytest.raises(NoTrainingDataError, match="20 labelled requests but none with its inputs"):
        _retrain(registry)
    assert [v.version for v in registry.list_versions("world")] == [1]
    assert registry.runs.search()[0].params.get("retrain_data") is None  # nothing was run


def test_one_retrain_at_a_time(world: Any) -> None:
    registry, _, _ = world
    log_served(registry, 50)
    held = registry.leases.acquire(lease_name("world"), "another-host:42", 60)
    assert held is not None
    with pytest.raises(ConflictError, match="a retrain of world is already running"):
        _retrain(registry)
    registry.leases.release(held)


def test_a_version_registered_outside_a_run(tmp_path: Path, tiny_onnx_path: Path) -> None:
    import shipyard

    with Registry(Settings(home=tmp_path / "home")) as registry:
        shipyard.register(tiny_onnx_path, "tiny", registry=registry, alias="production")
        with pytest.raises(InvalidInputError, match="tiny:1 was not registered from a run"):
            retrain(registry, "tiny")


def test_the_command_line(world: Any, tmp_path: Path) -> None:
    registry, _, _ = world
    home = str(registry.settings.home)
    empty = CliRunner().invoke(app, ["--home", home, "retrain", "world"])
    assert empty.exit_code == 3
    assert "world has no labelled traffic" in empty.output
    log_served(registry, 200)
    done = CliRunner().invoke(
        app, ["--home", home, "retrain", "world", "--json", "--strategy", "none"]
    )
    assert done.exit_code == 0, done.output
    document = json.loads(done.output[done.output.index("{") :])
    assert (document["champion"], document["candidate"], document["rollout"]) == (
        "world:1",
        "world:2",
        None,
    )
    assert document["gate"]["passed"] is True
    bad = CliRunner().invoke(app, ["--home", home, "retrain", "world", "--holdout", "1.5"])
    assert bad.exit_code == 3
    assert "the held-out share must be in (0, 1), got 1.5" in bad.output
