"""The CLI in-process (Typer's runner) and once through the installed entry point."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from shipyard.cli import app
from shipyard.errors import (
    ConflictError,
    FormatError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    UnsafeInputError,
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def run(home: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["--home", str(home), *args])
    return result


def register_tiny(home: Path, path: Path, *extra: str) -> Any:
    result = run(home, "models", "register", str(path), "--name", "tiny", *extra)
    assert result.exit_code == 0, result.output
    return result


def test_register_list_show_round_trip(home: Path, tiny_onnx_path: Path) -> None:
    result = register_tiny(home, tiny_onnx_path, "--alias", "production", "--tag", "team=risk")
    assert "registered tiny:1 as @production" in result.stdout

    listed = json.loads(run(home, "models", "list", "--json").stdout)
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in listed] == [
        ("tiny", 1, {"production": 1})
    ]

    shown = json.loads(run(home, "models", "show", "tiny@production", "--json").stdout)
    assert shown["version"] == 1
    assert shown["tags"] == {"team": "risk"}
    assert shown["signature"]["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    assert [f["path"] for f in shown["files"]] == ["model.onnx"]

    table = run(home, "models", "show", "tiny:1")
    assert table.exit_code == 0
    assert "signature" in table.stdout
    assert "model.onnx" in table.stdout

    overview = json.loads(run(home, "models", "show", "tiny", "--json").stdout)
    assert [v["version"] for v in overview["versions"]] == [1]
    assert {e["kind"] for e in overview["events"]} == {"version.registered", "alias.set"}


def test_register_json_output_is_the_version(home: Path, tiny_onnx_path: Path) -> None:
    result = run(home, "models", "register", str(tiny_onnx_path), "-n", "tiny", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "tiny"
    assert data["version"] == 1
    assert len(data["artifact_digest"]) == 64


def test_alias_moves_are_reported_and_recorded(home: Path, tiny_onnx_path: Path) -> None:
    register_tiny(home, tiny_onnx_path)
    register_tiny(home, tiny_onnx_path)
    first = json.loads(run(home, "models", "alias", "tiny", "production", "1", "--json").stdout)
    assert first == {"name": "tiny", "alias": "production", "from": None, "to": 1}
    moved = run(home, "models", "alias", "tiny", "production", "2", "--reason", "better")
    assert moved.exit_code == 0
    assert "tiny@production: 1 → 2" in moved.stdout

    events = json.loads(run(home, "models", "show", "tiny", "--json").stdout)["events"]
    last = next(e for e in events if e["kind"] == "alias.set")
    assert (last["from_version"], last["to_version"], last["reason"]) == (1, 2, "better")

    removed = run(home, "models", "alias", "tiny", "production", "--delete")
    assert removed.exit_code == 0
    assert json.loads(run(home, "models", "list", "--json").stdout)[0]["aliases"] == {}


def test_alias_to_missing_version_is_not_found(home: Path, tiny_onnx_path: Path) -> None:
    register_tiny(home, tiny_onnx_path)
    result = run(home, "models", "alias", "tiny", "production", "9")
    assert result.exit_code == NotFoundError.exit_code
    assert "model 'tiny' has no version 9" in result.stderr


def test_unknown_model_and_version(home: Path, tiny_onnx_path: Path) -> None:
    result = run(home, "models", "show", "nope")
    assert result.exit_code == NotFoundError.exit_code
    assert "no model named 'nope'" in result.stderr
    register_tiny(home, tiny_onnx_path)
    result = run(home, "models", "show", "tiny:4")
    assert result.exit_code == NotFoundError.exit_code
    assert "has no version 4" in result.stderr
    result = run(home, "models", "show", "tiny@staging")
    assert result.exit_code == NotFoundError.exit_code
    assert "has no alias 'staging'" in result.stderr


@pytest.mark.parametrize("name", ["Fraud", "a/b", "..", "two words", "x..y", "-lead"])
def test_bad_names_are_refused(home: Path, tiny_onnx_path: Path, name: str) -> None:
    result = run(home, "models", "register", str(tiny_onnx_path), "--name", name)
    assert result.exit_code == InvalidInputError.exit_code
    assert "invalid model name" in result.stderr
    assert not (home / "artifacts" / "sha256").exists()


def test_missing_file(home: Path, tmp_path: Path) -> None:
    result = run(home, "models", "register", str(tmp_path / "absent.onnx"), "--name", "m")
    assert result.exit_code == InvalidInputError.exit_code
    assert "does not exist" in result.stderr


def test_corrupt_onnx(home: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07 this is not a protobuf model \xff\xfe")
    result = run(home, "models", "register", str(corrupt), "--name", "m")
    assert result.exit_code == FormatError.exit_code
    assert "corrupt.onnx is not a valid ONNX model" in result.stderr
    assert json.loads(run(home, "models", "list", "--json").stdout) == []


def test_unknown_flavor(home: Path, tiny_onnx_path: Path, tmp_path: Path) -> None:
    result = run(home, "models", "register", str(tiny_onnx_path), "-n", "m", "--flavor", "caffe")
    assert result.exit_code == FormatError.exit_code
    assert "unknown flavor 'caffe'" in result.stderr
    other = tmp_path / "model.h5"
    other.write_bytes(b"...")
    result = run(home, "models", "register", str(other), "-n", "m")
    assert result.exit_code == FormatError.exit_code
    assert "cannot tell the flavor" in result.stderr


def test_pickle_needs_trust(
    home: Path, tmp_path: Path, cancer_classifier: Any, cancer_csv: Path
) -> None:
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(cancer_classifier))
    refused = run(home, "models", "register", str(pickled), "-n", "cancer")
    assert refused.exit_code == UnsafeInputError.exit_code
    assert "unpickling runs arbitrary code" in refused.stderr
    assert "--trust-pickle" in refused.stderr
    assert json.loads(run(home, "models", "list", "--json").stdout) == []

    args = ["models", "register", str(pickled), "-n", "cancer", "--trust-pickle"]
    trusted = run(home, *args, "--reference-data", str(cancer_csv), "--json")
    assert trusted.exit_code == 0, trusted.output
    version = json.loads(trusted.stdout)
    assert version["flavor"] == "pickle"
    assert version["conversion"]["parity"]["passed"] is True


def test_reference_data_must_fit(home: Path, tiny_onnx_path: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.csv"
    np.savetxt(wrong, np.ones((5, 4)), delimiter=",")
    result = run(
        home, "models", "register", str(tiny_onnx_path), "-n", "m", "--reference-data", str(wrong)
    )
    assert result.exit_code == InvalidInputError.exit_code
    assert "expects shape [-1, 3], got [5, 4]" in result.stderr
    assert json.loads(run(home, "models", "list", "--json").stdout) == []


def test_bad_metric_value(home: Path, tiny_onnx_path: Path) -> None:
    result = run(home, "models", "register", str(tiny_onnx_path), "-n", "m", "--metric", "auc=high")
    assert result.exit_code == InvalidInputError.exit_code
    assert "--metric auc='high': the value must be a number" in result.stderr


def test_verify_detects_tampering(home: Path, tiny_onnx_path: Path) -> None:
    register_tiny(home, tiny_onnx_path)
    ok = run(home, "models", "verify", "tiny:1")
    assert ok.exit_code == 0
    assert "all digests match" in ok.stdout

    blob = next((home / "artifacts" / "sha256").rglob(_digest_of(tiny_onnx_path)))
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes() + b"\x00")
    bad = run(home, "models", "verify", "tiny:1")
    assert bad.exit_code == IntegrityError.exit_code
    assert "artifact file 'model.onnx' is corrupt or was tampered with" in bad.stderr


def test_delete_respects_aliases(home: Path, tiny_onnx_path: Path) -> None:
    register_tiny(home, tiny_onnx_path, "--alias", "production")
    refused = run(home, "models", "delete", "tiny:1")
    assert refused.exit_code == ConflictError.exit_code
    assert "target of alias(es) production" in refused.stderr
    forced = run(home, "models", "delete", "tiny:1", "--force", "--json")
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout) == {"deleted": "tiny:1", "aliases_removed": ["production"]}
    assert [p for p in (home / "artifacts" / "sha256").rglob("*") if p.is_file()] == []
    bare = run(home, "models", "delete", "tiny")
    assert bare.exit_code == InvalidInputError.exit_code
    assert "name the version to delete" in bare.stderr


def test_db_upgrade_is_idempotent(home: Path) -> None:
    first = run(home, "db", "upgrade")
    assert first.exit_code == 0
    assert "upgraded from empty to 0006" in first.stdout
    second = run(home, "db", "upgrade")
    assert "already at revision 0006" in second.stdout
    assert "current: 0006" in run(home, "db", "current").stdout


def test_installed_entry_point(tmp_path: Path, tiny_onnx_path: Path) -> None:
    shipyard = Path(sys.executable).with_name("shipyard")
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path / "env-home")}
    version = subprocess.run(
        [shipyard, "--version"], capture_output=True, text=True, env=env, check=False
    )
    assert version.returncode == 0
    assert version.stdout.startswith("shipyard ")
    registered = subprocess.run(
        [shipyard, "models", "register", str(tiny_onnx_path), "-n", "tiny", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert registered.returncode == 0, registered.stderr
    assert (tmp_path / "env-home" / "shipyard.db").is_file()
    missing = subprocess.run(
        [shipyard, "models", "show", "ghost"], capture_output=True, text=True, env=env, check=False
    )
    assert missing.returncode == NotFoundError.exit_code
    assert "no model named 'ghost'" in missing.stderr


def _digest_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
