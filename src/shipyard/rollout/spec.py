"""What a rollout is asked to do: its strategy, steps, clocks and thresholds, validated once.

Defaults follow Flagger and Argo Rollouts: an analysis every 60 s, a progress deadline of
600 s, a rollback after 3 failed analyses; canary steps 5, 10, 25 and 50% before promotion.
Every duration may be set down to one second, for tests and demos.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from shipyard.errors import InvalidInputError


class Strategy(enum.StrEnum):
    CANARY = "canary"
    BLUE_GREEN = "blue-green"
    AB = "ab"
    SHADOW = "shadow"


DEFAULT_STEPS = (0.05, 0.10, 0.25, 0.50)
# A/B goal metrics: the share of labelled requests answered right, the mean absolute error
# of a regressor's labelled requests, or the mean latency.
GOALS = ("accuracy", "mae", "latency")


@dataclass(frozen=True)
class RolloutSpec:
    strategy: Strategy = Strategy.CANARY
    steps: tuple[float, ...] = DEFAULT_STEPS  # the candidate's weight at each canary step
    interval_s: float = 60.0  # one analysis per interval
    deadline_s: float = 600.0  # a step with no decision by then rolls back
    failure_threshold: int = 3  # failed analyses (in all) that roll back
    min_samples: int = 100  # requests per version before a check may decide
    split: float = 0.5  # A/B: the candidate's fixed share
    mirror: float = 1.0  # shadow and blue-green: the share of traffic mirrored
    sticky_header: str | None = None  # e.g. "x-user-id"
    max_error_ratio_increase: float = 0.01  # guardrail margins
    max_p99_ms: float | None = None  # an absolute SLO for the candidate's p99
    max_p99_increase: float = 0.2  # relative to the baseline's p99 (0.2: 20% slower) ...
    p99_slack_ms: float = 5.0  # ... or this much slower, whichever is more (ms are noise)
    min_agreement: float = 0.98  # shadow/mirrored answers agreeing with the baseline's
    min_cosine: float = 0.99  # ... an embedding's mean cosine to the baseline's
    max_relative_error: float = 0.05  # ... a regressor's mean error relative to the baseline's
    max_prediction_drift: float = 0.1  # the monitor's default distance for prediction drift
    # Off for a candidate meant to answer differently (a model retrained on a changed world),
    # which its labels judge instead of its likeness to the baseline.
    prediction_drift: bool = True
    max_accuracy_drop: float = 0.02  # the feedback guardrail's margin, once labels arrive
    goal: str | None = None  # A/B: one of GOALS
    min_effect: float = 0.01  # A/B: the smallest difference in the goal worth finding
    slice_feature: str | None = None  # break disagreement down by this feature's top values
    alias: str = "production"  # the alias a promotion moves
    promote_shadow: bool = False  # shadow: also move the alias once every check passes
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.steps and self.strategy is Strategy.CANARY:
            raise InvalidInputError("a canary needs at least one step")
        previous = 0.0
        for weight in self.steps:
            if not previous < weight <= 1.0:
                percents = ", ".join(f"{w * 100:g}" for w in self.steps)
                raise InvalidInputError(
                    f"canary steps must rise strictly within (0, 100] percent, got {percents}"
                )
            previous = weight
        if self.interval_s < 1.0:
            raise InvalidInputError(f"interval_s must be at least 1 second, got {self.interval_s}")
        if self.deadline_s < self.interval_s:
            raise InvalidInputError(
                f"deadline_s ({self.deadline_s}) must be at least interval_s ({self.interval_s})"
            )
        if self.failure_threshold < 1:
            raise InvalidInputError(
                f"failure_threshold must be at least 1, got {self.failure_threshold}"
            )
        if self.min_samples < 1:
            raise InvalidInputError(f"min_samples must be at least 1, got {self.min_samples}")
        for name in ("split", "mirror"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise InvalidInputError(f"{name} must lie in (0, 1], got {value}")
        if self.strategy is Strategy.AB and self.goal is None:
            raise InvalidInputError(
                f"an A/B rollout needs a goal metric, one of {', '.join(GOALS)}"
            )
        if self.goal is not None and self.goal not in GOALS:
            raise InvalidInputError(f"goal {self.goal!r} is not one of {', '.join(GOALS)}")
        for name in ("min_agreement", "min_cosine"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise InvalidInputError(f"{name} must lie in (0, 1], got {value}")
        for name in (
            "max_error_ratio_increase", "max_p99_increase", "max_relative_error",
            "max_prediction_drift", "max_accuracy_drop", "min_effect", "p99_slack_ms",
        ):  # fmt: skip
            value = getattr(self, name)
            if not value > 0:
                raise InvalidInputError(f"{name} must be positive, got {value}")
        if self.max_p99_ms is not None and not self.max_p99_ms > 0:
            raise InvalidInputError(f"max_p99_ms must be positive, got {self.max_p99_ms}")

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> RolloutSpec:
        """A spec from its stored JSON form (or a user's); unknown keys are refused."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(document) - known)
        if unknown:
            raise InvalidInputError(f"unknown rollout settings: {', '.join(unknown)}")
        values = dict(document)
        if "strategy" in values:
            try:
                values["strategy"] = Strategy(values["strategy"])
            except ValueError:
                names = ", ".join(s.value for s in Strategy)
                raise InvalidInputError(
                    f"strategy {values['strategy']!r} is not one of {names}"
                ) from None
        if "steps" in values:
            values["steps"] = tuple(float(weight) for weight in values["steps"])
        return cls(**values)

    def document(self) -> dict[str, Any]:
        """The JSON form stored with the rollout."""
        values = asdict(self)
        values["strategy"] = self.strategy.value
        values["steps"] = list(self.steps)
        return values
