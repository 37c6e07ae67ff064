"""The monitor's history kept bounded: the prediction log and old evaluations pruned to the
retention age and row count, this replica's old windows merged into one per hour.

The worker runs a pass with a flush at most once per RETENTION_SECONDS (``due``); the
prediction log is pruned by an index on its time.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from shipyard.monitor.evaluation import merged_window
from shipyard.monitor.profile import Profile
from shipyard.registry import ModelVersion
from shipyard.registry.monitoring import MonitorStore, StoredWindow
from shipyard.settings import MonitorSettings

# Windows are kept at flush resolution for an hour, then merged into one per replica and
# hour: a busy server writes 360 windows an hour, and the report needs no finer history.
COMPACT_AFTER = timedelta(hours=1)
COMPACT_BUCKET_S = 3600
RETENTION_SECONDS = 60.0  # retention and compaction run at most this often


class Retention:
    """Retention of the monitor's history, compaction of this replica's windows."""

    def __init__(self, store: MonitorStore, replica: str, options: MonitorSettings) -> None:
        self.store = store
        self.replica = replica
        self.options = options
        self.last_pass = 0.0  # monotonic time of the last pass

    def due(self) -> bool:
        return time.monotonic() - self.last_pass >= RETENTION_SECONDS

    def prune(self, now: datetime) -> None:
        """Drop the logged predictions and the history past the retention age (and rows)."""
        self.last_pass = time.monotonic()
        retention = timedelta(days=self.options.retention_days)
        self.store.prune_predictions(retention, self.options.retention_rows)
        self.store.prune_history(now - retention)

    def compact(self, version: ModelVersion, before: datetime) -> None:
        """Merge this replica's windows that ended before ``before`` into one per hour."""
        old = self.store.windows(version, until=before, replica=self.replica)
        buckets: dict[int, list[StoredWindow]] = {}
        for window in old:
            if (window.ended_at - window.started_at).total_seconds() >= COMPACT_BUCKET_S:
                continue  # already an hour's merge
            buckets.setdefault(int(window.started_at.timestamp()) // COMPACT_BUCKET_S, []).append(
                window
            )
        for windows in buckets.values():
            if len(windows) > 1:
                merged = merge_windows(windows)
                self.store.replace_windows(version, [w.id for w in windows if w.id], merged)


def merge_windows(windows: list[StoredWindow]) -> StoredWindow:
    """One window covering several of one replica's (sketches and traffic figures added)."""
    merged = merged_window(None, [w for w in windows if w.profile.get("columns")])
    requests = sum(int(w.stats.get("requests", 0)) for w in windows)
    latency_sum = sum(
        float(w.stats.get("latency_mean_s", 0.0)) * int(w.stats.get("requests", 0)) for w in windows
    )
    stats = {
        "requests": requests,
        "latency_mean_s": latency_sum / requests if requests else 0.0,
        "seconds": sum(float(w.stats.get("seconds", 0.0)) for w in windows),
    }
    return StoredWindow(
        windows[0].replica,
        min(w.started_at for w in windows),
        max(w.ended_at for w in windows),
        sum(w.rows for w in windows),
        window_document(merged),
        stats,
    )


def window_document(profile: Profile | None) -> dict[str, Any]:
    """A window's profile document; a version without a reference profile has an empty one."""
    return profile.to_dict() if profile is not None else {"columns": [], "sketches": {}, "rows": 0}
