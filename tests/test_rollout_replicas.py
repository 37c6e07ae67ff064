"""Rollouts across ``shipyard serve`` processes on one database: a controller killed with
SIGKILL mid-rollout is succeeded by a new process that carries on from the row's step, and of
two replicas exactly one drives a rollout while both route by its weight; the one without the
lease cannot write. Each on SQLite and on PostgreSQL (the replicas given SHIPYARD_DB_URL)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from replica_helpers import POLL_S, WAIT_S, Load, poll, serve, serve_environment, stop_all
from rollout_models import register_classifier
from server_helpers import ServeProcess, client
from shipyard import Registry, Settings
from shipyard.errors import LeaseLostError
from shipyard.registry.leases import Lease
from shipyard.registry.rollouts import Change, Rollout
from shipyard.registry.store import utcnow
from shipyard.rollout import service
from shipyard.rollout.controller import lease_name
from shipyard.rollout.states import State, move

DATABASES = ("sqlite", "postgresql")  # each test on both (tests/conftest.py)

CANARY = {
    "interval_s": 1, "deadline_s": 60, "min_samples": 30, "failure_threshold": 3,
    "steps": [0.2, 0.4, 0.6],
}  # fmt: skip
ONE_STEP = {
    "interval_s": 4, "deadline_s": 60, "min_samples": 30, "failure_threshold": 3,
    "steps": [0.3],
}  # fmt: skip


def database_of(settings: Settings) -> dict[str, str]:
    """The replicas' variable for the test's database (none for SQLite under the home)."""
    return {"SHIPYARD_DB_URL": settings.db_url} if settings.db_url else {}


def finished(registry: Registry, rollout_id: int) -> Rollout | None:
    rollout = registry.rollouts.get(rollout_id)
    return rollout if rollout.finished_at is not None else None


def rollout_events(registry: Registry, rollout_id: int) -> list[Any]:
    """The rollout's events, oldest first."""
    return [
        e
        for e in reversed(registry.events("clf", limit=1000))
        if e.kind.startswith("rollout.") and e.details.get("rollout") == rollout_id
    ]


# kill -9 of the controller mid-rollout -----------------------------------------------------


def test_a_rollout_survives_its_controller_killed_and_goes_on_from_its_step(
    tmp_path: Path, settings: Settings
) -> None:
    home = settings.home
    env = serve_environment(SHIPYARD_ROLLOUT_LEASE_S="3", **database_of(settings))
    with Registry(settings) as registry:
        register_classifier(registry, tmp_path / "src", "good", alias="production")
        register_classifier(registry, tmp_path / "src", "good")
        first: ServeProcess | None = serve(home, tmp_path, env)
        second: ServeProcess | None = None
        load: Load | None = None
        after: Load | None = None
        try:
            assert first is not None
            first.wait_ready(WAIT_S)
            load = Load(first.url).start()
            rollout = service.start(registry, "clf", 2, CANARY)

            def at_first_step() -> Rollout | None:
                row = registry.rollouts.get(rollout.id)
                assert row.finished_at is None, (row.state, row.analysis)
                ready = row.state == "progressing" and row.step >= 1 and row.weight == 0.2
                return row if ready else None

            poll(at_first_step, "the rollout to progress at 20%")
            os.kill(first.pid, signal.SIGKILL)
            first.process.wait(30)
            load.finish()

            at_kill = registry.rollouts.get(rollout.id)
            assert at_kill.state == "progressing", at_kill  # the kill came mid-step
            assert at_kill.finished_at is None
            before = rollout_events(registry, rollout.id)
            last_before = before[-1].id
            tokens_before = {e.details["lease_token"] for e in before if "lease_token" in e.details}
            assert tokens_before
            time.sleep(1.0)
            assert registry.rollouts.get(rollout.id) == at_kill  # nobody drives it now

            second = serve(home, tmp_path, env)  # a new PID: a new holder name
            second.wait_ready(WAIT_S)
            after = Load(second.url, seed=8).start()
            done = poll(lambda: finished(registry, rollout.id), "the rollout to finish")
            after.finish()
        finally:
            stop_all(load, after, first, second)

        events = rollout_events(registry, rollout.id)
        assert done.state == "succeeded", (done.analysis, [(e.kind, e.reason) for e in events])
        assert registry.get_version("clf@production").version == 2

        since_kill = [e for e in events if e.id > last_before]
        kinds = [e.kind for e in since_kill]
        assert "rollout.pending" not in kinds, kinds  # not started again ...
        assert "rollout.validating" not in kinds, kinds  # ... nor validated again
        assert kinds[-2:] == ["rollout.promoting", "rollout.succeeded"], kinds
        moved = next(e for e in since_kill if e.kind == "rollout.progressing")
        assert moved.details["from"] == {
            "state": "progressing",
            "weight": at_kill.weight,
            "step": at_kill.step,
        }  # carried on from the step it was killed in, not from the first
        progressing = [e.details["weight"] for e in events if e.kind == "rollout.progressing"]
        steps = [w for i, w in enumerate(progressing) if i == 0 or w != progressing[i - 1]]
        assert steps == [0.2, 0.4, 0.6]
        tokens_after = {e.details["lease_token"] for e in since_kill}
        assert min(tokens_after) > max(tokens_before), (tokens_before, tokens_after)

    assert after.failures() == {}  # the new server: not one request failed
    assert after.statuses[("2", 200)] > 0
    assert load.wrong == []
    assert after.wrong == []


