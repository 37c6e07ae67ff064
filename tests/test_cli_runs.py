"""``shipyard run -- COMMAND`` and ``shipyard runs list|show|compare``, through the real CLI
and real child processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shipyard import Registry, Settings
from shipyard.cli import app

TRAIN = """\
import sys, shipyard
with shipyard.start_run("digits", params={"lr": 0.01, "epochs": 3}) as run:
    print("training with", sorted(run.params.items()))
    for epoch in range(run.params["epochs"]):
        run.log_metric("loss", 1.0 / (epoch + 1))
    if run.params.get("fail"):
        print("diverged", file=sys.stderr)
        sys.exit(4)
    if run.params.get("register"):
        run.register_model(sys.argv[1], name="tiny")
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(TRAIN)
    return path


def cli(home: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--home", str(home), *args])


def test_a_command_runs_as_a_run(
    home: Path, script: Path, tiny_onnx_path: Path, tmp_path: Path
) -> None:
    params = tmp_path / "params.toml"
    params.write_text("epochs = 2\nregister = true\nlr = 0.5\n")
    result = cli(
        home, "run", "-e", "cli", "--params", str(params), "-p", "lr=0.2", "--",
        sys.executable, str(script), str(tiny_onnx_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "training with [('epochs', 2), ('lr', 0.2), ('register', True)]" in result.output
    with Registry(Settings(home=home)) as registry:
        (run,) = registry.runs.search()
        assert run.status == "finished"
        assert run.exit_code == 0
        assert run.experiment == "cli"  # the command named it; the script's name does not win
        assert run.command is not None
        assert run.command["argv"][1] == str(script)
        assert registry.runs.versions_of(run.id) == [("tiny", 1)]
        assert registry.get_version("tiny:1").run_id == run.id
        output = next(f for f in registry.runs.files(run.id) if f.path == "output.log")
        kept = registry.artifacts.read_verified(output.digest, "output.log").decode()
    assert "training with" in kept


def test_a_failing_command_fails_the_run_and_registers_nothing(
    home: Path, script: Path, tiny_onnx_path: Path
) -> None:
    result = cli(
        home, "run", "-p", "fail=true", "-p", "register=true", "--",
        sys.executable, str(script), str(tiny_onnx_path),
    )  # fmt: skip
    assert result.exit_code == 4
    assert "failed (exit status 4)" in result.output
    with Registry(Settings(home=home)) as registry:
        (run,) = registry.runs.search()
        assert (run.status, run.exit_code, run.error) == ("failed", 4, "exit status 4")
        assert registry.runs.versions_of(run.id) == []
        assert registry.list_models() == []
        output = next(f for f in registry.runs.files(run.id) if f.path == "output.log")
        assert b"diverged" in registry.artifacts.read_verified(output.digest, "output.log")
    shown = cli(home, "runs", "show", run.id[:6])
    assert shown.exit_code == 0, shown.output
    assert "diverged" in shown.output
    assert "exit status" in shown.output


def test_a_command_that_cannot_start(home: Path) -> None:
    result = cli(home, "run", "--", "/nonexistent/trainer")
    assert result.exit_code == 127
    assert "cannot start '/nonexistent/trainer'" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "-p", "novalue", "--", "true"], "a param is KEY=VALUE, not 'novalue'"),
        (
            ["run", "--params", "/nonexistent.json", "--", "true"],
            "params file /nonexistent.json does not exist",
        ),
        (["runs", "show", "feedbeef"], "no run 'feedbeef'"),
        (["runs", "compare"], "name the runs to compare, or an --experiment"),
    ],
)
def test_bad_input(home: Path, args: list[str], message: str) -> None:
    result = cli(home, *args)
    assert result.exit_code in (3, 5), result.output
    assert message in result.output


