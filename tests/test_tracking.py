"""Run tracking through the Python API, on a real SQLite registry: params, batched metrics,
NaN, datasets by fingerprint, files, code version, linking versions, and the refusals."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event

import shipyard
from shipyard import Registry, Settings
from shipyard.errors import ConflictError, InvalidInputError, NotFoundError
from shipyard.tracking.run import FLUSH_POINTS

DATABASES = ("sqlite", "postgresql")  # each test on both (tests/conftest.py)
ARTIFACT_STORES = ("folder", "s3")  # and with its artifacts in each


def _inserts_into(registry: Registry, table: str) -> list[int]:
    """Counts the INSERT statements into ``table`` (and the rows each carried) from now on."""
    seen: list[int] = []

    def listener(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()}"):
            seen.append(len(parameters) if many else 1)

    event.listen(registry.database.engine, "before_cursor_execute", listener)  # type: ignore[attr-defined]
    return seen


def test_params_metrics_and_the_end_of_a_run(registry: Registry) -> None:
    with shipyard.start_run(
        "digits", params={"lr": 0.01, "layers": [64, 32]}, registry=registry
    ) as run:
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1))
        run.log_metrics({"accuracy": 0.9, "f1": 0.85}, step=4)
        run.log_params({"epochs": 5})
    stored = registry.runs.get(run.id)
    assert stored.status == "finished"
    assert stored.finished_at is not None
    assert stored.params == {"lr": 0.01, "layers": [64, 32], "epochs": 5}
    assert stored.latest == {"loss": (0.2, 4), "accuracy": (0.9, 4), "f1": (0.85, 4)}
    history = registry.runs.history([run.id], "loss")[run.id]
    assert [p.step for p in history] == [0, 1, 2, 3, 4]
    assert [p.value for p in history] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert stored.environment["python"]
    assert "numpy" in stored.environment["packages"]
    assert len(stored.environment["lock_sha256"]) == 64


def test_a_thousand_points_are_one_insert(registry: Registry) -> None:
    with shipyard.start_run("batched", registry=registry) as run:
        inserts = _inserts_into(registry, "run_metrics")
        for step in range(FLUSH_POINTS):
            run.log_metric("loss", float(step), step=step)
        # The thousandth point wrote the batch: one statement, a thousand rows.
        assert inserts == [FLUSH_POINTS]
        run.log_metrics({f"m{i}": float(i) for i in range(10)})
    assert inserts == [FLUSH_POINTS, 10]  # the rest when the run ended
    assert registry.runs.count_points(run.id) == FLUSH_POINTS + 10


def test_nan_is_stored_as_nan_not_dropped(registry: Registry) -> None:
    with shipyard.start_run("nan", registry=registry) as run:
        run.log_metric("loss", float("nan"), step=0)
        run.log_metric("loss", float("inf"), step=1)
        run.log_metric("grad", np.float32("nan"))
    points = registry.runs.history([run.id], "loss")[run.id]
    assert len(points) == 2
    assert math.isnan(points[0].value)
    assert points[1].value == math.inf
    latest = registry.runs.get(run.id).latest
    assert math.isnan(latest["grad"][0])
    assert latest["loss"] == (math.inf, 1)


def test_a_huge_param_is_kept_whole_and_a_huge_key_is_refused(registry: Registry) -> None:
    text = "x" * 100_000
    with shipyard.start_run("huge", params={"prompt": text}, registry=registry) as run:
        with pytest.raises(InvalidInputError, match="a metric key is at most 1000 characters"):
            run.log_metric("k" * 5000, 1.0)
        run.log_metric("fine", 1.0)
    stored = registry.runs.get(run.id)
    assert stored.params["prompt"] == text
    assert list(stored.latest) == ["fine"]


def test_a_metric_that_is_not_a_number_is_refused(registry: Registry) -> None:
    with (
        shipyard.start_run("types", registry=registry) as run,
        pytest.raises(InvalidInputError, match="metric 'loss' must be a number"),
    ):
        run.log_metric("loss", "low")  # type: ignore[arg-type]


def test_a_run_is_open_in_one_place_at_a_time(registry: Registry) -> None:
    run = shipyard.start_run("twice", registry=registry)
    with run:
        with pytest.raises(ConflictError, match="is already open"):
            run.__enter__()
        with pytest.raises(ConflictError, match="already open in this process"):
            shipyard.start_run("other", registry=registry)
    # Once ended it can be reopened to log more, but not while it is open.
    with shipyard.start_run(run_id=run.id[:8], registry=registry) as again:
        assert again.id == run.id
        again.log_metric("late", 1.0)
    other = Registry(registry.settings)
    try:
        held = shipyard.start_run("held", registry=registry)
        with pytest.raises(ConflictError, match=f"run {held.id} is already open"):
            other.runs.reopen(held.id)
        held.end()
    finally:
        other.close()
    with pytest.raises(ConflictError, match="has ended"):
        run.log_metric("after", 1.0)


def test_an_exception_fails_the_run_and_keeps_what_it_logged(registry: Registry) -> None:
    def train(run: shipyard.tracking.ActiveRun) -> None:
        run.log_metric("loss", 0.5)
        raise RuntimeError("diverged at epoch 3")

    run = shipyard.start_run("boom", registry=registry)
    with pytest.raises(RuntimeError), run:
        train(run)
    stored = registry.runs.get(run.id)
    assert stored.status == "failed"
    assert "RuntimeError: diverged at epoch 3" in (stored.error or "")
    assert stored.latest["loss"] == (0.5, 0)
    assert registry.runs.versions_of(run.id) == []


def test_unknown_runs_and_ambiguous_prefixes(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="no run 'feedbeef'"):
        registry.runs.get("feedbeef")


def test_datasets_are_recorded_by_fingerprint(registry: Registry, tmp_path: Path) -> None:
    x = np.arange(30, dtype=np.float64).reshape(10, 3)
    csv = tmp_path / "train.csv"
    csv.write_text("a,b,c\n" + "\n".join(",".join(str(v) for v in row) for row in x) + "\n")
    with shipyard.start_run("data", registry=registry) as run:
        first = run.log_dataset(x, "train", targets=np.arange(10))
        same = run.log_dataset(x.copy(), "copy", targets=np.arange(10))
        narrower = run.log_dataset(x.astype(np.float32), "float32")
        run.log_dataset(csv, "file")
        with pytest.raises(InvalidInputError, match="has 10 rows but 9 targets"):
            run.log_dataset(x, "bad", targets=np.arange(9))
    assert first == same != narrower
    by_name = {d.name: d for d in registry.runs.datasets(run.id)}
    assert set(by_name) == {"train", "copy", "float32", "file"}
    assert (by_name["train"].rows, by_name["train"].columns) == (10, 3)
    assert by_name["file"].rows == 10
    assert by_name["file"].columns == ["a", "b", "c"]
    assert by_name["file"].source == str(csv.resolve())


def test_artifacts_are_kept_and_survive_the_versions(registry: Registry, tmp_path: Path) -> None:
    folder = tmp_path / "plots"
    folder.mkdir()
    (folder / "loss.txt").write_text("0.3\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "acc.txt").write_text("0.9\n")
    with shipyard.start_run("files", registry=registry) as run:
        kept = run.log_artifact(folder)
        with pytest.raises(InvalidInputError, match="no such file"):
            run.log_artifact(tmp_path / "missing.bin")
    assert kept == ["plots/loss.txt", "plots/sub/acc.txt"]
    files = {f.path: f for f in registry.runs.files(run.id)}
    assert registry.artifacts.read_verified(files["plots/loss.txt"].digest, "loss") == b"0.3\n"


def test_register_model_links_the_version_to_the_run(
    registry: Registry, tiny_onnx_path: Path
) -> None:
    with shipyard.start_run("linked", registry=registry) as run:
        version = run.register_model(tiny_onnx_path, name="tiny")
    assert version.run_id == run.id
    assert registry.runs.versions_of(run.id) == [("tiny", 1)]


def _git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(folder), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
    )


def test_the_code_version_is_captured(registry: Registry, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print('v1')\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "v1")
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with shipyard.start_run("clean", code_dir=repo, registry=registry) as clean:
        pass
    (repo / "train.py").write_text("print('v2')\n")
    with shipyard.start_run("dirty", code_dir=repo, registry=registry) as dirty:
        pass
    (repo / "train.py").write_text("print('v3')\n")
    with shipyard.start_run("dirtier", code_dir=repo, registry=registry) as dirtier:
        pass
    codes = [registry.runs.get(r.id).code for r in (clean, dirty, dirtier)]
    assert all(c["git"] == commit for c in codes)
    assert [c["dirty"] for c in codes] == [False, True, True]
    assert codes[0]["diff_sha256"] is None
    assert codes[1]["diff_sha256"] != codes[2]["diff_sha256"]
    outside = tmp_path / "outside"
    outside.mkdir()
    with shipyard.start_run("no-git", code_dir=outside, registry=registry) as loose:
        pass
    assert registry.runs.get(loose.id).code["git"] is None


def test_a_script_joins_the_run_its_command_opened(settings: Settings, tmp_path: Path) -> None:
    from shipyard.tracking.command import run_command

    script = tmp_path / "train.py"
    script.write_text(
        "import json, shipyard\n"
        "with shipyard.start_run('digits', params={'lr': 0.1, 'epochs': 2}) as run:\n"
        "    run.log_metric('loss', 0.25)\n"
        "    print(json.dumps(run.params, sort_keys=True))\n"
    )
    import sys

    with Registry(settings) as registry:
        done = run_command(
            registry, [sys.executable, str(script)], params={"lr": 0.5}, cwd=tmp_path
        )
        assert done.exit_code == 0, done.output
        assert json.loads(done.output.splitlines()[-1]) == {"epochs": 2, "lr": 0.5}
        stored = registry.runs.get(done.run.id)
    assert stored.status == "finished"
    assert stored.experiment == "digits"
    assert stored.latest == {"loss": (0.25, 0)}
    assert stored.command == {"argv": [sys.executable, str(script)], "cwd": str(tmp_path.resolve())}
