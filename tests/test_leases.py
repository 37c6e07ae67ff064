"""Leases on the real SQLite file: one holder at a time, fencing tokens, races between
replicas (each its own Registry and engine on one home)."""

from __future__ import annotations

import threading
import time

import pytest

from shipyard import Registry, Settings
from shipyard.errors import InvalidInputError, LeaseLostError
from shipyard.registry.leases import Lease

DATABASES = ("sqlite", "postgresql")  # each test on both (tests/conftest.py)

ROLLOUT = "rollout:fraud"


def _wait_past(lease: Lease) -> None:
    while time.time() <= lease.expires_at.timestamp():
        time.sleep(0.01)


def test_one_holder_at_a_time_and_the_holder_extends_its_own(registry: Registry) -> None:
    leases = registry.leases
    first = leases.acquire(ROLLOUT, "replica-a", ttl_s=30)
    assert first is not None
    assert (first.holder, first.token) == ("replica-a", 1)
    assert leases.acquire(ROLLOUT, "replica-b", ttl_s=30) is None
    again = leases.acquire(ROLLOUT, "replica-a", ttl_s=60)
    assert again is not None
    assert again.token == 1
    assert again.expires_at > first.expires_at
    assert leases.current(ROLLOUT) == again
    assert leases.current("rollout:other") is None


def test_a_lapsed_lease_passes_on_and_fences_its_old_holder(registry: Registry) -> None:
    leases = registry.leases
    old = leases.acquire(ROLLOUT, "replica-a", ttl_s=0.05)
    assert old is not None
    _wait_past(old)
    assert leases.current(ROLLOUT) is None
    new = leases.acquire(ROLLOUT, "replica-b", ttl_s=30)
    assert new is not None
    assert (new.holder, new.token) == ("replica-b", 2)
    with pytest.raises(LeaseLostError) as renewed:
        leases.renew(old, ttl_s=30)
    assert renewed.value.message == (
        f"lease {ROLLOUT!r} (token 1) is lost: replica-b (token 2) holds it now"
    )
    # a write fenced by the old token is refused inside its own transaction
    with pytest.raises(LeaseLostError), registry.database.session() as session:
        leases.check(session, old)
    with registry.database.session() as session:
        assert leases.check(session, new).token == 2
    assert leases.renew(new, ttl_s=60).token == 2


def test_a_lapsed_lease_refuses_writes_until_taken_again(registry: Registry) -> None:
    leases = registry.leases
    lease = leases.acquire(ROLLOUT, "replica-a", ttl_s=0.05)
    assert lease is not None
    _wait_past(lease)
    with pytest.raises(LeaseLostError) as caught, registry.database.session() as session:
        leases.check(session, lease)
    assert caught.value.message.startswith(f"lease {ROLLOUT!r} (token 1) lapsed at ")
    retaken = leases.acquire(ROLLOUT, "replica-a", ttl_s=30)
    assert retaken is not None
    assert retaken.token == 2  # its own, but a new term: writes of the old one stay fenced


def test_a_released_lease_is_free_at_once(registry: Registry) -> None:
    leases = registry.leases
    lease = leases.acquire(ROLLOUT, "replica-a", ttl_s=30)
    assert lease is not None
    leases.release(lease)
    taken = leases.acquire(ROLLOUT, "replica-b", ttl_s=30)
    assert taken is not None
    assert taken.token == 2
    leases.release(lease)  # a stale release changes nothing
    assert leases.current(ROLLOUT) == taken


def test_replicas_racing_for_one_lease_elect_exactly_one(settings: Settings) -> None:
    replicas = [Registry(settings) for _ in range(6)]
    start = threading.Barrier(len(replicas))
    won: list[Lease] = []
    errors: list[BaseException] = []

    def race(index: int, registry: Registry) -> None:
        try:
            start.wait()
            lease = registry.leases.acquire(ROLLOUT, f"replica-{index}", ttl_s=30)
            if lease is not None:
                won.append(lease)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=race, args=pair) for pair in enumerate(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for registry in replicas:
        registry.close()
    assert errors == []
    assert len(won) == 1
    assert won[0].token == 1


@pytest.mark.parametrize("ttl", [0, -1.0])
def test_a_lease_needs_a_positive_ttl(registry: Registry, ttl: float) -> None:
    with pytest.raises(InvalidInputError) as caught:
        registry.leases.acquire(ROLLOUT, "replica-a", ttl_s=ttl)
    assert caught.value.message == f"a lease's ttl must be positive, got {ttl}"
