"""Named leases in the metadata database, with fencing tokens.

With several server replicas on one database, exactly one may drive a given rollout: the one
holding its lease. A lease lasts ``ttl_s`` unless renewed; when it lapses another replica may
take it, and the token rises by one. A holder checks its token inside the transaction of
every write it makes on the lease's behalf (``check``), so a controller that was paused
past its lease (a long GC, a stopped VM) and then wakes cannot write over its successor:
its token no longer matches and the write is refused with LeaseLostError.

The row is read under the write lock of the transaction (BEGIN IMMEDIATE on SQLite, FOR
UPDATE elsewhere), so two replicas racing for a lapsed lease serialise and one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shipyard.errors import InvalidInputError, LeaseLostError
from shipyard.registry.database import Database
from shipyard.registry.schema import LeaseRow
from shipyard.registry.store import as_utc, utcnow


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    token: int
    expires_at: datetime


class LeaseStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def acquire(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        """Take the lease, or extend it when ``holder`` has it already; None while another
        holds it."""
        _check_ttl(ttl_s)
        now = utcnow()
        expires = now + timedelta(seconds=ttl_s)
        try:
            with self.database.session() as session:
                row = _locked(session, name)
                if row is None:
                    row = LeaseRow(name=name, holder=holder, token=1, expires_at=expires)
                    session.add(row)
                elif row.holder == holder and as_utc(row.expires_at) > now:
                    row.expires_at = expires
                elif as_utc(row.expires_at) <= now:
                    row.holder, row.token, row.expires_at = holder, row.token + 1, expires
                else:
                    return None
                session.flush()
                return _lease(row)
        except IntegrityError:  # another replica created the row first
            return None

    def renew(self, lease: Lease, ttl_s: float) -> Lease:
        """Extend a lease still held under its token; LeaseLostError once it is not."""
        _check_ttl(ttl_s)

        def extend(session: Session) -> Lease:
            row = self.check(session, lease)
            row.expires_at = utcnow() + timedelta(seconds=ttl_s)
            session.flush()
            return _lease(row)

        return self.database.write(extend)

    def release(self, lease: Lease) -> None:
        """Give the lease up at once, so another may take it without waiting it out."""
        with self.database.session() as session:
            row = _locked(session, lease.name)
            if row is not None and row.token == lease.token and row.holder == lease.holder:
                row.expires_at = utcnow()

    def current(self, name: str) -> Lease | None:
        """Who holds the lease now (None when nobody does)."""
        with self.database.session() as session:
            row = session.get(LeaseRow, name)
            if row is None or as_utc(row.expires_at) <= utcnow():
                return None
            return _lease(row)

    def check(self, session: Session, lease: Lease) -> LeaseRow:
        """Fence a write: inside the caller's transaction, refuse unless ``lease`` is still
        held under its token and has not lapsed."""
        row = _locked(session, lease.name)
        if row is None or row.token != lease.token or row.holder != lease.holder:
            holder = f"{row.holder} (token {row.token})" if row is not None else "nobody"
            raise LeaseLostError(
                f"lease {lease.name!r} (token {lease.token}) is lost: {holder} holds it now"
            )
        if as_utc(row.expires_at) <= utcnow():
            raise LeaseLostError(
                f"lease {lease.name!r} (token {lease.token}) lapsed at "
                f"{as_utc(row.expires_at).isoformat()}"
            )
        return row


def _locked(session: Session, name: str) -> LeaseRow | None:
    return session.scalars(select(LeaseRow).where(LeaseRow.name == name).with_for_update()).first()


def _lease(row: LeaseRow) -> Lease:
    return Lease(row.name, row.holder, row.token, as_utc(row.expires_at))


def _check_ttl(ttl_s: float) -> None:
    if not ttl_s > 0:
        raise InvalidInputError(f"a lease's ttl must be positive, got {ttl_s}")
