"""The Registry: models, immutable versions, movable aliases and the audit log."""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import sqlalchemy.exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.errors import (
    AliasNotFoundError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    StorageError,
)
from shipyard.registry import store
from shipyard.registry.artifacts import (
    ArtifactStore,
    ProgressCallback,
    StoredBlob,
    put_manifest,
    read_manifest,
)
from shipyard.registry.backends import open_artifacts, open_database
from shipyard.registry.database import Database
from shipyard.registry.domain import (
    ArtifactFile,
    Event,
    Model,
    ModelVersion,
    NewVersion,
    VersionStatus,
)
from shipyard.registry.garbage import DEFAULT_MIN_AGE, Collection, collect_garbage
from shipyard.registry.leases import LeaseStore
from shipyard.registry.monitoring import MonitorStore
from shipyard.registry.names import ModelRef, validate_name
from shipyard.registry.rollouts import RolloutStore
from shipyard.registry.runs import RunStore
from shipyard.registry.schema import AliasRow, EventRow, FileRow, ModelRow, VersionRow
from shipyard.settings import Settings

VERSION_RACE_RETRIES = 20

# Progress of long work: (description, total bytes) -> callback per chunk of bytes done.
ProgressFactory = Callable[[str, int], ProgressCallback]


def quiet_progress(_description: str, _total: int) -> ProgressCallback:
    return lambda _n: None


def _ref(ref: str | ModelRef) -> ModelRef:
    return ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)


