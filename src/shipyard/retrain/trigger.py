"""When a retrain starts by itself: an alert on a model's evaluation, and a policy that keeps
it from looping — a cool-down after each retrain, a budget of retrains in any 24 hours, and
one at a time per model.

The cool-down and the budget are counted from the model's ``retrain.started`` events, so they
hold across restarts and across replicas sharing the database; one at a time is the retrain
lease. A skipped alert is recorded once per cool-down, not at every evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shipyard.monitor.evaluation import Evaluation
from shipyard.registry import Registry
from shipyard.retrain.service import lease_name
from shipyard.settings import RetrainSettings

DAY = timedelta(hours=24)


@dataclass(frozen=True)
class Alert:
    model: str
    version: int
    kind: str  # drift or performance
    reason: str


def alert_of(evaluation: Evaluation, options: RetrainSettings) -> Alert | None:
    """The alert this evaluation raises, if any, among those the trigger listens to."""
    version = evaluation.version
    drift = evaluation.drift
    if "drift" in options.on and drift is not None and drift.dataset_drift:
        return Alert(
            version.name,
            version.version,
            "drift",
            f"{drift.drifted_share:.0%} of the features of {version.ref} drifted",
        )
    performance = evaluation.performance
    if "performance" not in options.on or performance.get("rows", 0) < options.min_labelled_rows:
        return None
    registered = version.metrics
    if "accuracy" in performance and isinstance(registered.get("accuracy"), int | float):
        live, then = float(performance["accuracy"]), float(registered["accuracy"])
        if live < then - options.performance_drop:
            return Alert(
                version.name,
                version.version,
                "performance",
                f"live accuracy of {version.ref} {live:.3f} on {performance['rows']} labelled "
                f"rows, registered {then:.3f}",
            )
    if "mae" in performance and isinstance(registered.get("mae"), int | float):
        live, then = float(performance["mae"]), float(registered["mae"])
        if live > then * (1 + options.performance_drop):
            return Alert(
                version.name,
                version.version,
                "performance",
                f"live mean absolute error of {version.ref} {live:.4g}, registered {then:.4g}",
            )
    return None


def refusal(registry: Registry, model: str, options: RetrainSettings, now: datetime) -> str | None:
    """Why a retrain of ``model`` may not start now (None: it may)."""
    if options.models and model not in options.models:
        return f"the trigger does not watch {model}"
    started = [e.at for e in registry.events(model, limit=200) if e.kind == "retrain.started"]
    if started and now - max(started) < timedelta(seconds=options.cooldown_s):
        wait = timedelta(seconds=options.cooldown_s) - (now - max(started))
        return (
            f"cooling down: the last retrain started at {max(started):%H:%M:%S}, "
            f"{wait.total_seconds():.0f} s to go"
        )
    today = [at for at in started if now - at < DAY]
    if len(today) >= options.max_per_day:
        return f"the budget of {options.max_per_day} retrains in 24 hours is spent"
    if registry.leases.current(lease_name(model)) is not None:
        return "a retrain is already running"
    return None
