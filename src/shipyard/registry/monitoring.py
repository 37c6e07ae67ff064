"""The monitor's tables: reference profiles, live windows, evaluations, the prediction log.

Plain JSON documents keyed by version; what they mean is the monitor's business. Every
server replica writes its own windows, so a reader merges all replicas' windows of a period.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from shipyard.registry.database import Database
from shipyard.registry.domain import ModelVersion
from shipyard.registry.names import ModelRef
from shipyard.registry.schema import (
    EvaluationRow,
    PredictionRow,
    ProfileRow,
    VersionRow,
    WindowRow,
)
from shipyard.registry.store import as_utc, model_row, resolve_row, utcnow

# Logged predictions go in several rows per INSERT: SQLite runs (and lets go of the GIL
# for) one step per statement, where an executemany takes one per row, and each of those
# hands the GIL to the request loop. 128 rows of 5 values stay within the 999 values per
# statement of SQLite's oldest limit; chunk sizes are powers of two, so that SQLAlchemy
# compiles each size once and reuses it.
_ROWS_PER_INSERT = 128
_IDS_PER_QUERY = 500  # bound parameters per IN (...): SQLite allows 32,766, some drivers fewer


@dataclass(frozen=True)
class StoredWindow:
    replica: str
    started_at: datetime
    ended_at: datetime
    rows: int
    profile: dict[str, Any]
    stats: dict[str, Any]
    id: int | None = None


@dataclass(frozen=True)
class StoredPrediction:
    request_id: str
    version: int
    created_at: datetime
    outputs: Any
    inputs: Any | None
    label: Any | None
    labelled_at: datetime | None


@dataclass(frozen=True)
class LabelOutcome:
    matched: list[str]
    unknown: list[str]  # request ids with no logged prediction (never served, or pruned)


class MonitorStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    # Profiles ---------------------------------------------------------------------------

    def get_profile(self, version: ModelVersion) -> dict[str, Any] | None:
        with self.database.session() as session:
            row = session.get(ProfileRow, _version_id(session, version))
            return dict(row.profile) if row is not None else None

    def put_profile(self, version: ModelVersion, profile: dict[str, Any]) -> None:
        with self.database.session() as session:
            version_id = _version_id(session, version)
            row = session.get(ProfileRow, version_id)
            if row is None:
                session.add(ProfileRow(version_id=version_id, created_at=utcnow(), profile=profile))
            else:
                row.profile, row.created_at = profile, utcnow()

    # Windows and evaluations ------------------------------------------------------------

    def add_window(self, version: ModelVersion, window: StoredWindow) -> int:
        """Store a window; returns its id."""

        def insert(session: Session) -> int:
            row = _window_row(_version_id(session, version), window)
            session.add(row)
            session.flush()
            return int(row.id)

        return self.database.write(insert)

    def windows(
        self,
        version: ModelVersion,
        since: datetime | None = None,
        until: datetime | None = None,
        replica: str | None = None,
    ) -> list[StoredWindow]:
        """Windows that ended after ``since`` (and by ``until``), every replica's unless one is
        named, oldest first."""
        with self.database.session() as session:
            query = select(WindowRow).where(WindowRow.version_id == _version_id(session, version))
            if since is not None:
                query = query.where(WindowRow.ended_at > since)
            if until is not None:
                query = query.where(WindowRow.ended_at <= until)
            if replica is not None:
                query = query.where(WindowRow.replica == replica)
            rows = session.scalars(query.order_by(WindowRow.ended_at, WindowRow.id))
            return [_stored_window(r) for r in rows]

    def window_ids(self, version: ModelVersion, since: datetime) -> set[int]:
        """The ids of the windows that ended after ``since`` (an index read: no documents)."""
        with self.database.session() as session:
            rows = session.execute(
                select(WindowRow.id)
                .where(WindowRow.version_id == _version_id(session, version))
                .where(WindowRow.ended_at > since)
            )
            return {row[0] for row in rows}

    def windows_by_id(self, ids: Iterable[int]) -> list[StoredWindow]:
        """The windows with these ids (those still stored), oldest first."""
        wanted = list(ids)
        found: list[StoredWindow] = []
        with self.database.session() as session:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                chunk = wanted[start : start + _IDS_PER_QUERY]
                rows = session.scalars(select(WindowRow).where(WindowRow.id.in_(chunk)))
                found.extend(_stored_window(r) for r in rows)
        return sorted(found, key=lambda w: (w.ended_at, w.id or 0))

    def replace_windows(self, version: ModelVersion, ids: list[int], merged: StoredWindow) -> None:
        """Swap several windows for their merge, in one transaction (readers see either)."""

        def swap(session: Session) -> None:
            session.execute(delete(WindowRow).where(WindowRow.id.in_(ids)))
            session.add(_window_row(_version_id(session, version), merged))

        self.database.write(swap)

    def prune_history(self, before: datetime) -> None:
        """Drop windows and evaluations that ended before ``before`` (retention)."""
        with self.database.session() as session:
            session.execute(delete(WindowRow).where(WindowRow.ended_at < before))
            session.execute(delete(EvaluationRow).where(EvaluationRow.evaluated_at < before))

    def add_evaluation(self, version: ModelVersion, at: datetime, result: dict[str, Any]) -> None:
        with self.database.session() as session:
            session.add(
                EvaluationRow(
                    version_id=_version_id(session, version), evaluated_at=at, result=result
                )
            )

    def evaluations(
        self, version: ModelVersion, since: datetime | None = None
    ) -> list[tuple[datetime, dict[str, Any]]]:
        with self.database.session() as session:
            query = select(EvaluationRow).where(
                EvaluationRow.version_id == _version_id(session, version)
            )
            if since is not None:
                query = query.where(EvaluationRow.evaluated_at > since)
            rows = session.scalars(query.order_by(EvaluationRow.evaluated_at, EvaluationRow.id))
            return [(as_utc(r.evaluated_at), r.result) for r in rows]

    # The prediction log -----------------------------------------------------------------

    def add_predictions(
        self, version: ModelVersion, predictions: Iterable[tuple[str, datetime, Any, Any]]
    ) -> None:
        """(request id, served at, outputs, inputs or None) per request, in one bulk insert;
        a repeated request id keeps its first record."""
        batch = list(predictions)
        if not batch:
            return

        def insert(session: Session) -> None:
            version_id = _version_id(session, version)
            # label and labelled_at are left to their default, NULL: nothing to encode
            rows = [
                {"request_id": request_id, "version_id": version_id, "created_at": at,
                 "outputs": outputs, "inputs": inputs}
                for request_id, at, outputs, inputs in batch
            ]  # fmt: skip
            dialect = session.get_bind().dialect.name
            start = 0
            while start < len(rows):
                size = _chunk_size(len(rows) - start)
                params = {
                    f"{name}_{i}": value
                    for i, row in enumerate(rows[start : start + size])
                    for name, value in row.items()
                }
                session.execute(_multirow_insert(dialect, size), params)
                start += size

        self.database.write(insert)

    def set_labels(self, name: str, labels: dict[str, Any]) -> LabelOutcome:
        """Attach ground truth to logged predictions of model ``name`` by request id."""
        now = utcnow()
        with self.database.session() as session:
            rows = session.execute(
                select(PredictionRow.request_id)
                .join(VersionRow, VersionRow.id == PredictionRow.version_id)
                .where(PredictionRow.request_id.in_(list(labels)))
                .where(VersionRow.model_id == model_row(session, name).id)
            )
            matched = [row[0] for row in rows]
            for request_id in matched:
                session.execute(
                    update(PredictionRow)
                    .where(PredictionRow.request_id == request_id)
                    .values(label=labels[request_id], labelled_at=now)
                )
        found = set(matched)
        return LabelOutcome(
            [r for r in labels if r in found], [r for r in labels if r not in found]
        )

    def predictions(
        self,
        version: ModelVersion,
        since: datetime | None = None,
        until: datetime | None = None,
        labelled_only: bool = False,
    ) -> list[StoredPrediction]:
        with self.database.session() as session:
            query = select(PredictionRow).where(
                PredictionRow.version_id == _version_id(session, version)
            )
            if since is not None:
                query = query.where(PredictionRow.created_at >= since)
            if until is not None:
                query = query.where(PredictionRow.created_at < until)
            if labelled_only:
                query = query.where(PredictionRow.labelled_at.is_not(None))
            rows = session.scalars(query.order_by(PredictionRow.created_at))
            return [
                StoredPrediction(
                    r.request_id,
                    version.version,
                    as_utc(r.created_at),
                    r.outputs,
                    r.inputs,
                    r.label,
                    as_utc(r.labelled_at) if r.labelled_at else None,
                )
                for r in rows
            ]

    def prune_predictions(self, max_age: timedelta | None, max_rows: int | None) -> int:
        """Enforce retention: drop logged predictions older than ``max_age``, then the
        oldest beyond ``max_rows``. Returns how many were dropped."""
        dropped = 0
        with self.database.session() as session:
            if max_age is not None:
                cutoff = utcnow() - max_age
                result = session.execute(
                    delete(PredictionRow).where(PredictionRow.created_at < cutoff)
                )
                dropped += int(getattr(result, "rowcount", 0) or 0)
            if max_rows is not None:
                total = session.scalar(select(func.count()).select_from(PredictionRow)) or 0
                excess = total - max_rows
                if excess > 0:
                    oldest = (
                        select(PredictionRow.request_id)
                        .order_by(PredictionRow.created_at)
                        .limit(excess)
                        .scalar_subquery()
                    )
                    result = session.execute(
                        delete(PredictionRow).where(PredictionRow.request_id.in_(oldest))
                    )
                    dropped += int(getattr(result, "rowcount", 0) or 0)
        return dropped


def _stored_window(row: WindowRow) -> StoredWindow:
    return StoredWindow(
        row.replica,
        as_utc(row.started_at),
        as_utc(row.ended_at),
        row.rows,
        row.profile,
        row.stats,
        row.id,
    )


def _version_id(session: Any, version: ModelVersion) -> int:
    return resolve_row(session, ModelRef(version.name, version=version.version)).id


def _window_row(version_id: int, window: StoredWindow) -> WindowRow:
    return WindowRow(
        version_id=version_id,
        replica=window.replica,
        started_at=window.started_at,
        ended_at=window.ended_at,
        rows=window.rows,
        profile=window.profile,
        stats=window.stats,
    )


def _chunk_size(remaining: int) -> int:
    """The rows of the next INSERT: _ROWS_PER_INSERT, or the largest power of two left."""
    return min(_ROWS_PER_INSERT, 1 << (remaining.bit_length() - 1))


_LOGGED_COLUMNS = ("request_id", "version_id", "created_at", "outputs", "inputs")


@functools.cache
def _multirow_insert(dialect: str, rows: int) -> Any:
    """INSERT of ``rows`` logged predictions, binding ``<column>_<i>``, that skips a request
    id already logged (SQLite, PostgreSQL; MySQL's IGNORE). Written as text: SQLAlchemy does
    not cache the compiled form of a multi-row VALUES and would build it at every call; a
    text statement compiles once, and its typed binds still encode JSON and timestamps."""
    table = cast(Table, PredictionRow.__table__)
    rows_sql = ", ".join(
        "(" + ", ".join(f":{name}_{i}" for name in _LOGGED_COLUMNS) + ")" for i in range(rows)
    )
    head = "INSERT IGNORE INTO" if dialect == "mysql" else "INSERT INTO"
    tail = "" if dialect == "mysql" else " ON CONFLICT DO NOTHING"
    sql = f"{head} {table.name} ({', '.join(_LOGGED_COLUMNS)}) VALUES {rows_sql}{tail}"
    binds = [
        bindparam(f"{name}_{i}", type_=table.c[name].type)
        for i in range(rows)
        for name in _LOGGED_COLUMNS
    ]
    return text(sql).bindparams(*binds)
