"""`shipyard gc`: a registration killed between its upload and its commit leaves no row and
only unreferenced blobs, which gc removes — once they are older than --min-age — while every
blob a version still names stays."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from server_helpers import register_tiny, tiny_variant_bytes
from shipyard import Registry, Settings
from shipyard.cli import app
from shipyard.errors import InvalidInputError

DATABASES = ("sqlite", "postgresql")  # each test on both (tests/conftest.py)
ARTIFACT_STORES = ("folder", "s3")  # and with its artifacts in each

# Registers the model at argv[1] and dies by SIGKILL the moment the version's row has been
# sent to the database, before the commit: the blobs are stored, the row never lands.
KILLED_REGISTRATION = textwrap.dedent(
    """
    import os, signal, sys
    from sqlalchemy import event
    from sqlalchemy.orm import Session
    import shipyard
    from shipyard.registry.schema import VersionRow

    @event.listens_for(Session, "after_flush")
    def die_before_commit(session, _context):
        if any(isinstance(row, VersionRow) for row in session.new):
            os.kill(os.getpid(), signal.SIGKILL)

    shipyard.register(sys.argv[1], "tiny")
    """
)


def environment(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(settings.home)
    if settings.db_url:
        env["SHIPYARD_DB_URL"] = settings.db_url
    if settings.artifact_url:
        env["SHIPYARD_ARTIFACT_URL"] = settings.artifact_url
    return env


def gc(settings: Settings, *args: str) -> Any:
    result = CliRunner().invoke(app, ["gc", "--json", *args], env=environment(settings))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def stored(settings: Settings) -> set[str]:
    with Registry(settings) as registry:
        return {blob.digest for blob in registry.artifacts.list_blobs()}


def test_a_registration_killed_before_its_commit_leaves_garbage_that_gc_removes(
    settings: Settings, tmp_path: Path
) -> None:
    with Registry(settings) as registry:
        kept = register_tiny(registry, tmp_path / "models", 1.0)
    in_use = stored(settings)
    model = tmp_path / "doomed.onnx"
    model.write_bytes(tiny_variant_bytes(2.0))

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_REGISTRATION, str(model)],
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with Registry(settings) as registry:
        assert [v.version for v in registry.list_versions("tiny")] == [1]  # no row landed
    orphans = stored(settings) - in_use
    assert len(orphans) == 2  # the new model file and its manifest

    young = gc(settings)  # default --min-age 1h: a registration may still be running
    assert young["removed"] == []
    assert set(young["kept_young"]) == orphans
    dry = gc(settings, "--min-age", "0s", "--dry-run")
    assert set(dry["unreferenced"]) == orphans
    assert dry["removed"] == []
    assert stored(settings) == in_use | orphans

    swept = gc(settings, "--min-age", "0s")
    assert set(swept["removed"]) == orphans
    assert swept["freed_bytes"] > 0
    assert swept["referenced"] == len(in_use)
    assert stored(settings) == in_use
    with Registry(settings) as registry:
        assert registry.verify("tiny:1") == kept  # everything version 1 names is still there
        again = register_tiny(registry, tmp_path / "models", 2.0)
        assert again.version == 2
        registry.verify("tiny:2")


def test_gc_keeps_what_runs_and_versions_name(settings: Settings, tmp_path: Path) -> None:
    import shipyard

    with Registry(settings) as registry:
        register_tiny(registry, tmp_path / "models", 1.0)
        with shipyard.start_run("sweep", registry=registry) as run:
            run.log_text("notes", "notes.txt")
    before = stored(settings)
    swept = gc(settings, "--min-age", "0s")
    assert swept["removed"] == []
    assert swept["referenced"] == len(before) == 3  # model, manifest, the run's file
    assert stored(settings) == before


@pytest.mark.parametrize("age", ["soon", "-", "1y"])
def test_a_min_age_that_is_not_a_duration_is_refused(settings: Settings, age: str) -> None:
    result = CliRunner().invoke(app, ["gc", "--min-age", age], env=environment(settings))
    assert result.exit_code == InvalidInputError.exit_code
    assert f"cannot read {age!r} as a duration" in result.output
