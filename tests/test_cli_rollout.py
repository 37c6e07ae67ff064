"""``shipyard rollout``: every bad start refused with its message and nothing started, and the
commands that read a rollout or ask its controller to step in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rollout_models import register_classifier
from server_helpers import register_tiny
from shipyard import Registry, Settings
from shipyard.cli import app
from shipyard.errors import ConflictError, InvalidInputError, NotFoundError
from shipyard.rollout.controller import RolloutController


def run(home: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--home", str(home), *args])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """clf:1 in production, clf:2 a compatible candidate, clf:3 one with another signature."""
    home = tmp_path / "home"
    with Registry(Settings(home=home)) as registry:
        register_classifier(registry, tmp_path / "src", "good", alias="production")
        register_classifier(registry, tmp_path / "src", "different")
        register_tiny(registry, tmp_path / "src", 1.0, name="clf")
    return home


def _rollouts(home: Path) -> list[Any]:
    with Registry(Settings(home=home)) as registry:
        return registry.rollouts.history("clf")


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (
            ["--candidate", "3"],
            InvalidInputError.exit_code,
            "clf:3 cannot replace clf:1: it lacks the output 'label'; it lacks the output 'scores'",
        ),
        (["--candidate", "9"], NotFoundError.exit_code, "model 'clf' has no version 9"),
        (
            ["--candidate", "1"],
            InvalidInputError.exit_code,
            "the candidate is the baseline (clf:1): nothing to roll out",
        ),
        (
            ["--candidate", "2", "--steps", "10,5"],
            InvalidInputError.exit_code,
            "canary steps must rise strictly within (0, 100] percent, got 10, 5",
        ),
        (
            ["--candidate", "2", "--steps", "50,150"],
            InvalidInputError.exit_code,
            "canary steps must rise strictly within (0, 100] percent, got 50, 150",
        ),
        (
            ["--candidate", "2", "--steps", "five"],
            InvalidInputError.exit_code,
            "steps are percentages separated by commas, like 5,10,25,50; got 'five'",
        ),
        (
            ["--candidate", "2", "--interval", "500ms"],
            InvalidInputError.exit_code,
            "cannot read '500ms' as a duration: use 90s, 10m, 2h or a number of seconds",
        ),
        (
            ["--candidate", "2", "--interval", "0.5"],
            InvalidInputError.exit_code,
            "interval_s must be at least 1 second, got 0.5",
        ),
        (
            ["--candidate", "2", "--strategy", "big-bang"],
            InvalidInputError.exit_code,
            "strategy 'big-bang' is not one of canary, blue-green, ab, shadow",
        ),
        (
            ["--candidate", "2", "--strategy", "ab", "--goal", "f1"],
            InvalidInputError.exit_code,
            "goal 'f1' is not one of accuracy, mae, latency",
        ),
        (
            ["--candidate", "2", "--strategy", "ab"],
            InvalidInputError.exit_code,
            "an A/B rollout needs a goal metric, one of accuracy, mae, latency",
        ),
    ],
)
def test_a_bad_start_is_refused_and_starts_nothing(
    home: Path, args: list[str], exit_code: int, message: str
) -> None:
    result = run(home, "rollout", "start", "clf", *args)
    assert result.exit_code == exit_code, result.output
    assert message in " ".join(result.stderr.split())
    assert _rollouts(home) == []


def test_an_unknown_model_and_a_model_without_its_alias_are_refused(home: Path) -> None:
    result = run(home, "rollout", "start", "nope", "--candidate", "2")
    assert result.exit_code == NotFoundError.exit_code
    assert "no model named 'nope'" in result.stderr
    result = run(home, "rollout", "start", "clf", "--candidate", "2", "--alias", "staging")
    assert result.exit_code == NotFoundError.exit_code
    assert "clf has no staging alias to roll out from" in " ".join(result.stderr.split())


def test_a_second_rollout_while_one_is_active_is_a_conflict(home: Path) -> None:
    first = run(home, "rollout", "start", "clf", "--candidate", "2", "--json")
    assert first.exit_code == 0, first.output
    rollout = json.loads(first.stdout)
    assert (rollout["state"], rollout["baseline"], rollout["candidate"]) == ("pending", 1, 2)
    second = run(home, "rollout", "start", "clf", "--candidate", "2")
    assert second.exit_code == ConflictError.exit_code
    assert f"clf already has rollout {rollout['id']} (pending)" in second.stderr
    assert len(_rollouts(home)) == 1


def test_status_history_and_an_abort_carried_out_by_the_controller(home: Path) -> None:
    assert run(home, "rollout", "status", "clf").exit_code == NotFoundError.exit_code
    started = run(home, "rollout", "start", "clf", "--candidate", "2", "--steps", "5,50",
                  "--interval", "2s", "--deadline", "1m")  # fmt: skip
    assert started.exit_code == 0, started.output
    assert "rollout 1 of clf: 1 -> 2 (canary) is pending" in started.stdout
    shown = json.loads(run(home, "rollout", "status", "clf", "--json").stdout)
    assert shown["spec"]["steps"] == [0.05, 0.5]
    assert (shown["spec"]["interval_s"], shown["spec"]["deadline_s"]) == (2.0, 60.0)

    settings = Settings(home=home)
    with Registry(settings) as registry:
        controller = RolloutController(registry, "test-controller")
        (moved,) = controller.tick()  # pre-flight passes: 5% to the candidate
        assert (moved.state, moved.weight, moved.step) == ("progressing", 0.05, 1)

        asked = run(home, "rollout", "abort", "clf")
        assert asked.exit_code == 0, asked.output
        assert "abort requested" in asked.stdout
        assert registry.rollouts.get(1).command == "abort"
        (moved,) = controller.tick()
        assert (moved.state, moved.weight, moved.command) == ("rolled_back", 0.0, None)
        kinds = [e.kind for e in reversed(registry.events("clf")) if e.kind.startswith("rollout")]
    assert kinds == [
        "rollout.pending", "rollout.validating", "rollout.progressing", "rollout.requested",
        "rollout.rolling_back", "rollout.rolled_back",
    ]  # fmt: skip
    status = run(home, "rollout", "status", "clf", "--watch")  # finished: prints once, returns
    assert status.exit_code == 0
    assert "rolled_back, 0% to 2 (baseline 1)" in status.stdout
    again = run(home, "rollout", "abort", "clf")
    assert again.exit_code == ConflictError.exit_code
    assert "clf has no unfinished rollout: rollout 1 is rolled_back" in again.stderr
    listed = json.loads(run(home, "rollout", "history", "clf", "--json").stdout)
    assert [(r["id"], r["state"]) for r in listed] == [(1, "rolled_back")]
    assert run(home, "rollout", "undo", "clf").exit_code == NotFoundError.exit_code


def test_undo_returns_the_alias_to_the_version_the_promotion_replaced(home: Path) -> None:
    assert run(home, "rollout", "start", "clf", "--candidate", "2").exit_code == 0
    with Registry(Settings(home=home)) as registry:
        controller = RolloutController(registry, "test-controller")
        controller.tick()
        assert run(home, "rollout", "promote", "clf").exit_code == 0
        (moved,) = controller.tick()
        assert moved.state == "succeeded"
        assert registry.get_version("clf@production").version == 2
        undone = run(home, "rollout", "undo", "clf")
        assert undone.exit_code == 0, undone.output
        assert "clf@production: 2 -> 1 (undid rollout 1)" in undone.stdout
        assert registry.get_version("clf@production").version == 1
    again = run(home, "rollout", "undo", "clf")
    assert again.exit_code == ConflictError.exit_code
    assert "undo only reverts the last promotion" in " ".join(again.stderr.split())