# two replicas on one database ----------------------------------------------------------------


def test_two_replicas_one_controller_one_weight_and_the_loser_cannot_write(
    tmp_path: Path, settings: Settings
) -> None:
    home = settings.home
    names = ("replica-a", "replica-b")
    with Registry(settings) as registry:
        register_classifier(registry, tmp_path / "src", "good", alias="production")
        register_classifier(registry, tmp_path / "src", "good")
        servers = [
            serve(home, tmp_path, serve_environment(replica=name, **database_of(settings)))
            for name in names
        ]
        loads: list[Load] = []
        seen: list[tuple[str, int]] = []  # (holder, token) of every reading of the lease
        watching = threading.Event()
        watcher: threading.Thread | None = None
        try:
            for server in servers:
                server.wait_ready(WAIT_S)
            loads = [Load(s.url, seed=i).start() for i, s in enumerate(servers)]
            rollout = service.start(registry, "clf", 2, ONE_STEP)
            name = lease_name(rollout.id)

            def watch() -> None:
                while not watching.is_set():
                    lease = registry.leases.current(name)
                    if lease is not None:
                        seen.append((lease.holder, lease.token))
                    watching.wait(POLL_S)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()

            def split(server: ServeProcess) -> Any:
                with client(server.url) as http:
                    (deployment,) = http.get("/api/deployments").json()
                return deployment["split"]

            def both_split() -> list[Any] | None:
                row = registry.rollouts.get(rollout.id)
                assert row.finished_at is None, "the step ended before both replicas were seen"
                splits = [split(s) for s in servers]
                return splits if all(s is not None for s in splits) else None

            splits = poll(both_split, "both replicas to route to the candidate")
            for shown in splits:
                assert {k: shown[k] for k in ("candidate", "weight")} == {
                    "candidate": 2,
                    "weight": 0.3,
                }

            # the replica without the lease can neither take it nor write under it
            lease = registry.leases.current(name)
            assert lease is not None
            assert lease.holder in names
            loser = next(n for n in names if n != lease.holder)
            assert registry.leases.acquire(name, loser, 15) is None
            live = registry.rollouts.get(rollout.id)
            assert live.state == "progressing"
            forged = Lease(name, loser, lease.token, utcnow() + timedelta(seconds=60))
            with pytest.raises(LeaseLostError) as lost:
                move(registry.rollouts, forged, live, State.PAUSED, "the loser pauses it")
            assert lost.value.message == (
                f"lease {name!r} (token {lease.token}) is lost: "
                f"{lease.holder} (token {lease.token}) holds it now"
            )
            stale = Lease(name, lease.holder, lease.token - 1, lease.expires_at)
            with pytest.raises(LeaseLostError, match="is lost"):
                move(registry.rollouts, stale, live, State.ROLLING_BACK, "an old token")
            assert registry.rollouts.get(rollout.id).state != "paused"

            done = poll(lambda: finished(registry, rollout.id), "the rollout to finish")
        finally:
            watching.set()
            if watcher is not None:
                watcher.join(30)
            stop_all(*loads, *servers)

        events = rollout_events(registry, rollout.id)
        assert done.state == "succeeded", (done.analysis, [(e.kind, e.reason) for e in events])
        assert registry.get_version("clf@production").version == 2
        assert [e.kind for e in events] == [
            "rollout.pending", "rollout.validating", "rollout.progressing",
            "rollout.promoting", "rollout.succeeded",
        ]  # fmt: skip
        # one controller: one holder, one token, in every reading and on every event
        assert {holder for holder, _ in seen} == {lease.holder}, Counter(seen)
        assert {token for _, token in seen} == {lease.token}
        assert {e.details["lease_token"] for e in events[1:]} == {lease.token}
        # both replicas' evidence of the step went into its analysis
        step = next(e.details["step"] for e in events if e.kind == "rollout.progressing")
        assert len(registry.rollouts.evidence(rollout.id, step)) == 2

        # the holder released the lease when the rollout ended: its old lease has lapsed ...
        mine = Lease(name, lease.holder, lease.token, lease.expires_at)
        gone = Change(State.PAUSED.value)
        with pytest.raises(LeaseLostError, match=r"\(token \d+\) lapsed at"):
            registry.rollouts.transition(mine, rollout.id, "succeeded", gone, "late", {}, None)
        # ... and once the other replica has taken it, the token has risen past it
        successor = registry.leases.acquire(name, loser, 15)
        assert successor is not None
        assert successor.token == lease.token + 1
        with pytest.raises(LeaseLostError) as lost:
            registry.rollouts.transition(mine, rollout.id, "succeeded", gone, "late", {}, None)
        assert lost.value.message == (
            f"lease {name!r} (token {lease.token}) is lost: "
            f"{loser} (token {successor.token}) holds it now"
        )
        registry.leases.release(successor)
        assert registry.rollouts.get(rollout.id) == done

    for load in loads:
        assert load.failures() == {}, load.statuses
        assert load.statuses[("2", 200)] > 0  # each replica routed some requests to v2
        assert load.wrong == []
