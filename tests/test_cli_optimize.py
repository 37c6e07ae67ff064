"""``shipyard optimize`` in-process (Typer's runner), and ``models show`` of what it registered.

As in test_optimize.py, the speed gate is forced (``--min-speedup 0.01`` passes any
candidate that keeps its accuracy, ``--min-speedup 1000`` fails every one): no test asserts
on a measured speedup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import shipyard
from helpers import version_rows
from shipyard import Registry, Settings
from shipyard.cli import app
from shipyard.errors import (
    InvalidInputError,
    ModelNotFoundError,
    SignatureMismatchError,
    VersionNotFoundError,
)
from shipyard.optimize.cpu import features
from shipyard.optimize.recipes import Recipe

torch = pytest.importorskip("torch")

ROWS = 200


@pytest.fixture(scope="module")
def mlp(digits_mlp: Any) -> Any:
    return digits_mlp


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, digits: Any) -> Path:
    x, y = digits
    root = tmp_path_factory.mktemp("cli-optimize-data")
    np.save(root / "digits.npy", x[:ROWS])
    np.save(root / "labels.npy", y[:ROWS])
    (root / "labels.txt").write_text("\n".join(str(v) for v in y[:ROWS]) + "\n")
    return root


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def run(home: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--home", str(home), *args], env={"COLUMNS": "200"})


def register_mlp(home: Path, model: Any, digits: Any, reference: Path | None) -> None:
    x, _ = digits
    with Registry(Settings(home=home)) as registry:
        shipyard.register(
            model, "mlp", example_input=x[:2], reference_data=reference, registry=registry
        )


@pytest.fixture
def registered(home: Path, mlp: Any, digits: Any, data_dir: Path) -> Path:
    """A home with mlp:1 and its 200 rows of reference data."""
    register_mlp(home, mlp, digits, data_dir / "digits.npy")
    return home


def test_optimize_registers_and_show_tells_the_lineage(registered: Path) -> None:
    home = registered
    result = run(home, "optimize", "mlp", "--min-speedup", "0.01")
    assert result.exit_code == 0, result.output
    assert f"mlp:1: classification, {ROWS} evaluation rows, typical batch 32" in result.stdout
    for name in ("graph", "dynamic-int8 per-tensor", "dynamic-int8 per-channel", "fp16"):
        assert name in result.stdout
    assert "skipped: fp16 only pays on a GPU provider" in result.stdout
    assert "registered mlp:2 from mlp:1" in result.stdout
    assert version_rows(Settings(home=home)) == 2

    shown = json.loads(run(home, "models", "show", "mlp:2", "--json").stdout)
    assert shown["parent_version"] == 1
    record = shown["conversion"]["optimization"]
    assert record["parent"] == "mlp:1"
    recipe = record["recipe"]["name"]
    assert shown["tags"]["optimized"] == recipe

    table = run(home, "models", "show", "mlp:2")
    assert table.exit_code == 0, table.output
    assert "optimized from" in table.stdout
    assert f"mlp:1: {recipe}" in table.stdout
    assert "measured" in table.stdout
    assert "at a typical batch" in table.stdout
    assert "accuracy" in table.stdout
    assert "top1_agreement 1.0000 →" in table.stdout
    cpu_row = next(line for line in table.stdout.splitlines() if line.startswith("cpu "))
    assert cpu_row.split(None, 1)[1].strip() == (", ".join(record["cpu"]["flags"]) or "-")

    parent = run(home, "models", "show", "mlp:1")
    assert parent.exit_code == 0
    assert "optimized from" not in parent.stdout


def test_json_report_lists_the_candidates(registered: Path) -> None:
    result = run(registered, "optimize", "mlp:1", "--min-speedup", "1000", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["parent"] == "mlp:1"
    assert report["task"] == "classification"
    assert report["eval_rows"] == ROWS
    assert report["registered"] is None
    names = [c["recipe"]["name"] for c in report["candidates"]]
    assert names[0] == "graph"
    # int8 weights keep 7 bits on a CPU without fast int8 dot products (the detected one here)
    assert Recipe("dynamic-int8", reduce_range=not features().vnni).name in names
    assert names[-1] == "fp16"
    assert report["candidates"][-1]["status"] == "skipped"
    assert report["cpu"] == features().to_dict()
    assert 0 < report["held_out_rows"] < ROWS
    assert report["verdict"].startswith("nothing registered: ")
    for c in report["candidates"]:
        assert set(c) >= {"recipe", "size_bytes", "quality", "passed", "reason"}
        assert c["passed"] is False
        assert c["reason"].startswith(("speed:", "accuracy:", "could not be built", "skipped"))
    assert report["candidates"][0]["quality"]["metric"] == "top1_agreement"
    assert version_rows(Settings(home=registered)) == 1
    listed = json.loads(run(registered, "models", "list", "--json").stdout)
    assert listed[0]["latest_version"] == 1


@pytest.mark.parametrize("labels", ["labels.npy", "labels.txt"])
def test_labels_option(registered: Path, data_dir: Path, labels: str) -> None:
    result = run(
        registered,
        "optimize",
        "mlp",
        "--labels",
        str(data_dir / labels),
        "--min-speedup",
        "1000",
        "--json",
    )
    assert result.exit_code == 0, result.output
    qualities = [c["quality"] for c in json.loads(result.stdout)["candidates"] if c["quality"]]
    assert qualities
    for q in qualities:
        assert q["metric"] == "accuracy"
        assert 0.0 <= q["parent"] <= 1.0
        assert 0.0 <= q["candidate"] <= 1.0


def test_an_optimized_version_is_refused(registered: Path) -> None:
    first = run(registered, "optimize", "mlp", "--min-speedup", "0.01", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["registered"] == "mlp:2"
    result = run(registered, "optimize", "mlp:2", "--min-speedup", "0.01")
    assert result.exit_code == InvalidInputError.exit_code
    assert "mlp:2 is already optimized (" in result.stderr
    assert "optimize its parent mlp:1 instead" in result.stderr
    assert "registered" not in result.stdout
    assert version_rows(Settings(home=registered)) == 2


def test_bad_inputs(registered: Path, tmp_path: Path) -> None:
    """Each refused with its error class's exit code and the message on stderr."""
    narrow = tmp_path / "narrow.npy"
    np.save(narrow, np.zeros((10, 63), dtype=np.float32))
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 64), dtype=np.float32))
    five = tmp_path / "five.npy"
    np.save(five, np.arange(5))
    words = tmp_path / "words.txt"
    words.write_text("seven\n" * ROWS)
    cases = [
        (
            ["mlp", "--eval-data", str(narrow)],
            SignatureMismatchError.exit_code,
            "expects shape [-1, 64], got [10, 63]",
        ),
        (
            ["mlp", "--eval-data", str(empty)],
            InvalidInputError.exit_code,
            "the evaluation data for mlp:1 has no rows",
        ),
        (
            ["mlp", "--labels", str(five)],
            InvalidInputError.exit_code,
            f"{five} has 5 labels; the evaluation data has {ROWS} rows",
        ),
        (
            ["mlp", "--labels", str(tmp_path / "absent.txt")],
            InvalidInputError.exit_code,
            f"labels file {tmp_path / 'absent.txt'} does not exist",
        ),
        (
            ["mlp", "--labels", str(words), "--min-speedup", "0.01"],
            InvalidInputError.exit_code,
            "the labels do not fit the model's int64 predictions",
        ),
        (["mlp", "--tolerance", "0"], InvalidInputError.exit_code, "got 0.0"),
        (["mlp", "--tolerance", "1"], InvalidInputError.exit_code, "got 1.0"),
        (["mlp", "--tolerance", "1.5"], InvalidInputError.exit_code, "got 1.5"),
        (
            ["mlp", "--min-speedup", "0"],
            InvalidInputError.exit_code,
            "min_speedup must be positive, got 0.0",
        ),
        (["ghost"], ModelNotFoundError.exit_code, "no model named 'ghost'"),
        (["mlp:9"], VersionNotFoundError.exit_code, "model 'mlp' has no version 9"),
    ]
    for args, code, message in cases:
        result = run(registered, "optimize", *args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        if "--tolerance" in args:
            assert "tolerance must be between 0 and 1 (exclusive)" in result.stderr
        assert "Traceback" not in result.output
        assert "registered" not in result.stdout
    assert version_rows(Settings(home=registered)) == 1


def test_a_model_without_reference_data(home: Path, mlp: Any, digits: Any) -> None:
    register_mlp(home, mlp, digits, None)
    result = run(home, "optimize", "mlp")
    assert result.exit_code == InvalidInputError.exit_code
    assert "mlp:1 has no reference data to evaluate candidates on; pass --eval-data" in (
        result.stderr
    )

    x, _ = digits
    eval_rows = home.parent / "eval.npy"
    np.save(eval_rows, x[-50:])
    passed = run(
        home, "optimize", "mlp", "--eval-data", str(eval_rows), "--min-speedup", "0.01", "--json"
    )
    assert passed.exit_code == 0, passed.output
    report = json.loads(passed.stdout)
    assert report["eval_rows"] == 50
    assert report["registered"] == "mlp:2"
