"""The runs tables: each training run's record, its metric points, files and datasets.

What a run captures and when it ends is the tracking package's business; here a run is read
and written in as few statements as the work allows: a batch of metric points is one
INSERT and one update of the run's latest values, in one transaction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Row, Table, func, insert, select, update

from shipyard.errors import ConflictError, InvalidInputError, NotFoundError
from shipyard.registry.database import Database
from shipyard.registry.schema import (
    ModelRow,
    RunDatasetRow,
    RunFileRow,
    RunMetricRow,
    RunRow,
    VersionRow,
)
from shipyard.registry.store import as_utc, utcnow

_RUNS = cast(Table, RunRow.__table__)
_METRICS = cast(Table, RunMetricRow.__table__)
_POINT_COLUMNS = ["run_id", "key", "step", "value", "at"]  # the order of a point's values
# (dialect, paramstyle) -> the INSERT of points, where its parameters are positional
_POINTS_INSERT: dict[tuple[str, str], str | None] = {}

MAX_KEY_LENGTH = 1000  # a metric key, a file path: the width of their indexed columns
MIN_PREFIX = 4  # the shortest run id prefix a command accepts
FINAL_STATES = ("finished", "failed", "killed")


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    experiment: str
    status: str  # running, finished, failed, killed
    params: dict[str, Any]
    tags: dict[str, Any]
    latest: dict[str, tuple[float, int]]  # metric key -> (value, step) of its last point
    code: dict[str, Any]
    environment: dict[str, Any]
    command: dict[str, Any] | None
    exit_code: int | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    created_by: str | None

    @property
    def duration_s(self) -> float | None:
        return (
            None
            if self.finished_at is None
            else (self.finished_at - self.started_at).total_seconds()
        )


class MetricPoint(NamedTuple):
    """One logged value. A tuple, since a training loop makes one per call."""

    key: str
    value: float
    step: int
    at: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class RunFile:
    path: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    digest: str
    rows: int
    columns: Any  # names, or a count when the data has none
    source: str | None


def check_key(kind: str, key: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"a {kind} must be a non-empty string, not {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(
            f"a {kind} is at most {MAX_KEY_LENGTH} characters; this one has {len(key)} "
            f"({key[:40]!r}...): shorten it, or put long text in a param, which is kept whole"
        )
    return key


class RunStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def create(
        self,
        run_id: str,
        experiment: str,
        *,
        params: dict[str, Any],
        tags: dict[str, Any],
        code: dict[str, Any],
        environment: dict[str, Any],
        command: dict[str, Any] | None,
        actor: str | None,
    ) -> Run:
        with self.database.session() as session:
            session.add(
                RunRow(
                    id=run_id,
                    experiment=experiment,
                    status="running",
                    params=params,
                    tags=tags,
                    latest={},
                    code=code,
                    environment=environment,
                    command=command,
                    started_at=utcnow(),
                    created_by=actor,
                )
            )
        return self.get(run_id)

    def get(self, run_id: str) -> Run:
        """The run with this id, or with this unique prefix of an id (at least 4 characters)."""
        with self.database.session() as session:
            row = session.get(RunRow, run_id)
            if row is None and len(run_id) >= MIN_PREFIX:
                found = session.scalars(
                    select(RunRow).where(RunRow.id.startswith(run_id, autoescape=True)).limit(2)
                ).all()
                if len(found) > 1:
                    raise InvalidInputError(
                        f"run id prefix {run_id!r} is ambiguous: give more of the id"
                    )
                row = found[0] if found else None
            if row is None:
                raise NotFoundError(f"no run {run_id!r}: `shipyard runs list` shows the runs")
            return _to_run(row)

    def reopen(self, run_id: str) -> Run:
        """Mark a finished run running again; refused while it is running."""
        run_id = self.get(run_id).id
        with self.database.session() as session:
            result = session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.status != "running")
                .values(status="running", finished_at=None)
            )
            changed = int(getattr(result, "rowcount", 0) or 0)
        run = self.get(run_id)
        if not changed:
            raise ConflictError(
                f"run {run_id} is already open (running since {run.started_at:%Y-%m-%d %H:%M:%S}"
                f" UTC, by {run.created_by or 'someone'}): a run is open in one place at a time; "
                "end it there, or start a new run"
            )
        return run

    def finish(
        self, run_id: str, status: str, *, exit_code: int | None = None, error: str | None = None
    ) -> Run:
        if status not in FINAL_STATES:
            raise InvalidInputError(
                f"a run ends as one of {', '.join(FINAL_STATES)}, not {status!r}"
            )
        with self.database.session() as session:
            session.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(status=status, exit_code=exit_code, error=error, finished_at=utcnow())
            )
        return self.get(run_id)

    def merge(
        self,
        run_id: str,
        *,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> None:
        with self.database.session() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(f"no run {run_id!r}")
            if params:
                row.params = {**row.params, **params}
            if tags:
                row.tags = {**row.tags, **tags}

    def rename(self, run_id: str, experiment: str) -> None:
        """Move a run to another experiment (a script joining a run names its own)."""
        with self.database.session() as session:
            session.execute(update(RunRow).where(RunRow.id == run_id).values(experiment=experiment))

    def log_points(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        """One INSERT of every point and one update of the run's latest values."""
        if not points:
            return
        steps: dict[str, tuple[int, float]] = {}
        rows = []
        for key, value, step, at in points:
            current = steps.get(key)
            if current is None or step >= current[0]:
                steps[key] = (step, value)
            rows.append((run_id, key, step, None if value != value else value, at))  # NaN: NULL
        latest = {key: [_json_number(value), step] for key, (step, value) in steps.items()}
        with self.database.session() as session:
            connection = session.connection()
            _insert_points(connection, rows)
            # The latest values alone, not the whole run (its code, environment, params).
            stored = connection.scalar(select(_RUNS.c.latest).where(_RUNS.c.id == run_id))
            if stored is None:
                raise NotFoundError(f"no run {run_id!r}")
            merged = dict(stored)
            for key, newest in latest.items():
                if key not in merged or newest[1] >= merged[key][1]:
                    merged[key] = newest
            connection.execute(update(_RUNS).where(_RUNS.c.id == run_id).values(latest=merged))

    def add_file(self, run_id: str, path: str, digest: str, size: int) -> None:
        check_key("file path", path)
        with self.database.session() as session:
            existing = session.get(RunFileRow, (run_id, path))
            if existing is None:
                session.add(RunFileRow(run_id=run_id, path=path, digest=digest, size=size))
            else:
                existing.digest, existing.size = digest, size

    def add_dataset(self, run_id: str, dataset: Dataset) -> None:
        with self.database.session() as session:
            session.merge(
                RunDatasetRow(
                    run_id=run_id,
                    name=dataset.name,
                    digest=dataset.digest,
                    rows=dataset.rows,
                    columns=dataset.columns,
                    source=dataset.source,
                )
            )

    # Reading ---------------------------------------------------------------------------

    def search(
        self,
        *,
        experiment: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs, newest first."""
        newest_first = (_RUNS.c.started_at.desc(), _RUNS.c.id)
        query = select(_RUNS)
        if experiment is not None:
            query = query.where(_RUNS.c.experiment == experiment)
        if status is not None:
            query = query.where(_RUNS.c.status == status)
        if limit is not None:
            # The newest ids first, then their rows: sorting every run whole (its params,
            # code and environment) to keep 50 takes five times as long.
            chosen = query.with_only_columns(_RUNS.c.id).order_by(*newest_first).limit(limit)
            picked = chosen.subquery()
            query = select(_RUNS).join(picked, _RUNS.c.id == picked.c.id)
        # Plain rows, not mapped objects: a list of thousands of runs reads in half the time.
        with self.database.session() as session:
            return [_to_run(row) for row in session.execute(query.order_by(*newest_first))]

    def count(self, *, experiment: str | None = None, status: str | None = None) -> int:
        """How many runs ``search`` would find without a limit."""
        query = select(func.count()).select_from(RunRow)
        if experiment is not None:
            query = query.where(RunRow.experiment == experiment)
        if status is not None:
            query = query.where(RunRow.status == status)
        with self.database.session() as session:
            return int(session.scalar(query) or 0)

    def history(self, run_ids: Iterable[str], key: str) -> dict[str, list[MetricPoint]]:
        """Every point of one metric of each run, in step order."""
        ids = list(run_ids)
        found: dict[str, list[MetricPoint]] = {run_id: [] for run_id in ids}
        query = (
            select(RunMetricRow.run_id, RunMetricRow.step, RunMetricRow.value, RunMetricRow.at)
            .where(RunMetricRow.run_id.in_(ids), RunMetricRow.key == key)
            .order_by(RunMetricRow.run_id, RunMetricRow.step, RunMetricRow.id)
        )
        with self.database.session() as session:
            for run_id, step, value, at in session.execute(query):
                found[run_id].append(
                    MetricPoint(key, math.nan if value is None else value, step, at)
                )
        return found

    def count_points(self, run_id: str) -> int:
        with self.database.session() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(RunMetricRow)
                    .where(RunMetricRow.run_id == run_id)
                )
                or 0
            )

    def files(self, run_id: str) -> list[RunFile]:
        with self.database.session() as session:
            rows = session.scalars(
                select(RunFileRow).where(RunFileRow.run_id == run_id).order_by(RunFileRow.path)
            )
            return [RunFile(r.path, r.digest, r.size) for r in rows]

    def datasets(self, run_id: str) -> list[Dataset]:
        with self.database.session() as session:
            rows = session.scalars(
                select(RunDatasetRow)
                .where(RunDatasetRow.run_id == run_id)
                .order_by(RunDatasetRow.name)
            )
            return [Dataset(r.name, r.digest, r.rows, r.columns, r.source) for r in rows]

    def versions_of(self, run_id: str) -> list[tuple[str, int]]:
        """The (model, version) pairs registered from this run."""
        with self.database.session() as session:
            rows = session.execute(
                select(ModelRow.name, VersionRow.version)
                .join(VersionRow, VersionRow.model_id == ModelRow.id)
                .where(VersionRow.run_id == run_id)
                .order_by(ModelRow.name, VersionRow.version)
            )
            return [(name, version) for name, version in rows]


def _insert_points(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """One INSERT of many points, the rows handed to the driver as they are: SQLAlchemy's
    handling of each row's parameters took longer than the driver's executemany of them, and
    the ORM's bulk INSERT twice that again (it was 60% of a 1000-point flush)."""
    dialect = connection.dialect
    style = (dialect.name, dialect.paramstyle)
    if style not in _POINTS_INSERT:
        statement = insert(_METRICS).compile(dialect=dialect, column_keys=_POINT_COLUMNS)
        positional = statement.positiontup == _POINT_COLUMNS  # SQLite's qmark style
        _POINTS_INSERT[style] = str(statement) if positional else None
    text = _POINTS_INSERT[style]
    if text is not None:
        connection.exec_driver_sql(text, rows)
    else:  # a named paramstyle (psycopg's pyformat), left to SQLAlchemy
        connection.execute(
            insert(_METRICS), [dict(zip(_POINT_COLUMNS, r, strict=True)) for r in rows]
        )


def _json_number(value: float) -> float | str:
    # JSON has no NaN or infinity; the latest values keep them as their names.
    return value if math.isfinite(value) else str(value)


def _to_run(row: RunRow | Row[Any]) -> Run:
    return Run(
        id=row.id,
        experiment=row.experiment,
        status=row.status,
        params=dict(row.params),
        tags=dict(row.tags),
        latest={key: (float(v[0]), int(v[1])) for key, v in row.latest.items()},
        code=dict(row.code),
        environment=dict(row.environment),
        command=dict(row.command) if row.command is not None else None,
        exit_code=row.exit_code,
        error=row.error,
        started_at=as_utc(row.started_at),
        finished_at=as_utc(row.finished_at) if row.finished_at is not None else None,
        created_by=row.created_by,
    )
