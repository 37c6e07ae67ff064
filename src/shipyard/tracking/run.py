"""A training run as the script that trains sees it: ``with shipyard.start_run(...) as run``.

Metric points are buffered and written in batches (one INSERT for up to ``FLUSH_POINTS``
points, or whatever gathered in ``FLUSH_SECONDS``), so a training loop logging every step
costs a list append, not a database round trip. The buffer is written when the run ends,
however it ends.

A script started by ``shipyard run`` finds the run that command opened (``SHIPYARD_RUN_ID``
in the settings) and joins it: the command's params override the script's defaults, and the
command, which sees the exit status, ends the run.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

from shipyard.errors import ConflictError, InvalidInputError
from shipyard.registry import ModelVersion, Registry, registry_from
from shipyard.registry.runs import MetricPoint, Run, check_key
from shipyard.settings import Settings
from shipyard.tracking.datasets import fingerprint
from shipyard.tracking.provenance import code_version, environment

FLUSH_POINTS = 1000
FLUSH_SECONDS = 2.0
MAX_EXPERIMENT_LENGTH = 128
ERROR_TAIL_LINES = 20

_active: ActiveRun | None = None
_active_lock = threading.Lock()


class ActiveRun:
    """An open run: log to it, then let the ``with`` block end it."""

    def __init__(self, registry: Registry, run: Run, *, owns_end: bool, stack: ExitStack) -> None:
        self._registry = registry
        self._run = run
        self._owns_end = owns_end  # False when `shipyard run` opened it and will end it
        self._stack = stack
        self._buffer: list[MetricPoint] = []
        self._last_flush = time.monotonic()
        self._next_step: dict[str, int] = {}
        self._checked_keys: set[str] = set()
        self._entered = False
        self._ended = False
        self._lock = threading.Lock()

    # What the run is -------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._run.id

    @property
    def experiment(self) -> str:
        return self._run.experiment

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._run.params)

    @property
    def registry(self) -> Registry:
        return self._registry

    def info(self) -> Run:
        """The run as stored now (after writing what is buffered)."""
        self.flush()
        return self._registry.runs.get(self.id)

    # Logging ---------------------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params are kept whole, whatever their length."""
        checked = {check_key("param name", key): _jsonable(value) for key, value in params.items()}
        self._registry.runs.merge(self.id, params=checked)
        self._run = self._registry.runs.get(self.id)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        checked = {check_key("tag name", key): _jsonable(value) for key, value in tags.items()}
        self._registry.runs.merge(self.id, tags=checked)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """One point; ``step`` defaults to the one after this key's last. NaN is kept."""
        self._check_open()
        self._keep((self._point(key, value, step, time.time()),))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Several points at once, all at ``step`` (or each at its key's next step)."""
        self._check_open()
        now = time.time()
        self._keep([self._point(key, value, step, now) for key, value in metrics.items()])

    def _point(self, key: str, value: Any, step: int | None, at: float) -> MetricPoint:
        # A training loop logs every step: a key is checked once, a float taken as it is.
        if key not in self._checked_keys:
            self._checked_keys.add(check_key("metric key", key))
        number = value if type(value) is float else _number(key, value)
        at_step = self._next_step.get(key, 0) if step is None else int(step)
        self._next_step[key] = at_step + 1
        return MetricPoint(key, number, at_step, at)

    def _keep(self, points: Sequence[MetricPoint]) -> None:
        with self._lock:
            self._buffer.extend(points)
            due = (
                len(self._buffer) >= FLUSH_POINTS
                or time.monotonic() - self._last_flush >= FLUSH_SECONDS
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the buffered points, in one statement per thousand."""
        with self._lock:
            pending, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
        for start in range(0, len(pending), FLUSH_POINTS):
            self._registry.runs.log_points(self.id, pending[start : start + FLUSH_POINTS])

    def log_artifact(self, path: str | Path, name: str | None = None) -> list[str]:
        """Keep a file, or every file of a folder, with the run (content-addressed, like a
        version's files); returns the paths they are kept under."""
        self._check_open()
        source = Path(path)
        if not source.exists():
            raise InvalidInputError(f"cannot log {source}: no such file or folder")
        base = name or source.name
        files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
        kept = []
        for file in files:
            relative = base if not source.is_dir() else f"{base}/{file.relative_to(source)}"
            blob = self._registry.artifacts.put_file(file)
            self._registry.runs.add_file(self.id, relative, blob.digest, blob.size)
            kept.append(relative)
        return kept

    def log_text(self, text: str, name: str) -> None:
        blob = self._registry.artifacts.put_bytes(text.encode())
        self._registry.runs.add_file(self.id, name, blob.digest, blob.size)

    def log_dataset(
        self,
        data: Any,
        name: str = "train",
        *,
        targets: Any | None = None,
        source: str | None = None,
    ) -> str:
        """Record the data by fingerprint (sha256, rows, columns); returns the digest."""
        self._check_open()
        dataset = fingerprint(name, data, targets=targets, source=source)
        self._registry.runs.add_dataset(self.id, dataset)
        return dataset.digest

    def register_model(self, source: Any, name: str, **keywords: Any) -> ModelVersion:
        """``shipyard.register`` with the version linked to this run."""
        import shipyard

        self.flush()
        return shipyard.register(source, name, registry=self._registry, run_id=self.id, **keywords)

    # Ending ----------------------------------------------------------------------------

    def __enter__(self) -> ActiveRun:
        if self._entered:
            raise ConflictError(f"run {self.id} is already open: a run is entered once")
        self._entered = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.end()
        elif issubclass(kind, KeyboardInterrupt):
            self.end("killed", error="interrupted")
        else:
            lines = traceback.format_exception(kind, error, trace)
            self.end("failed", error="".join(lines[-ERROR_TAIL_LINES:]).strip())

    def end(self, status: str = "finished", *, error: str | None = None) -> None:
        global _active
        if self._ended:
            return
        self._ended = True
        try:
            self.flush()
            if self._owns_end:
                self._registry.runs.finish(self.id, status, error=error)
            elif error is not None:
                self._registry.runs.merge(self.id, tags={"script_error": error})
        finally:
            with _active_lock:
                if _active is self:
                    _active = None
            self._stack.close()

    def _check_open(self) -> None:
        if self._ended:
            raise ConflictError(f"run {self.id} has ended: start another run to log more")


def start_run(
    experiment: str = "default",
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    code_dir: str | Path | None = None,
    registry: Registry | None = None,
    settings: Settings | None = None,
) -> ActiveRun:
    """Open a run of ``experiment``: a new one, the one ``shipyard run`` opened for this
    script, or (``run_id``) a finished one reopened to log more. One run is open in a
    process at a time."""
    global _active
    check_key("experiment name", experiment)
    if len(experiment) > MAX_EXPERIMENT_LENGTH:
        raise InvalidInputError(
            f"an experiment name is at most {MAX_EXPERIMENT_LENGTH} characters; "
            f"this one has {len(experiment)}"
        )
    chosen = dict(params or {})
    with _active_lock:
        if _active is not None:
            raise ConflictError(
                f"run {_active.id} is already open in this process: end it before starting another"
            )
        stack = ExitStack()
        try:
            opened = stack.enter_context(registry_from(registry or settings or Settings()))
            handle = _open(opened, experiment, chosen, dict(tags or {}), run_id, code_dir, stack)
        except BaseException:
            stack.close()
            raise
        _active = handle
    return handle


def active_run() -> ActiveRun | None:
    return _active


def _open(
    registry: Registry,
    experiment: str,
    params: dict[str, Any],
    tags: dict[str, Any],
    run_id: str | None,
    code_dir: str | Path | None,
    stack: ExitStack,
) -> ActiveRun:
    runs = registry.runs
    checked = {check_key("param name", k): _jsonable(v) for k, v in params.items()}
    joined = registry.settings.run_id if run_id is None else None
    if joined:
        run = runs.get(joined)
        if run.status != "running":
            raise ConflictError(f"run {joined} has ended ({run.status}); it cannot be joined")
        # The command's params (already on the run) override the script's defaults.
        runs.merge(run.id, params={**checked, **run.params}, tags=tags)
        if run.experiment == "default" and experiment != "default":
            runs.rename(run.id, experiment)
        return ActiveRun(registry, runs.get(run.id), owns_end=False, stack=stack)
    if run_id is not None:
        run_id = runs.reopen(run_id).id
        runs.merge(run_id, params=checked, tags=tags)
        return ActiveRun(registry, runs.get(run_id), owns_end=True, stack=stack)
    folder = Path(code_dir) if code_dir is not None else _script_folder()
    run = runs.create(
        uuid.uuid4().hex,
        experiment,
        params=checked,
        tags=tags,
        code=code_version(folder),
        environment=environment(folder),
        command=_script_command(),
        actor=registry.actor,
    )
    return ActiveRun(registry, run, owns_end=True, stack=stack)


def _script_folder() -> Path:
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    return script.resolve().parent if script is not None and script.is_file() else Path.cwd()


def _script_command() -> dict[str, Any] | None:
    # A run opened by a Python script can be retrained by running that script again; one
    # opened from a notebook or a test runner has no command to repeat.
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None or script.suffix != ".py" or not script.is_file():
        return None
    return {
        "argv": [sys.executable, str(script.resolve()), *sys.argv[1:]],
        "cwd": os.getcwd(),
    }


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool | str | bytes) or not hasattr(value, "__float__"):
        raise InvalidInputError(f"metric {key!r} must be a number, not {value!r}")
    return float(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    item = getattr(value, "item", None)  # a numpy scalar
    return item() if callable(item) else str(value)
