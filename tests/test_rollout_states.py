"""A rollout's state machine persisted in the real SQLite file: allowed moves only, fenced by
the controller's lease, one unfinished rollout per model, resumed by a new process."""

from __future__ import annotations

import pytest

from shipyard import Registry, Settings
from shipyard.errors import ConflictError, LeaseLostError, NotFoundError
from shipyard.registry.leases import Lease
from shipyard.registry.rollouts import Rollout
from shipyard.rollout.states import FINAL, State, allowed, move

DATABASES = ("sqlite", "postgresql")  # each test on both (tests/conftest.py)

SPEC = {"steps": [0.05, 0.1, 0.25, 0.5], "interval_s": 60, "failure_threshold": 3}


def _start(registry: Registry) -> tuple[Rollout, Lease]:
    rollout = registry.rollouts.create(
        "fraud", 1, 2, "canary", State.PENDING.value, SPEC, actor="tester"
    )
    lease = registry.leases.acquire(f"rollout:{rollout.id}", "replica-a", ttl_s=30)
    assert lease is not None
    return rollout, lease


def test_a_canary_walks_its_steps_to_success_and_every_move_is_an_event(
    registry: Registry,
) -> None:
    rollout, lease = _start(registry)
    assert (rollout.state, rollout.weight, rollout.revision) == ("pending", 0.0, 1)
    rollout = move(registry.rollouts, lease, rollout, State.VALIDATING, "pre-flight")
    rollout = move(
        registry.rollouts, lease, rollout, State.PROGRESSING, "pre-flight passed",
        {"signature": "compatible"}, weight=0.05, step=1,
    )  # fmt: skip
    for step, weight in enumerate([0.1, 0.25, 0.5], start=2):
        evidence = {"error_ratio": {"outcome": "pass", "estimate": -0.001}}
        rollout = move(
            registry.rollouts, lease, rollout, State.PROGRESSING, "analysis passed", evidence,
            weight=weight, step=step,
        )  # fmt: skip
    rollout = move(registry.rollouts, lease, rollout, State.PROMOTING, "all steps passed")
    rollout = move(registry.rollouts, lease, rollout, State.SUCCEEDED, "alias moved", weight=1.0)
    assert (rollout.state, rollout.weight, rollout.step, rollout.revision) == (
        "succeeded", 1.0, 4, 8,
    )  # fmt: skip
    assert rollout.finished_at is not None
    events = [e for e in reversed(registry.events("fraud")) if e.kind.startswith("rollout.")]
    assert [e.kind for e in events] == [
        "rollout.pending", "rollout.validating", "rollout.progressing", "rollout.progressing",
        "rollout.progressing", "rollout.progressing", "rollout.promoting", "rollout.succeeded",
    ]  # fmt: skip
    third = events[3].details
    assert third["from"] == {"state": "progressing", "weight": 0.05, "step": 1}
    assert third["weight"] == 0.1
    assert third["evidence"] == {"error_ratio": {"outcome": "pass", "estimate": -0.001}}
    assert third["lease_token"] == lease.token
    assert (events[0].from_version, events[0].to_version, events[0].actor) == (1, 2, "tester")


def test_moves_the_machine_does_not_allow_are_refused(registry: Registry) -> None:
    rollout, lease = _start(registry)
    with pytest.raises(ConflictError) as caught:
        move(registry.rollouts, lease, rollout, State.SUCCEEDED, "skipping ahead")
    assert caught.value.message == f"rollout {rollout.id} cannot go from pending to succeeded"
    assert registry.rollouts.get(rollout.id).state == "pending"  # nothing written
    for final in FINAL:
        assert not allowed(final, State.FAILED)
        assert not any(allowed(final, target) for target in State)
    assert allowed(State.PAUSED, State.FAILED)


def test_a_controller_that_lost_its_lease_cannot_move_the_rollout(registry: Registry) -> None:
    rollout, lease = _start(registry)
    registry.leases.release(lease)
    successor = registry.leases.acquire(lease.name, "replica-b", ttl_s=30)
    assert successor is not None
    with pytest.raises(LeaseLostError):
        move(registry.rollouts, lease, rollout, State.VALIDATING, "the old controller woke up")
    assert registry.rollouts.get(rollout.id).revision == 1
    moved = move(registry.rollouts, successor, rollout, State.VALIDATING, "the new controller")
    assert moved.revision == 2


def test_a_stale_read_cannot_move_the_rollout_twice(registry: Registry) -> None:
    rollout, lease = _start(registry)
    move(registry.rollouts, lease, rollout, State.VALIDATING, "first")
    with pytest.raises(ConflictError) as caught:
        move(registry.rollouts, lease, rollout, State.VALIDATING, "again, from the old read")
    assert caught.value.message == (
        f"rollout {rollout.id} is validating, not pending: another writer moved it"
    )


def test_one_unfinished_rollout_per_model(registry: Registry) -> None:
    rollout, lease = _start(registry)
    with pytest.raises(ConflictError) as caught:
        registry.rollouts.create("fraud", 1, 3, "canary", "pending", SPEC, actor=None)
    assert caught.value.message == (
        f"fraud already has rollout {rollout.id} (pending) of version 2; "
        "abort it or let it finish first"
    )
    registry.rollouts.create("other", 1, 2, "shadow", "pending", {}, actor=None)  # another model
    move(registry.rollouts, lease, rollout, State.ROLLING_BACK, "aborted")
    assert [r.id for r in registry.rollouts.active("fraud")] == [rollout.id]
    done = move(
        registry.rollouts, lease, registry.rollouts.get(rollout.id), State.ROLLED_BACK, "done",
        weight=0.0,
    )  # fmt: skip
    assert done.finished_at is not None
    assert registry.rollouts.active("fraud") == []
    again = registry.rollouts.create("fraud", 1, 3, "canary", "pending", SPEC, actor=None)
    assert [r.id for r in registry.rollouts.history("fraud")] == [rollout.id, again.id]


def test_a_new_process_resumes_from_the_row(settings: Settings) -> None:
    with Registry(settings) as first:
        rollout, lease = _start(first)
        move(first.rollouts, lease, rollout, State.VALIDATING, "pre-flight")
        move(
            first.rollouts, lease, first.rollouts.get(rollout.id), State.PROGRESSING, "step 1",
            weight=0.05, step=1,
        )  # fmt: skip
    with Registry(settings) as second:  # the server restarted (the row is all there is)
        (resumed,) = second.rollouts.active()
        assert (resumed.id, resumed.state, resumed.weight, resumed.step) == (
            rollout.id, "progressing", 0.05, 1,
        )  # fmt: skip
        assert resumed.spec == SPEC
        assert second.leases.acquire(lease.name, "replica-b", ttl_s=30) is None  # still held


def test_an_unknown_rollout_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError) as caught:
        registry.rollouts.get(99)
    assert caught.value.message == "rollout 99 does not exist"
