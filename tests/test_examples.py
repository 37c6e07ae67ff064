"""The examples run as a user runs them: train, register, optimize, serve, call over V2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SERVED = re.compile(r"^served (\S+) \(v(\d+)\): accuracy ([0-9.]+) on (\d+) held-out", re.M)


def run_example(script: str, home: Path, *arguments: str) -> str:
    """The example's stdout, once it has exited 0 (its server stopped, nothing left running)."""
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--home", str(home), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"^registered \S+:1 ", done.stdout, re.M), done.stdout
    assert re.search(r"^optimize: (registered|nothing registered)", done.stdout, re.M)
    assert (home / "shipyard.db").is_file()
    return done.stdout


def served_accuracy(stdout: str, rows: int) -> float:
    match = SERVED.search(stdout)
    assert match is not None, stdout
    assert int(match.group(4)) == rows
    return float(match.group(3))


@pytest.mark.parametrize(("kind", "epochs"), [("mlp", "5"), ("cnn", "3")])
def test_pytorch_digits(tmp_path: Path, kind: str, epochs: str) -> None:
    stdout = run_example("pytorch_digits.py", tmp_path, "--model", kind, "--epochs", epochs)
    assert f"registered digits-{kind}:1 " in stdout
    assert served_accuracy(stdout, rows=540) > 0.8


def test_keras_digits(tmp_path: Path) -> None:
    stdout = run_example("keras_digits.py", tmp_path, "--epochs", "3")
    assert "registered digits-keras:1 " in stdout
    assert served_accuracy(stdout, rows=540) > 0.8


def test_sklearn_pipeline(tmp_path: Path) -> None:
    stdout = run_example("sklearn_pipeline.py", tmp_path)
    assert "trained standardscaler + logisticregression on wine" in stdout
    assert served_accuracy(stdout, rows=54) > 0.9


def test_minilm_service(tmp_path: Path) -> None:
    stdout = run_example("minilm_service.py", tmp_path)
    match = re.search(
        r"^served minilm:\d+ \(v\d+\): 3 embeddings of dimension (\d+); cosine of the two "
        r"guitar sentences ([-0-9.]+), guitar vs revenue ([-0-9.]+)$",
        stdout,
        re.M,
    )
    assert match is not None, stdout
    assert int(match.group(1)) == 384
    similar, unrelated = float(match.group(2)), float(match.group(3))
    assert similar > 0.5 > unrelated