class Registry:
    """Metadata in a database, artifacts in a content-addressed store.

    Both come from the settings (``open_database``, ``open_artifacts``) unless given; the
    registry closes the database it opened, and leaves one it was given to its owner.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        database: Database | None = None,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        self.settings = settings
        self._owns_database = database is None
        self.database = database if database is not None else open_database(settings)
        self.monitoring = MonitorStore(self.database)
        self.leases = LeaseStore(self.database)
        self.rollouts = RolloutStore(self.database, self.leases)
        self.runs = RunStore(self.database)
        self.artifacts = artifacts if artifacts is not None else open_artifacts(settings)
        self.actor = settings.actor or _os_user()
        self.database.ensure_schema()

    def close(self) -> None:
        if self._owns_database:
            self.database.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # Reading ---------------------------------------------------------------------------

    def list_models(self) -> list[Model]:
        with self.database.session() as session:
            rows = session.scalars(select(ModelRow).order_by(ModelRow.name))
            return [store.to_model(session, row) for row in rows]

    def get_model(self, name: str) -> Model:
        with self.database.session() as session:
            return store.to_model(session, store.model_row(session, validate_name(name)))

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self.database.session() as session:
            model = store.model_row(session, validate_name(name))
            aliases = store.aliases_by_version(session, model.id)
            rows = session.scalars(
                select(VersionRow)
                .where(VersionRow.model_id == model.id)
                .order_by(VersionRow.version)
            )
            return [store.to_version(row, aliases.get(row.version)) for row in rows]

    def get_version(self, ref: str | ModelRef) -> ModelVersion:
        """Resolve ``name``, ``name:3`` or ``name@alias`` to a version."""
        parsed = _ref(ref)
        with self.database.session() as session:
            row = store.resolve_row(session, parsed)
            aliases = store.aliases_by_version(session, row.model_id).get(row.version)
            return store.to_version(row, aliases)

    def events(self, name: str | None = None, limit: int = 100) -> list[Event]:
        with self.database.session() as session:
            query = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
            if name is not None:
                query = query.where(EventRow.model == validate_name(name))
            return [store.to_event(row) for row in session.scalars(query)]

    def alias_targets(self, alias: str) -> dict[str, int]:
        """Every model that has ``alias``, with the version it points at (one query)."""
        with self.database.session() as session:
            rows = session.execute(
                select(ModelRow.name, VersionRow.version)
                .join(AliasRow, AliasRow.model_id == ModelRow.id)
                .join(VersionRow, AliasRow.version_id == VersionRow.id)
                .where(AliasRow.name == alias)
            )
            return {str(name): int(version) for name, version in rows}

    def record_event(
        self,
        model: str,
        kind: str,
        *,
        from_version: int | None = None,
        to_version: int | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append to the audit log (servers record loads, switches and failures here)."""
        with self.database.session() as session:
            store.add_event(
                session,
                model,
                kind,
                actor=self.actor,
                from_version=from_version,
                to_version=to_version,
                reason=reason,
                details=details,
            )

    # Artifacts of a version -------------------------------------------------------------

    def read_file(self, version: ModelVersion, path: str) -> bytes:
        """One file of a version, verified against its digest."""
        entry = version.file(path)
        if entry is None:
            raise InvalidInputError(f"{version.ref} has no artifact file {path!r}")
        return self.artifacts.read_verified(entry.digest, path)

    def read_files(self, version: ModelVersion) -> dict[str, bytes]:
        """All files of a version, each verified, after checking the manifest itself."""
        self._check_manifest(version)
        return {f.path: self.artifacts.read_verified(f.digest, f.path) for f in version.files}

    def verify(
        self, ref: str | ModelRef, progress: ProgressFactory = quiet_progress
    ) -> ModelVersion:
        """Re-hash every file of a version; raise IntegrityError naming the first bad one."""
        version = self.get_version(ref)
        self._check_manifest(version)
        for entry in version.files:
            self.artifacts.verify(
                entry.digest, entry.path, progress(f"verify {entry.path}", entry.size)
            )
        return version

    def _check_manifest(self, version: ModelVersion) -> None:
        """The manifest blob must list exactly the files the database lists."""
        manifest = read_manifest(self.artifacts, version.artifact_digest)
        expected = {f.path: f for f in version.files}
        if manifest != expected:
            raise_manifest_mismatch(version, manifest, expected)

    # Writing ---------------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        new: NewVersion,
        *,
        alias: str | None = None,
        progress: ProgressFactory = quiet_progress,
    ) -> ModelVersion:
        """Store the staged files, then add the version row; all or nothing."""
        validate_name(name)
        if alias is not None:
            validate_name(alias, "alias name")
        created: list[str] = []
        try:
            files = []
            for path, source in sorted(new.files.items()):
                blob = self.artifacts.put_file(
                    source, progress(f"store {path}", source.stat().st_size)
                )
                if blob.created:
                    created.append(blob.digest)
                files.append(ArtifactFile(path, blob.digest, blob.size))
            manifest: StoredBlob = put_manifest(self.artifacts, files)
            if manifest.created:
                created.append(manifest.digest)
            return self._insert_version(name, new, files, manifest.digest, alias)
        except BaseException:
            self._discard_unreferenced(created)
            raise

    def _insert_version(
        self,
        name: str,
        new: NewVersion,
        files: list[ArtifactFile],
        digest: str,
        alias: str | None,
    ) -> ModelVersion:
        def insert(session: Session) -> ModelVersion:
            # The model's row, locked: concurrent registrations of one model take
            # their numbers one after another (SQLite's write lock does the same).
            model = session.scalar(select(ModelRow).where(ModelRow.name == name).with_for_update())
            if model is None:
                model = ModelRow(
                    name=name,
                    description=new.description,
                    created_at=store.utcnow(),
                    created_by=self.actor,
                )
                session.add(model)
                session.flush()
            number = store.next_version_number(session, model)
            row = VersionRow(
                model=model,
                version=number,
                status=VersionStatus.READY.value,
                flavor=new.flavor,
                kind=new.kind.value,
                artifact_digest=digest,
                signature=new.signature.to_dict(),
                input_example=new.input_example,
                metrics=dict(new.metrics),
                tags=dict(new.tags),
                conversion=dict(new.conversion),
                run_id=new.run_id,
                parent_version=new.parent_version,
                created_at=store.utcnow(),
                created_by=self.actor,
                files=[FileRow(path=f.path, digest=f.digest, size=f.size) for f in files],
            )
            session.add(row)
            session.flush()
            store.add_event(
                session,
                name,
                "version.registered",
                actor=self.actor,
                to_version=number,
                details={"flavor": new.flavor, "artifact_digest": digest},
            )
            aliases: list[str] = []
            if alias is not None:
                self._move_alias(session, model, alias, row, reason="set at registration")
                aliases.append(alias)
            return store.to_version(row, aliases)

        for _ in range(VERSION_RACE_RETRIES):
            try:
                return self.database.write(insert)
            except sqlalchemy.exc.IntegrityError:
                continue  # another writer took this version number (or model name): try again
        raise StorageError(f"could not allocate a version number for {name!r}: too much contention")

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str | None = None
    ) -> ModelVersion:
        """Point ``name@alias`` at ``version`` and record the move."""
        validate_name(alias, "alias name")

        def move(session: Session) -> ModelVersion:
            model = store.model_row(session, validate_name(name))
            row = store.version_row(session, model, version)
            if row.status != VersionStatus.READY.value:
                raise ConflictError(
                    f"{name}:{version} is {row.status}; only ready versions take aliases"
                )
            self._move_alias(session, model, alias, row, reason=reason)
            aliases = store.aliases_by_version(session, model.id).get(row.version)
            return store.to_version(row, aliases)

        return self.database.write(move)

    def _move_alias(
        self, session: Any, model: ModelRow, alias: str, row: VersionRow, *, reason: str | None
    ) -> None:
        existing = session.get(AliasRow, (model.id, alias))
        previous: int | None = None
        if existing is None:
            session.add(
                AliasRow(
                    model_id=model.id, name=alias, version_id=row.id, updated_at=store.utcnow()
                )
            )
        else:
            previous_row = session.get(VersionRow, existing.version_id)
            previous = previous_row.version if previous_row is not None else None
            existing.version_id = row.id
            existing.updated_at = store.utcnow()
        session.flush()
        store.add_event(
            session,
            model.name,
            "alias.set",
            actor=self.actor,
            alias=alias,
            from_version=previous,
            to_version=row.version,
            reason=reason,
        )

    def delete_alias(self, name: str, alias: str, *, reason: str | None = None) -> None:
        with self.database.session() as session:
            model = store.model_row(session, validate_name(name))
            existing = session.get(AliasRow, (model.id, validate_name(alias, "alias name")))
            if existing is None:
                raise AliasNotFoundError(f"model {name!r} has no alias {alias!r}")
            previous = session.get(VersionRow, existing.version_id)
            session.delete(existing)
            store.add_event(
                session,
                name,
                "alias.deleted",
                actor=self.actor,
                alias=alias,
                from_version=previous.version if previous is not None else None,
                reason=reason,
            )

    def delete_version(self, ref: str | ModelRef, *, force: bool = False) -> ModelVersion:
        """Remove a version and the blobs no other version shares.

        A version that an alias points to is kept unless ``force``, which drops those
        aliases too (each drop is recorded).
        """
        parsed = _ref(ref)
        with self.database.session() as session:
            row = store.resolve_row(session, parsed)
            model = row.model
            aliases = store.aliases_by_version(session, model.id).get(row.version, [])
            if aliases and not force:
                raise ConflictError(
                    f"{model.name}:{row.version} is the target of alias(es) "
                    f"{', '.join(aliases)}; move them first or pass --force"
                )
            version = store.to_version(row, aliases)
            for alias in aliases:
                session.delete(session.get(AliasRow, (model.id, alias)))
                store.add_event(
                    session,
                    model.name,
                    "alias.deleted",
                    actor=self.actor,
                    alias=alias,
                    from_version=row.version,
                    reason=f"version {row.version} deleted",
                )
            session.delete(row)
            store.add_event(
                session, model.name, "version.deleted", actor=self.actor, from_version=row.version
            )
        self._discard_unreferenced([f.digest for f in version.files] + [version.artifact_digest])
        return version

    def collect_garbage(
        self, *, min_age: timedelta = DEFAULT_MIN_AGE, dry_run: bool = False
    ) -> Collection:
        """Remove the blobs nothing references and that are older than ``min_age``."""
        return collect_garbage(self.database, self.artifacts, min_age=min_age, dry_run=dry_run)

    def _discard_unreferenced(self, digests: list[str]) -> None:
        if not digests:
            return
        try:
            with self.database.session() as session:
                used = store.referenced_digests(session, set(digests))
        except Exception:
            return  # cannot tell what is shared: keep the blobs rather than risk breaking a version
        # A store that fails now (the reason we are cleaning up, often) keeps the blobs for
        # `shipyard gc`; the caller hears the first failure, not this one.
        with contextlib.suppress(StorageError):
            self.artifacts.remove(d for d in digests if d not in used)


@contextmanager
def registry_from(source: Registry | Settings) -> Iterator[Registry]:
    """The registry given, left open for its owner; or one opened from the settings given,
    closed when the block ends."""
    if isinstance(source, Registry):
        yield source
        return
    with Registry(source) as registry:
        yield registry


def raise_manifest_mismatch(
    version: ModelVersion, manifest: dict[str, ArtifactFile], expected: dict[str, ArtifactFile]
) -> None:
    differing = set(manifest.items()) ^ set(expected.items())  # ArtifactFiles do not sort
    names = sorted({path for path, _ in differing})
    raise IntegrityError(
        f"the manifest of {version.ref} does not match the registry for file(s) {', '.join(names)}"
    )


def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None
