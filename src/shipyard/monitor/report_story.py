"""What the monitoring report tells of a model's life, read through the registry.

One ``read_story`` call gathers it: every version with its lineage (the run it came from,
the version it was derived from), the audit log oldest first (registrations, alias moves,
loads, rollout moves), each rollout with its steps (weight, clock, the requests each
version served in the step, summed over every replica's evidence) and every decision its
controller wrote with the figures that decided it, and each version's stored evaluations
(drift and live performance over time). Nothing here renders: the ``report_*`` modules
draw it.

The rollout documents are read as the JSON the rollout package writes (its events' details,
its analyses and evidence); the monitor does not import the rollout package, which builds
on the monitor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shipyard.registry import Event, ModelVersion, Registry
from shipyard.registry.rollouts import Rollout

# The audit log is read whole up to this many events; an older tail is left out, and the
# report says so, rather than a report on a busy model taking minutes.
EVENT_LIMIT = 20_000
# Evaluations kept per version for the charts: more points than a chart has pixels is
# reading for nothing, so a long history is thinned evenly (first and last always kept).
POINTS_PER_SERIES = 600


@dataclass(frozen=True)
class CheckFigures:
    """One check of one decision, as the controller recorded it."""

    name: str
    outcome: str
    estimate: float | None
    low: float | None
    high: float | None
    p_value: float | None
    n_candidate: int | None
    n_baseline: int | None
    reason: str


@dataclass(frozen=True)
class Decision:
    """An analysis of a rollout step (or the pre-flight) and what the rollout did after it."""

    at: datetime
    step: int | None
    weight: float | None  # the candidate's weight while the step was judged
    move: str  # the state the rollout went to; "held" for an analysis that moved nothing
    next: str | None  # advance, hold, pause or roll_back (an analysis), None (a pre-flight)
    reason: str
    checks: list[CheckFigures]
    requests: dict[str, int] = field(default_factory=dict)  # per version, in the step


@dataclass(frozen=True)
class Step:
    number: int
    weight: float
    started_at: datetime
    ended_at: datetime | None
    requests: dict[str, int]  # "baseline" / "candidate": requests seen in the step
    errors: dict[str, int]
    mirrored: int  # requests answered by both versions and compared


@dataclass(frozen=True)
class RolloutStory:
    rollout: Rollout
    moves: list[Event]  # its rollout.* events, oldest first
    steps: list[Step]
    decisions: list[Decision]


@dataclass(frozen=True)
class HealthPoint:
    """One stored evaluation of a version, reduced to what the charts draw."""

    at: datetime
    rows: int
    drifted_share: float | None
    prediction_drift: float | None
    performance: dict[str, float]


@dataclass(frozen=True)
class Story:
    model: str
    versions: list[ModelVersion]
    events: list[Event]  # oldest first
    rollouts: list[RolloutStory]
    health: dict[int, list[HealthPoint]]  # version number -> its evaluations, oldest first
    read_at: datetime
    events_cut: bool = False  # the log is longer than EVENT_LIMIT: its oldest part is missing


def read_story(registry: Registry, model: str, now: datetime) -> Story:
    versions = registry.list_versions(model)
    newest_first = registry.events(model, limit=EVENT_LIMIT)
    events = list(reversed(newest_first))
    rollouts = [
        _rollout_story(registry, rollout, events) for rollout in registry.rollouts.history(model)
    ]
    health = {
        version.version: _thin(
            [_health_point(at, result) for at, result in registry.monitoring.evaluations(version)]
        )
        for version in versions
    }
    return Story(model, versions, events, rollouts, health, now, len(newest_first) >= EVENT_LIMIT)


# Rollouts -----------------------------------------------------------------------------------


def _rollout_story(registry: Registry, rollout: Rollout, events: list[Event]) -> RolloutStory:
    moves = [
        e
        for e in events
        if e.kind.startswith("rollout.") and e.details.get("rollout") == rollout.id
    ]
    decisions = [d for d in (_decision(e) for e in moves) if d is not None]
    recorded = {
        str(e.details["evidence"].get("at"))
        for e in moves
        if isinstance(e.details.get("evidence"), dict)
    }
    latest = rollout.analysis
    if latest and str(latest.get("at")) not in recorded:
        # an analysis that neither moved nor failed is kept only as the row's latest one
        held = _analysis_decision(latest, "held", _time(latest.get("at")) or rollout.updated_at)
        if held is not None:
            decisions.append(held)
    decisions.sort(key=lambda d: d.at)
    return RolloutStory(rollout, moves, _steps(registry, rollout, moves), decisions)


def _decision(event: Event) -> Decision | None:
    evidence = event.details.get("evidence")
    if not isinstance(evidence, dict) or not evidence:
        return None
    move = event.kind.removeprefix("rollout.")
    if isinstance(evidence.get("checks"), dict):  # an analysis of a step
        # placed when the move was written, on the registry's clock like every other event
        return _analysis_decision(evidence, move, event.at)
    # a pre-flight (its offline check) or any other move that names the checks it rests on
    checks = [
        _check(name, doc)
        for name, doc in evidence.items()
        if isinstance(doc, dict) and "outcome" in doc
    ]
    if not checks:
        return None
    before = event.details.get("from") or {}
    return Decision(
        at=event.at,
        step=_int(before.get("step")),
        weight=_float(before.get("weight")),
        move=move,
        next=None,
        reason=event.reason or "",
        checks=checks,
    )


def _analysis_decision(analysis: dict[str, Any], move: str, at: datetime) -> Decision | None:
    checks = analysis.get("checks")
    if not isinstance(checks, dict):
        return None
    return Decision(
        at=at,
        step=_int(analysis.get("step")),
        weight=_float(analysis.get("weight")),
        move=move,
        next=str(analysis["next"]) if analysis.get("next") is not None else None,
        reason=str(analysis.get("reason") or ""),
        checks=[_check(name, doc) for name, doc in checks.items() if isinstance(doc, dict)],
        requests={
            str(k): int(v)
            for k, v in (analysis.get("requests") or {}).items()
            if _int(v) is not None
        },
    )


def _check(name: str, doc: dict[str, Any]) -> CheckFigures:
    return CheckFigures(
        name=str(name),
        outcome=str(doc.get("outcome", "")),
        estimate=_float(doc.get("estimate")),
        low=_float(doc.get("low")),
        high=_float(doc.get("high")),
        p_value=_float(doc.get("p_value")),
        n_candidate=_int(doc.get("n_candidate")),
        n_baseline=_int(doc.get("n_baseline")),
        reason=str(doc.get("reason", "")),
    )


def _steps(registry: Registry, rollout: Rollout, moves: list[Event]) -> list[Step]:
    """Each step the rollout took: when it began (the move into it) and ended (the move out
    of it, or the rollout's end), its weight, and what the replicas saw during it."""
    starts: list[tuple[int, float, datetime]] = []
    for event in moves:
        step, weight = _int(event.details.get("step")), _float(event.details.get("weight"))
        if step is None or weight is None or step == 0:
            continue
        if not starts or starts[-1][0] != step:
            starts.append((step, weight, event.at))
    steps = []
    for index, (number, weight, started) in enumerate(starts):
        ended = starts[index + 1][2] if index + 1 < len(starts) else rollout.finished_at
        requests = {"baseline": 0, "candidate": 0}
        errors = {"baseline": 0, "candidate": 0}
        mirrored = 0
        for document in registry.rollouts.evidence(rollout.id, number):
            for side in requests:
                seen = document.get(side) or {}
                requests[side] += _int(seen.get("requests")) or 0
                errors[side] += _int(seen.get("errors")) or 0
            mirrored += _int(((document.get("paired") or {}).get("overall") or {}).get("n")) or 0
        steps.append(Step(number, weight, started, ended, requests, errors, mirrored))
    return steps


# Health over time ---------------------------------------------------------------------------


def _health_point(at: datetime, result: dict[str, Any]) -> HealthPoint:
    drift = result.get("drift") or {}
    performance = {
        str(k): float(v)
        for k, v in (result.get("performance") or {}).items()
        if k != "rows" and _float(v) is not None
    }
    return HealthPoint(
        at=at,
        rows=_int(result.get("rows")) or 0,
        drifted_share=_float(drift.get("drifted_share")),
        prediction_drift=_float(drift.get("prediction_drift")),
        performance=performance,
    )


def _thin(points: list[HealthPoint]) -> list[HealthPoint]:
    if len(points) <= POINTS_PER_SERIES:
        return points
    stride = (len(points) - 1) / (POINTS_PER_SERIES - 1)
    return [points[round(i * stride)] for i in range(POINTS_PER_SERIES)]


# Reading JSON that other code wrote: a figure is a finite number or nothing ---------------------


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) else None


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value is not None else None
    except ValueError:
        return None
