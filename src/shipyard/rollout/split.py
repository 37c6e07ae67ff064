"""Which version answers a request while a rollout runs: weighted, or sticky by a key.

A request with a sticky key (say the ``x-user-id`` header) falls into one of BUCKETS buckets
by a hash of the key and the rollout's salt; the candidate takes the buckets below its weight.
The buckets are monotone: a user in the candidate at 5% is still in it at 10%, 25% and 50%,
and a new rollout (a new salt) draws its canary from other users. A request without a key is
drawn at random with the same weight. The hash is BLAKE2b, the same on every replica and
every platform, so replicas reading one routing table agree on every user.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from shipyard.errors import InvalidInputError

BUCKETS = 10_000  # a weight resolves to 0.01%


@dataclass(frozen=True, slots=True)
class Split:
    """The traffic split of one model: the share its candidate takes, and how it is drawn."""

    baseline: int  # version numbers
    candidate: int
    weight: float  # the candidate's share, 0..1
    salt: str  # the rollout's own, so that each rollout draws its canary anew
    sticky_header: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise InvalidInputError(f"a split's weight must lie in [0, 1], got {self.weight}")
        if self.baseline == self.candidate:
            raise InvalidInputError(
                f"the candidate and the baseline are both version {self.baseline}"
            )

    @property
    def threshold(self) -> int:
        """The buckets below this one go to the candidate."""
        return round(self.weight * BUCKETS)

    def choose(self, key: bytes | None, draw: random.Random | None = None) -> int:
        """The version that answers a request with this sticky key (None: drawn at random)."""
        threshold = self.threshold
        if threshold <= 0:
            return self.baseline
        if threshold >= BUCKETS:
            return self.candidate
        if key is None:
            value = (draw or random).random()
            return self.candidate if value * BUCKETS < threshold else self.baseline
        return self.candidate if bucket(key, self.salt) < threshold else self.baseline


def bucket(key: bytes, salt: str) -> int:
    """The key's bucket in [0, BUCKETS): uniform, and the same on every replica."""
    digest = hashlib.blake2b(key, digest_size=8, key=salt.encode()[:64]).digest()
    return int.from_bytes(digest, "big") % BUCKETS
