"""One evaluation of a version: every replica's recent windows merged and compared with the
reference profile (drift), their quality counts, and performance from labelled feedback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shipyard.monitor import performance
from shipyard.monitor.drift import DriftReport, Thresholds, evaluate
from shipyard.monitor.profile import Profile
from shipyard.monitor.sketch import CategoricalSketch, NumericSketch
from shipyard.registry import ModelVersion
from shipyard.registry.monitoring import MonitorStore, StoredWindow


@dataclass
class Evaluation:
    version: ModelVersion
    evaluated_at: datetime
    since: datetime
    rows: int
    requests: int
    drift: DriftReport | None  # None without a reference profile or traffic
    quality: dict[str, dict[str, int]]  # column -> kind -> count
    performance: dict[str, Any]
    window: Profile | None  # the merged live sketches

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.version.name,
            "version": self.version.version,
            "evaluated_at": self.evaluated_at.isoformat(),
            "since": self.since.isoformat(),
            "rows": self.rows,
            "requests": self.requests,
            "drift": self.drift.to_dict() if self.drift else None,
            "quality": self.quality,
            "performance": self.performance,
        }


def merged_window(reference: Profile | None, windows: list[StoredWindow]) -> Profile | None:
    merged: Profile | None = None
    for stored in windows:
        window = Profile.from_dict(stored.profile)
        if reference is not None and not reference.same_columns(window):
            continue  # written against an older profile of this version
        if merged is None:
            merged = window
        else:
            merged.merge(window)
    return merged


def quality_counts(window: Profile) -> dict[str, dict[str, int]]:
    """Violations per column: missing, outside the reference range, unseen categories, and
    NaN or inf (in outputs, a model answering garbage)."""
    counts: dict[str, dict[str, int]] = {}
    for column in window.columns:
        sketch = window.sketches[column.name]
        if isinstance(sketch, NumericSketch):
            found = {
                "missing": sketch.missing,
                "out_of_range": sketch.out_of_range,
                "nonfinite": sketch.nonfinite,
            }
        else:
            assert isinstance(sketch, CategoricalSketch)
            found = {"missing": sketch.missing, "unseen_category": sketch.unseen}
        counts[column.name] = found
    return counts


def evaluate_version(
    store: MonitorStore,
    version: ModelVersion,
    reference: Profile | None,
    thresholds: Thresholds,
    period: timedelta,
    now: datetime,
) -> Evaluation:
    """The last ``period`` of every replica's windows, read and evaluated at once."""
    since = now - period
    windows = store.windows(version, since=since)
    requests = sum(int(w.stats.get("requests", 0)) for w in windows)
    window = merged_window(reference, windows)
    scores = live_performance(store, version, since)
    return evaluate_window(version, reference, thresholds, window, requests, scores, since, now)


def evaluate_window(
    version: ModelVersion,
    reference: Profile | None,
    thresholds: Thresholds,
    window: Profile | None,
    requests: int,
    scores: dict[str, Any],
    since: datetime,
    now: datetime,
) -> Evaluation:
    """Drift and data quality of merged traffic, with performance already worked out."""
    drift = None
    if reference is not None and window is not None and window.rows:
        drift = evaluate(reference, window, thresholds)
    return Evaluation(
        version,
        now,
        since,
        window.rows if window else 0,
        requests,
        drift,
        quality_counts(window) if window else {},
        scores,
        window,
    )


def live_performance(store: MonitorStore, version: ModelVersion, since: datetime) -> dict[str, Any]:
    """Performance of the predictions served since ``since`` that have labels by now."""
    task = performance.task_of(version)
    if task == "embedding":
        return {}
    labelled = store.predictions(version, since=since, labelled_only=True)
    return performance.performance(version.signature, task, labelled)