def test_a_params_file_of_the_wrong_kind(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "params.json"
    bad.write_text("[1, 2]")
    result = cli(home, "run", "--params", str(bad), "--", "true")
    assert result.exit_code == 3
    assert "must hold one table" in result.output


def test_list_show_and_compare_across_experiments(home: Path) -> None:
    with Registry(Settings(home=home)) as registry:
        import shipyard

        ids = []
        for experiment, lr in (("alpha", 0.1), ("alpha", 0.2), ("beta", 0.1)):
            with shipyard.start_run(
                experiment, params={"lr": lr, "seed": 0}, registry=registry
            ) as run:
                for step in range(10):
                    run.log_metric("loss", lr * (10 - step))
                run.log_metric("accuracy", 1 - lr)
            ids.append(run.id)
    listed = cli(home, "runs", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [r["id"] for r in json.loads(listed.output)] == ids[::-1]
    only = json.loads(cli(home, "runs", "list", "-e", "beta", "--json").output)
    assert [r["id"] for r in only] == [ids[2]]
    table = cli(home, "runs", "list")
    assert all(run_id[:8] in table.output for run_id in ids)

    compared = cli(home, "runs", "compare", ids[0], "-e", "beta", "--json", "--plot", "loss")
    assert compared.exit_code == 0, compared.output
    document = json.loads(compared.output)
    assert [r["id"] for r in document["runs"]] == [ids[0], ids[2]]
    assert document["differing_params"] == []  # same lr, same seed
    assert len(document["history"][ids[0]]) == 10

    drawn = cli(home, "runs", "compare", *ids, "--plot", "loss")
    assert drawn.exit_code == 0, drawn.output
    assert "lr" in drawn.output
    assert "seed" not in drawn.output  # only the params that differ
    assert "loss over steps" in drawn.output
    assert "step 0" in drawn.output
    shown = cli(home, "runs", "show", ids[1], "--json")
    assert json.loads(shown.output)["metrics"] == {"loss": pytest.approx(0.2), "accuracy": 0.8}


def test_models_show_prints_the_lineage(home: Path, script: Path, tiny_onnx_path: Path) -> None:
    import shipyard
    from shipyard.formats import RegistrationOptions
    from shipyard.rollout import service

    made = cli(home, "run", "-p", "register=true", "--", sys.executable, str(script),
               str(tiny_onnx_path))  # fmt: skip
    assert made.exit_code == 0, made.output
    with Registry(Settings(home=home)) as registry:
        (run,) = registry.runs.search()
        registry.set_alias("tiny", "production", 1)
        derived = RegistrationOptions(parent_version=1)
        shipyard.register(tiny_onnx_path, "tiny", options=derived, registry=registry)
        rollout = service.start(registry, "tiny", 2, {"strategy": "canary"})
    shown = cli(home, "models", "show", "tiny:1")
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert f"run {run.id[:8]} (digits, finished): {sys.executable} {script}" in text
    assert "optimized into tiny:2" in text
    assert f"rollout #{rollout.id} canary, baseline against version 2: pending" in text
    child = " ".join(cli(home, "models", "show", "tiny:2").output.split())
    assert f"run {run.id[:8]}" in child  # the parent's run made it too
    assert "optimized from tiny:1" in child
    assert f"rollout #{rollout.id} canary, candidate against version 1: pending" in child


def test_list_and_compare_show_the_newest_runs_and_say_how_many_more(home: Path) -> None:
    with Registry(Settings(home=home)) as registry:
        ids = [
            registry.runs.create(
                f"{i:032x}", "sweep", params={"seed": i}, tags={}, code={}, environment={},
                command=None, actor=None,
            ).id
            for i in range(60)
        ]  # fmt: skip
    listed = cli(home, "runs", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [r["id"] for r in json.loads(listed.stdout)] == ids[::-1][:50]  # the default limit
    assert "the newest 50 of 60 runs: --limit N for more, 0 for all" in listed.stderr
    everything = cli(home, "runs", "list", "--limit", "0", "--json")
    assert len(json.loads(everything.stdout)) == 60
    assert not everything.stderr
    assert len(json.loads(cli(home, "runs", "list", "--limit", "60", "--json").stdout)) == 60

    compared = cli(home, "runs", "compare", "-e", "sweep", "--limit", "5", "--json")
    assert compared.exit_code == 0, compared.output
    assert [r["id"] for r in json.loads(compared.stdout)["runs"]] == ids[::-1][:5]
    assert "the newest 5 of 60 runs of sweep" in compared.stderr
    assert (
        len(json.loads(cli(home, "runs", "compare", "-e", "sweep", "--json").stdout)["runs"]) == 50
    )


LEAN_COMMAND = """\
import json, sys
from shipyard.cli import app
try:
    app(["--home", sys.argv[1], *json.loads(sys.argv[2])])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m in sys.argv[3:])}))
"""


@pytest.mark.parametrize(
    "command", [["runs", "list"], ["runs", "compare", "-e", "digits", "--plot", "loss"]]
)
def test_a_short_command_imports_only_what_it_uses(
    home: Path, script: Path, command: list[str]
) -> None:
    """`runs list` and `runs compare` open a database already at head without Alembic, and
    load neither numpy (the model formats, dataset hashing) nor the other sub-commands."""
    import subprocess

    unwanted = ["alembic", "numpy", "shipyard.formats", "shipyard.cli.models", "shipyard.cli.serve"]
    assert cli(home, "run", "-e", "digits", "--", sys.executable, str(script)).exit_code == 0
    done = subprocess.run(
        [sys.executable, "-c", LEAN_COMMAND, str(home), json.dumps(command), *unwanted],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    report = json.loads(done.stdout.splitlines()[-1])
    assert report == {"code": 0, "loaded": []}
