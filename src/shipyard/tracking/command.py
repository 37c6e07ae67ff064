"""A command run as a tracking run (``shipyard run -- python train.py``): the run is opened
before the command starts and ended by its exit status; its output is shown as it comes and
kept with the run.

The command joins the run through ``SHIPYARD_RUN_ID`` in its environment: a script that
calls ``shipyard.start_run()`` logs to this run and reads the params given here from
``run.params``. The command is recorded with the run, which is what ``shipyard retrain``
runs again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from shipyard.errors import InvalidInputError
from shipyard.registry import Registry
from shipyard.registry.runs import Run, check_key
from shipyard.tracking.provenance import code_version, environment

OUTPUT_FILE = "output.log"
RUN_ID_VARIABLE = "SHIPYARD_RUN_ID"
# Exit status of a command that could not be started (the shell's "command not found").
NOT_STARTED_EXIT = 127


@dataclass(frozen=True)
class Finished:
    run: Run
    exit_code: int
    output: str  # what the command printed, stdout and stderr interleaved


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; the value is read as JSON when it is JSON (``3``, ``0.1``, ``true``,
    ``[1, 2]``), else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise InvalidInputError(f"a param is KEY=VALUE, not {text!r}")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return check_key("param name", key.strip()), parsed


def read_params_file(path: Path) -> dict[str, Any]:
    """Params from a JSON, TOML or YAML file holding one table of them."""
    if not path.is_file():
        raise InvalidInputError(f"params file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            loaded = json.loads(text)
        elif path.suffix == ".toml":
            loaded = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            loaded = _yaml(text)
        else:
            raise InvalidInputError(
                f"cannot read params from {path.name}: use a .json, .toml or .yaml file"
            )
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInputError(f"cannot read params file {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise InvalidInputError(f"params file {path} must hold one table of KEY: VALUE")
    return {check_key("param name", str(key)): value for key, value in loaded.items()}


def _yaml(text: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        raise InvalidInputError("reading a YAML params file needs PyYAML installed") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def run_command(
    registry: Registry,
    argv: Sequence[str],
    *,
    experiment: str = "default",
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    echo: IO[str] | None = None,
    on_start: Callable[[Run], None] | None = None,
    on_spawn: Callable[[subprocess.Popen[str]], None] | None = None,
) -> Finished:
    """Open a run, run ``argv`` in it, keep its output and end the run by its exit status:
    finished on 0, failed otherwise, killed by a signal."""
    if not argv:
        raise InvalidInputError("give the command to run after --, e.g. `-- python train.py`")
    folder = (cwd or Path.cwd()).resolve()
    run = registry.runs.create(
        uuid.uuid4().hex,
        experiment,
        params=dict(params or {}),
        tags=dict(tags or {}),
        code=code_version(folder),
        environment=environment(folder),
        command={"argv": list(argv), "cwd": str(folder)},
        actor=registry.actor,
    )
    if on_start is not None:
        on_start(run)
    env = {**os.environ, **(extra_env or {}), RUN_ID_VARIABLE: run.id}
    # The child reaches the same registry as this process, whatever chose it here.
    env["SHIPYARD_HOME"] = str(registry.settings.home.resolve())
    if registry.settings.db_url:
        env["SHIPYARD_DB_URL"] = registry.settings.db_url
    output: list[str] = []
    try:
        child = subprocess.Popen(
            list(argv),
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        message = f"cannot start {argv[0]!r}: {exc.strerror or exc}"
        registry.runs.finish(run.id, "failed", exit_code=NOT_STARTED_EXIT, error=message)
        return Finished(registry.runs.get(run.id), NOT_STARTED_EXIT, message)
    if on_spawn is not None:
        on_spawn(child)
    with child:  # closes its pipe however the relay ends
        code = _relay(child, output, echo or sys.stdout)
    text = "".join(output)
    blob = registry.artifacts.put_bytes(text.encode())
    registry.runs.add_file(run.id, OUTPUT_FILE, blob.digest, blob.size)
    if code == 0:
        registry.runs.finish(run.id, "finished", exit_code=0)
    elif code < 0:
        name = signal.Signals(-code).name
        registry.runs.finish(run.id, "killed", exit_code=code, error=f"killed by {name}")
    else:
        registry.runs.finish(run.id, "failed", exit_code=code, error=f"exit status {code}")
    return Finished(registry.runs.get(run.id), code, text)


def _relay(child: subprocess.Popen[str], output: list[str], echo: IO[str]) -> int:
    """Show and keep the child's output until it exits; an interrupt here is passed on
    to it (it decides how to stop) rather than leaving it running alone."""
    assert child.stdout is not None
    try:
        for line in child.stdout:
            output.append(line)
            echo.write(line)
            echo.flush()
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        try:
            return child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()
