"""The metadata database seam (``Database``: what the registry and the monitor's store use),
and ``SqlDatabase``, its SQLAlchemy implementation: engine, SQLite pragmas, one session scope,
Alembic migrations under a lock: a file lock beside a SQLite database, a PostgreSQL advisory
lock on a server (every host that migrates takes the same one).

Alembic and numpy are imported only when needed: a database already at ``SCHEMA_HEAD`` is
recognised by one query, so a short command (``shipyard runs list``) does not pay for them."""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson
from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import (
    ArgumentError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from shipyard.errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SCHEMA_HEAD = "0006"  # the newest migration's revision; a test pins it to Alembic's head
BUSY_TIMEOUT_MS = 30_000
MIGRATION_LOCK_KEY = 0x5348495059415244  # pg_advisory_lock's key: "SHIPYARD" in ASCII
MIGRATION_LOCK_TIMEOUT_S = 120

# A writer aborted for a conflict runs again, up to WRITE_ATTEMPTS times in all.
# 40001 serialization_failure, 40P01 deadlock_detected (PostgreSQL's SQLSTATEs).
CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})
WRITE_ATTEMPTS = 6
WRITE_BACKOFF_S = 0.01

T = TypeVar("T")

_upgraded: set[str] = set()  # URLs known to be at head in this process
_upgraded_lock = threading.Lock()


def _alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest migration's revision, as Alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
        # instead of failing when a read transaction tries to become a write one.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def json_text(value: Any) -> str:
    """A JSON column's text. Documents holding numpy arrays (the monitor's logged outputs, a
    busy path) go through orjson, arrays as they are; everything else through json.dumps,
    which keeps NaN (an input example's missing value) readable by json.loads."""
    if value is None:  # a prediction logged without its inputs: the commonest value here
        return "null"
    numpy = sys.modules.get("numpy")  # no array can exist before numpy is imported
    if (
        numpy is not None
        and isinstance(value, dict)
        and any(isinstance(v, numpy.ndarray) for v in value.values())
    ):
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return json.dumps(value)


class Database(Protocol):
    """A metadata database holding the registry's tables (and the monitor's)."""

    url: str
    dialect: str  # SQLAlchemy's name for its SQL ("sqlite", "postgresql"), for bulk statements

    def session(self) -> AbstractContextManager[Session]:
        """A session that commits when the block succeeds and rolls back when it raises;
        a failure of the database itself comes out as a StorageError."""
        ...

    def write(self, work: Callable[[Session], T]) -> T:
        """``work`` in a transaction of its own, run again from the start when the database
        aborts it for a conflict with another writer (a serialization failure, a deadlock,
        SQLite's busy lock); a StorageError when it still fails."""
        ...

    def current_revision(self) -> str | None: ...

    def upgrade(self) -> str:
        """Bring the schema to head, safely against other processes; the head revision."""
        ...

    def ensure_schema(self) -> None:
        """Migrate on first use in this process; later calls cost nothing."""
        ...

    def dispose(self) -> None: ...


def safe_url(url: str) -> str:
    """The URL as errors and logs may show it: the password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@", 1)[-1] if "@" in url else url


def _conflict(exc: OperationalError) -> bool:
    """Whether the database aborted the transaction for a conflict that a retry resolves."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in CONFLICT_SQLSTATES:
        return True
    return "database is locked" in str(exc.orig)  # SQLite, past its busy timeout


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's own words, on one line, without SQLAlchemy's "background" link."""
    original = getattr(exc, "orig", None)
    return " ".join(str(original if original is not None else exc).split())


class SqlDatabase:
    """A ``Database`` at any SQLAlchemy URL; owns the engine."""

    def __init__(
        self, url: str, lock_dir: Path, *, pool_size: int = 5, max_overflow: int = 10
    ) -> None:
        self.url = url
        self.lock_path = lock_dir / ".migrate.lock"
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        lock_dir.mkdir(parents=True, exist_ok=True)
        try:
            # A server database gets a sized pool whose connections are checked before use
            # (the server may have restarted); SQLite keeps SQLAlchemy's file defaults.
            pool: dict[str, Any] = (
                {}
                if make_url(url).get_backend_name() == "sqlite"
                else {"pool_size": pool_size, "max_overflow": max_overflow, "pool_pre_ping": True}
            )
            self.engine = create_engine(url, json_serializer=json_text, **pool)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise StorageError(
                f"cannot use the database URL {safe_url(url)!r} (SHIPYARD_DB_URL): {exc}"
            ) from None
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def write(self, work: Callable[[Session], T]) -> T:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self.session() as session:
                    return work(session)
            except StorageError as exc:
                cause = exc.__cause__
                conflict = isinstance(cause, OperationalError) and _conflict(cause)
                if attempt == WRITE_ATTEMPTS or not conflict:
                    raise
            # Backing off by a random share of a growing pause keeps two writers that
            # collided from colliding again in step.
            time.sleep(random.uniform(0, WRITE_BACKOFF_S * 2**attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise StorageError(
                f"the metadata database {safe_url(self.url)} failed: {_reason(exc)}"
            ) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def current_revision(self) -> str | None:
        """The revision recorded in the database (one row: the migrations are linear), by
        one query; None when it has none yet."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except ProgrammingError:  # no alembic_version table (PostgreSQL): a new database
            return None
        except OperationalError as exc:
            if "no such table" in str(exc.orig):  # SQLite's way of saying the same
                return None
            raise StorageError(
                f"cannot reach the metadata database {safe_url(self.url)}: {_reason(exc)}"
            ) from exc

    def upgrade(self) -> str:
        from alembic import command

        try:
            with self._migration_lock():
                if self.current_revision() != head_revision():
                    config = _alembic_config(self.url)
                    with self.engine.begin() as conn:
                        config.attributes["connection"] = conn
                        command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            raise StorageError(
                f"could not migrate the metadata database {safe_url(self.url)}: {_reason(exc)}"
            ) from exc
        with _upgraded_lock:
            _upgraded.add(self.url)
        return head_revision()

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """One migrating process at a time, against every process that opens this database."""
        if self.dialect != "postgresql":
            with FileLock(str(self.lock_path), timeout=MIGRATION_LOCK_TIMEOUT_S):
                yield
            return
        # A session-level advisory lock on a connection of its own, held while Alembic
        # migrates on another; lock_timeout bounds the wait like the file lock's timeout.
        with self.engine.connect() as holder:
            holder.execute(text(f"SET lock_timeout = '{MIGRATION_LOCK_TIMEOUT_S}s'"))
            holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            holder.commit()
            try:
                yield
            finally:
                holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                holder.commit()

    def ensure_schema(self) -> None:
        if self.url in _upgraded:
            return
        if self.current_revision() == SCHEMA_HEAD:
            with _upgraded_lock:
                _upgraded.add(self.url)
            return
        self.upgrade()

    def dispose(self) -> None:
        self.engine.dispose()
