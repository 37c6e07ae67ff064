"""The metadata database on a real PostgreSQL (Debian's server, started per test session by
tests/postgres_server.py): migrations under an advisory lock, concurrent registrations from
several processes, the connection pool from the settings, writers that conflict run again."""

from __future__ import annotations

import textwrap
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from helpers import release_together
from shipyard import Registry, Settings
from shipyard.registry.database import SCHEMA_HEAD
from test_database import MIGRATE_SCRIPT, TABLES

# Each worker under a home of its own, as on two hosts: no migration lock file in common.
MIGRATE_ON_ITS_OWN_HOME = MIGRATE_SCRIPT.replace(
    "home, go = Path(sys.argv[1]), Path(sys.argv[2])",
    "home, go = Path(sys.argv[1]) / (Path(sys.argv[3]).name + '-home'), Path(sys.argv[2])",
)
assert MIGRATE_ON_ITS_OWN_HOME != MIGRATE_SCRIPT


def test_first_use_migrates_a_postgres_database(tmp_path: Path, postgres_url: str) -> None:
    with Registry(Settings(home=tmp_path / "home", db_url=postgres_url)) as registry:
        assert registry.database.dialect == "postgresql"
        assert registry.database.current_revision() == SCHEMA_HEAD
        assert set(inspect(registry.database.engine).get_table_names()) >= TABLES
        assert registry.database.upgrade() == SCHEMA_HEAD  # again: nothing to do


def test_two_processes_migrate_a_new_postgres_database_once(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hosts (no shared folder for a file lock) open one new database at once: the
    advisory lock lets one migrate while the other waits, then uses it."""
    monkeypatch.setenv("SHIPYARD_DB_URL", postgres_url)
    reports = release_together(tmp_path, MIGRATE_ON_ITS_OWN_HOME, [str(tmp_path)], workers=2)
    created = sorted(t for r in reports for t in r["creates"])
    assert created == sorted(TABLES)  # every table created exactly once, by one of the two
    assert [r["models"] for r in reports] == [0, 0]


REGISTER_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import shipyard

    home, model, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    Path(sys.argv[4]).touch()  # ready
    registry = shipyard.Registry(shipyard.Settings(home=home))
    registry.list_models()  # migrated and connected before the start
    while not go.exists():
        time.sleep(0.005)
    version = shipyard.register(model, "shared", registry=registry)
    print(json.dumps({"version": version.version}))
    registry.close()
    """
)


def test_eight_processes_register_one_model_without_a_gap(
    tmp_path: Path, postgres_url: str, tiny_onnx_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_DB_URL", postgres_url)
    home = tmp_path / "home"
    reports = release_together(
        tmp_path, REGISTER_SCRIPT, [str(home), str(tiny_onnx_path)], workers=8
    )
    assert sorted(r["version"] for r in reports) == list(range(1, 9))
    with Registry(Settings(home=home, db_url=postgres_url)) as registry:
        assert [v.version for v in registry.list_versions("shared")] == list(range(1, 9))


def test_the_pool_is_sized_from_the_settings(tmp_path: Path, postgres_url: str) -> None:
    settings = Settings(home=tmp_path / "home", db_url=postgres_url, db_pool_size=3)
    with Registry(settings) as registry:
        pool = registry.database.engine.pool
        assert pool.size() == 3  # type: ignore[attr-defined]
        assert pool._pre_ping  # type: ignore[attr-defined]  # a restarted server is noticed


# Writers that conflict are run again ----------------------------------------------------


def _two_models(registry: Registry) -> tuple[int, int]:
    from shipyard.registry.schema import ModelRow
    from shipyard.registry.store import utcnow

    def create(session: Session) -> tuple[int, int]:
        rows = [ModelRow(name=n, created_at=utcnow(), created_by="test") for n in ("a", "b")]
        session.add_all(rows)
        session.flush()
        return rows[0].id, rows[1].id

    return registry.database.write(create)


def _lock(session: Session, model_id: int) -> None:
    session.execute(text("SELECT id FROM models WHERE id = :id FOR UPDATE"), {"id": model_id})


def test_a_writer_chosen_as_a_deadlock_victim_runs_again(tmp_path: Path, postgres_url: str) -> None:
    """Two writers lock two rows in opposite orders; PostgreSQL aborts one (40P01) and the
    database runs it again, so both complete."""
    with Registry(Settings(home=tmp_path / "home", db_url=postgres_url)) as registry:
        first_id, second_id = _two_models(registry)
        both_hold_one = threading.Barrier(2, timeout=30)
        runs: Counter[str] = Counter()

        def writer(name: str, order: tuple[int, int]) -> Callable[[Session], str]:
            def work(session: Session) -> str:
                runs[name] += 1
                session.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
                _lock(session, order[0])
                if runs[name] == 1:
                    both_hold_one.wait()
                _lock(session, order[1])
                return name

            return work

        with ThreadPoolExecutor(2) as pool:
            left = pool.submit(registry.database.write, writer("left", (first_id, second_id)))
            right = pool.submit(registry.database.write, writer("right", (second_id, first_id)))
            assert (left.result(60), right.result(60)) == ("left", "right")
        assert sorted(runs.values()) == [1, 2]  # exactly one was aborted and run again


def test_a_serialization_failure_runs_again(tmp_path: Path, postgres_url: str) -> None:
    """Two SERIALIZABLE writers read and rewrite one row at once: one is aborted (40001) at
    its commit and run again on the other's result, so no increment is lost."""
    with Registry(Settings(home=tmp_path / "home", db_url=postgres_url)) as registry:
        model_id, _ = _two_models(registry)
        both_read = threading.Barrier(2, timeout=30)
        runs: Counter[str] = Counter()

        def increment(name: str) -> Callable[[Session], None]:
            def work(session: Session) -> None:
                runs[name] += 1
                session.connection(execution_options={"isolation_level": "SERIALIZABLE"})
                current = session.execute(
                    text("SELECT description FROM models WHERE id = :id"), {"id": model_id}
                ).scalar()
                if runs[name] == 1:
                    both_read.wait()
                session.execute(
                    text("UPDATE models SET description = :d WHERE id = :id"),
                    {"d": str(int(current or 0) + 1), "id": model_id},
                )

            return work

        with ThreadPoolExecutor(2) as pool:
            done = [pool.submit(registry.database.write, increment(n)) for n in ("one", "two")]
            for future in done:
                future.result(60)
        with registry.database.session() as session:
            final = session.execute(
                text("SELECT description FROM models WHERE id = :id"), {"id": model_id}
            ).scalar()
        assert final == "2"
        assert sorted(runs.values()) == [1, 2]
