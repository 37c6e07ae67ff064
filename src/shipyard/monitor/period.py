"""A version's recent traffic as one profile: every replica's windows of a sliding period,
merged, and kept up to date without reading the period again.

A server re-evaluates drift at every flush (10 s) over the last hour, which is 360 windows
per replica. Reading and parsing them all each time cost a flush time in proportion to the
period; instead each refresh lists the ids of the period's windows (an index read), reads
only the windows it has not seen, adds them to a running total, and takes out those that
aged out of the period or were compacted away. Every sketch field of a window is a sum, so
taking one out is exact for counts; the floating-point sums are re-added from the kept
windows now and then, so that rounding cannot build up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shipyard.monitor.profile import Profile
from shipyard.registry import ModelVersion
from shipyard.registry.monitoring import MonitorStore, StoredWindow

RESUM_EVERY = 360  # refreshes between rebuilding the total from the kept windows


@dataclass
class _Kept:
    requests: int
    profile: Profile | None  # None: written against another profile of this version


class RecentWindows:
    """The merged windows of ``version`` that ended within ``period`` of a refresh."""

    def __init__(
        self,
        store: MonitorStore,
        version: ModelVersion,
        reference: Profile | None,
        period: timedelta,
    ) -> None:
        self.store = store
        self.version = version
        self.reference = reference
        self.period = period
        self.total: Profile | None = None
        self._kept: dict[int, _Kept] = {}
        self._refreshes = 0

    @property
    def requests(self) -> int:
        return sum(kept.requests for kept in self._kept.values())

    def add(self, window_id: int, window: StoredWindow, profile: Profile | None) -> None:
        """A window this process just wrote, with its profile as it was (no read back)."""
        if window_id not in self._kept:
            self._keep(window_id, window, profile)

    def refresh(self, now: datetime) -> Profile | None:
        """The period ending ``now``, merged (None before any window with a profile)."""
        current = self.store.window_ids(self.version, now - self.period)
        for gone in self._kept.keys() - current:
            kept = self._kept.pop(gone)
            if kept.profile is not None and self.total is not None:
                self.total.remove(kept.profile)
        unseen = current - self._kept.keys()
        if unseen:
            for stored in self.store.windows_by_id(unseen):
                assert stored.id is not None
                self._keep(stored.id, stored, self._parse(stored))
        self._refreshes += 1
        if self._refreshes % RESUM_EVERY == 0:
            self._resum()
        return self.total

    def _parse(self, stored: StoredWindow) -> Profile | None:
        if self.reference is None or not stored.profile.get("columns"):
            return None
        profile = Profile.from_dict(stored.profile)
        if not self.reference.same_columns(profile):
            return None  # written against an older profile of this version
        return profile

    def _keep(self, window_id: int, window: StoredWindow, profile: Profile | None) -> None:
        self._kept[window_id] = _Kept(int(window.stats.get("requests", 0)), profile)
        if profile is None:
            return
        if self.total is None:
            self.total = profile.like()
        self.total.merge(profile)

    def _resum(self) -> None:
        if self.total is None:
            return
        total = self.total.like()
        for kept in self._kept.values():
            if kept.profile is not None:
                total.merge(kept.profile)
        self.total = total
