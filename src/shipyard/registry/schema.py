"""Tables of the metadata store (SQLAlchemy 2). Changes here need an Alembic migration."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(128))

    versions: Mapped[list[VersionRow]] = relationship(back_populates="model")


class VersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    flavor: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    artifact_digest: Mapped[str] = mapped_column(String(64))
    signature: Mapped[dict[str, Any]]
    input_example: Mapped[Any] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]]
    tags: Mapped[dict[str, Any]]
    conversion: Mapped[dict[str, Any]]
    run_id: Mapped[str | None] = mapped_column(String(64))
    parent_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(128))

    model: Mapped[ModelRow] = relationship(back_populates="versions")
    files: Mapped[list[FileRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="FileRow.path"
    )


class FileRow(Base):
    """One file of a version's manifest, so that blob garbage collection is a query."""

    __tablename__ = "version_files"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(255), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)


class AliasRow(Base):
    __tablename__ = "aliases"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime]


class EventRow(Base):
    """Append-only audit log: rows are inserted, never updated or deleted."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_model_at", "model", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    model: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    alias: Mapped[str | None] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]]


class ProfileRow(Base):
    """A version's reference profile (monitor sketches of its reference data), as JSON."""

    __tablename__ = "monitor_profiles"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime]
    profile: Mapped[dict[str, Any]]


class WindowRow(Base):
    """One replica's live sketches of one flush interval; windows merge by addition."""

    __tablename__ = "monitor_windows"
    __table_args__ = (Index("ix_monitor_windows_version_end", "version_id", "ended_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    replica: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    rows: Mapped[int] = mapped_column(Integer)
    profile: Mapped[dict[str, Any]]
    stats: Mapped[dict[str, Any]]  # requests, latency and data-quality counts of the interval


class EvaluationRow(Base):
    """A drift and performance evaluation, kept for the report's history."""

    __tablename__ = "monitor_evaluations"
    __table_args__ = (Index("ix_monitor_evaluations_version_at", "version_id", "evaluated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    evaluated_at: Mapped[datetime]
    result: Mapped[dict[str, Any]]


class PredictionRow(Base):
    """A served request's outputs (and inputs, where payload logging is on), joined later to
    its ground-truth label by request id."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_version_at", "version_id", "created_at"),
        Index("ix_predictions_created_at", "created_at"),  # retention deletes by age
        Index(  # live performance reads only the labelled ones
            "ix_predictions_labelled",
            "version_id",
            "created_at",
            sqlite_where=text("labelled_at IS NOT NULL"),
            postgresql_where=text("labelled_at IS NOT NULL"),
        ),
    )

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    outputs: Mapped[Any] = mapped_column(JSON)
    inputs: Mapped[Any | None] = mapped_column(JSON)
    label: Mapped[Any | None] = mapped_column(JSON)
    labelled_at: Mapped[datetime | None]


class LeaseRow(Base):
    """Who holds a named lease (a rollout's controller, say) until when. The token rises by
    one with every new holder: a write fenced by a token fails once another holds the lease."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    token: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime]


class RolloutRow(Base):
    """A move of one model from a baseline version to a candidate: its state, where its
    traffic stands and its configuration. ``revision`` rises with every change, so replicas
    following the routing can tell a new split from the one they hold."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_model_finished", "model", "finished_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64))
    baseline: Mapped[int] = mapped_column(Integer)
    candidate: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32))
    weight: Mapped[float] = mapped_column(Float)
    step: Mapped[int] = mapped_column(Integer)
    failures: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    step_started_at: Mapped[datetime | None]  # when the current step's clock started
    analysis: Mapped[dict[str, Any] | None]  # the latest analysis: every check's figures
    command: Mapped[str | None] = mapped_column(String(16))  # an operator's promote/abort/resume


class RolloutEvidenceRow(Base):
    """What one replica has seen of one step of a rollout: requests, errors, latencies and
    answers per version, and the paired answers of mirrored requests. Each replica rewrites
    its own row; the controller sums the rows of a step."""

    __tablename__ = "rollout_evidence"

    rollout_id: Mapped[int] = mapped_column(
        ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    replica: Mapped[str] = mapped_column(String(128), primary_key=True)
    document: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class RunRow(Base):
    """One training run: what it was given (params, data, code, environment), how it ended,
    and the latest value of each of its metrics (so lists and comparisons read one row)."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_experiment_started", "experiment", "started_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    experiment: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]]
    tags: Mapped[dict[str, Any]]
    latest: Mapped[dict[str, Any]]  # metric key -> [value, step] of its last point
    code: Mapped[dict[str, Any]]  # git commit, dirty flag, a hash of the uncommitted diff
    environment: Mapped[dict[str, Any]]  # Python, key packages, a hash of the lock file
    command: Mapped[dict[str, Any] | None]  # argv and working directory, when one ran it
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(128))


class RunMetricRow(Base):
    """One point of a run's metric. NaN is stored as NULL, which SQLite would make of it
    anyway; a point always has a value, so NULL reads back as NaN."""

    __tablename__ = "run_metrics"
    __table_args__ = (Index("ix_run_metrics_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(1000))
    step: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Float)
    at: Mapped[float] = mapped_column(Float)  # seconds since the epoch


class RunFileRow(Base):
    """A file a run logged (an artifact, or the output of the command it ran), kept in the
    content-addressed store like a version's files."""

    __tablename__ = "run_files"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)


class RunDatasetRow(Base):
    """A dataset a run used, by fingerprint: the sha256 of its data, its rows and columns."""

    __tablename__ = "run_datasets"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[Any | None] = mapped_column(JSON)
    source: Mapped[str | None] = mapped_column(Text)
