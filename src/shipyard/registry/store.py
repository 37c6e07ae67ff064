"""Rows in, domain objects out: the queries of the metadata store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shipyard.errors import AliasNotFoundError, ModelNotFoundError, VersionNotFoundError
from shipyard.registry.domain import (
    ArtifactFile,
    Event,
    Model,
    ModelKind,
    ModelVersion,
    Signature,
    VersionStatus,
)
from shipyard.registry.names import ModelRef
from shipyard.registry.schema import (
    AliasRow,
    EventRow,
    FileRow,
    ModelRow,
    RunFileRow,
    VersionRow,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; every timestamp we write is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def model_row(session: Session, name: str) -> ModelRow:
    row = session.scalar(select(ModelRow).where(ModelRow.name == name))
    if row is None:
        raise ModelNotFoundError(f"no model named {name!r}; `shipyard models list` shows them")
    return row


def version_row(session: Session, model: ModelRow, version: int) -> VersionRow:
    row = session.scalar(
        select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.version == version)
    )
    if row is None:
        raise VersionNotFoundError(
            f"model {model.name!r} has no version {version}; "
            f"`shipyard models show {model.name}` lists its versions"
        )
    return row


def resolve_row(session: Session, ref: ModelRef) -> VersionRow:
    model = model_row(session, ref.name)
    if ref.version is not None:
        return version_row(session, model, ref.version)
    if ref.alias is not None:
        alias = session.get(AliasRow, (model.id, ref.alias))
        if alias is None:
            raise AliasNotFoundError(f"model {ref.name!r} has no alias {ref.alias!r}")
        row = session.get(VersionRow, alias.version_id)
        assert row is not None  # the foreign key guarantees it
        return row
    latest = session.scalar(
        select(VersionRow)
        .where(VersionRow.model_id == model.id)
        .order_by(VersionRow.version.desc())
        .limit(1)
    )
    if latest is None:
        raise VersionNotFoundError(f"model {ref.name!r} has no versions")
    return latest


def next_version_number(session: Session, model: ModelRow) -> int:
    current = session.scalar(
        select(func.max(VersionRow.version)).where(VersionRow.model_id == model.id)
    )
    return (current or 0) + 1


def aliases_by_version(session: Session, model_id: int) -> dict[int, list[str]]:
    rows = session.execute(
        select(AliasRow.name, VersionRow.version)
        .join(VersionRow, AliasRow.version_id == VersionRow.id)
        .where(AliasRow.model_id == model_id)
        .order_by(AliasRow.name)
    )
    result: dict[int, list[str]] = {}
    for alias, version in rows:
        result.setdefault(version, []).append(alias)
    return result


def to_version(row: VersionRow, aliases: list[str] | None = None) -> ModelVersion:
    return ModelVersion(
        name=row.model.name,
        version=row.version,
        status=VersionStatus(row.status),
        flavor=row.flavor,
        kind=ModelKind(row.kind),
        artifact_digest=row.artifact_digest,
        signature=Signature.from_dict(row.signature),
        input_example=row.input_example,
        metrics=dict(row.metrics),
        tags=dict(row.tags),
        conversion=dict(row.conversion),
        run_id=row.run_id,
        parent_version=row.parent_version,
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        files=tuple(ArtifactFile(f.path, f.digest, f.size) for f in row.files),
        aliases=tuple(aliases or ()),
    )


def to_model(session: Session, row: ModelRow) -> Model:
    latest = session.scalar(
        select(func.max(VersionRow.version)).where(VersionRow.model_id == row.id)
    )
    aliases = {
        alias: version
        for version, names in aliases_by_version(session, row.id).items()
        for alias in names
    }
    return Model(
        name=row.name,
        description=row.description,
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        latest_version=latest,
        aliases=dict(sorted(aliases.items())),
    )


def to_event(row: EventRow) -> Event:
    return Event(
        id=row.id,
        at=as_utc(row.at),
        model=row.model,
        kind=row.kind,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        reason=row.reason,
        actor=row.actor,
        details=dict(row.details),
    )


def add_event(
    session: Session,
    model: str,
    kind: str,
    *,
    actor: str | None,
    alias: str | None = None,
    from_version: int | None = None,
    to_version: int | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        EventRow(
            at=utcnow(),
            model=model,
            kind=kind,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            reason=reason,
            actor=actor,
            details=details or {},
        )
    )


def referenced_digests(session: Session, digests: set[str]) -> set[str]:
    """Which of ``digests`` some version (as a file or as its manifest) or run still uses."""
    if not digests:
        return set()
    used = set(session.scalars(select(FileRow.digest).where(FileRow.digest.in_(digests))))
    used |= set(
        session.scalars(
            select(VersionRow.artifact_digest).where(VersionRow.artifact_digest.in_(digests))
        )
    )
    used |= set(session.scalars(select(RunFileRow.digest).where(RunFileRow.digest.in_(digests))))
    return used
