"""The rollout's traffic split: sticky users stay in the canary as it grows, shares match."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from shipyard.errors import InvalidInputError
from shipyard.rollout.split import BUCKETS, Split, bucket

USERS = [f"user-{i}".encode() for i in range(20_000)]


def _in_candidate(split: Split) -> set[bytes]:
    return {user for user in USERS if split.choose(user) == split.candidate}


def test_a_user_in_the_canary_stays_in_it_as_the_weight_grows() -> None:
    steps = [0.05, 0.10, 0.25, 0.50, 1.0]
    members = [_in_candidate(Split(1, 2, weight, salt="rollout-7")) for weight in steps]
    for smaller, larger in itertools.pairwise(members):
        assert smaller < larger  # strictly: each step adds users and drops none
    for weight, chosen in zip(steps, members, strict=True):
        tolerance = 4 * math.sqrt(weight * (1 - weight) / len(USERS)) + 1e-9
        assert abs(len(chosen) / len(USERS) - weight) <= tolerance


def test_every_replica_agrees_and_a_new_rollout_draws_other_users() -> None:
    first = Split(1, 2, 0.25, salt="rollout-7")
    again = Split(1, 2, 0.25, salt="rollout-7")  # another replica reading the same table
    other = Split(1, 2, 0.25, salt="rollout-8")
    assert _in_candidate(first) == _in_candidate(again)
    overlap = len(_in_candidate(first) & _in_candidate(other)) / len(USERS)
    assert abs(overlap - 0.25 * 0.25) < 0.02  # independent draws, not the same users
    # the buckets are a fixed function of key and salt, the same on every platform
    assert bucket(b"user-42", "rollout-7") == bucket(b"user-42", "rollout-7")
    assert bucket(b"user-42", "rollout-7") == 1791
    assert all(0 <= bucket(user, "s") < BUCKETS for user in USERS[:1000])


def test_requests_without_a_key_are_drawn_at_the_weight() -> None:
    split = Split(3, 4, 0.1, salt="s")
    draw = random.Random(1)
    served = [split.choose(None, draw) for _ in range(20_000)]
    share = served.count(4) / len(served)
    assert abs(share - 0.1) <= 4 * math.sqrt(0.1 * 0.9 / len(served))
    assert set(served) == {3, 4}


def test_the_ends_of_the_range_send_everything_one_way() -> None:
    assert {Split(1, 2, 0.0, salt="s").choose(user) for user in USERS[:500]} == {1}
    assert {Split(1, 2, 1.0, salt="s").choose(user) for user in USERS[:500]} == {2}
    assert {Split(1, 2, 0.0, salt="s").choose(None) for _ in range(500)} == {1}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((1, 2, 1.5), "a split's weight must lie in [0, 1], got 1.5"),
        ((1, 2, -0.1), "a split's weight must lie in [0, 1], got -0.1"),
        ((2, 2, 0.5), "the candidate and the baseline are both version 2"),
    ],
)
def test_bad_splits_are_refused(arguments: tuple[int, int, float], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Split(*arguments, salt="s")
    assert caught.value.message == message
