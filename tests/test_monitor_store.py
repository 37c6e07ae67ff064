"""The monitor's tables and its history upkeep: windows merged per hour, retention."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

import shipyard
from shipyard import Registry
from shipyard.monitor.evaluation import merged_window
from shipyard.monitor.live import LiveMonitor
from shipyard.monitor.period import RecentWindows
from shipyard.monitor.profile import Profile
from shipyard.monitor.retention import merge_windows
from shipyard.registry.monitoring import MonitorStore, StoredWindow

DATABASES = ("sqlite", "postgresql")  # each test on both (tests/conftest.py)


def _version(registry: Registry, classifier: Any, csv: Path) -> Any:
    return shipyard.register(classifier, "cancer", reference_data=csv, registry=registry)


def _profiled(registry: Registry, classifier: Any, csv: Path) -> tuple[Any, MonitorStore, Profile]:
    """The registered classifier, the monitor's store, and the reference profile it got."""
    version = _version(registry, classifier, csv)
    store = MonitorStore(registry.database)
    return version, store, Profile.from_dict(store.get_profile(version) or {})


def _window(profile: Profile, rows: np.ndarray, start: datetime, minutes: float) -> StoredWindow:
    window = profile.like()
    inputs = {"input": rows.astype(np.float32)}
    outputs = {
        "label": np.zeros(len(rows), dtype=np.int64),
        "probabilities": np.full((len(rows), 2), 0.5, dtype=np.float32),
    }
    window.update(inputs, outputs)
    stats = {"requests": len(rows), "latency_mean_s": 0.001 * len(rows), "seconds": minutes * 60}
    end = start + timedelta(minutes=minutes)
    return StoredWindow("here", start, end, window.rows, window.to_dict(), stats)


def test_old_windows_merge_into_one_per_hour(
    registry: Registry, cancer_classifier: Any, cancer_csv: Path, breast_cancer: Any
) -> None:
    x, _ = breast_cancer
    version, store, profile = _profiled(registry, cancer_classifier, cancer_csv)
    hour = datetime(2026, 11, 1, 10, tzinfo=UTC)
    old = [_window(profile, x[i * 10 : i * 10 + 10], hour + timedelta(minutes=10 * i), 10)
           for i in range(3)]  # fmt: skip
    later = _window(profile, x[100:105], hour + timedelta(hours=1, minutes=5), 10)
    recent_start = datetime.now(UTC) - timedelta(minutes=5)
    recent = _window(profile, x[200:204], recent_start, 1)
    for window in [*old, later, recent]:
        store.add_window(version, window)
    here = registry.settings.monitor.model_copy(update={"replica": "here"})
    monitor = LiveMonitor(registry, registry.settings.model_copy(update={"monitor": here}))
    monitor._compact(version, datetime.now(UTC) - timedelta(hours=1))

    kept = store.windows(version)
    assert [w.rows for w in kept] == [30, 5, 4]  # three windows of one hour merged, the rest kept
    merged = kept[0]
    assert merged.started_at == old[0].started_at
    assert merged.ended_at == old[-1].ended_at
    assert merged.stats["requests"] == 30
    assert np.isclose(merged.stats["latency_mean_s"], 0.01)  # each window's mean: 10 x 1 ms
    whole = profile.like()
    whole.update({"input": x[:30].astype(np.float32)},
                 {"label": np.zeros(30, np.int64),
                  "probabilities": np.full((30, 2), 0.5, np.float32)})  # fmt: skip
    got = Profile.from_dict(merged.profile).to_dict()["sketches"]
    for name, want in whole.to_dict()["sketches"].items():
        for key, value in want.items():  # counts exactly, sums up to the order of addition
            if isinstance(value, float | list) and key in ("sums", "total", "total_sq"):
                np.testing.assert_allclose(got[name][key], value, rtol=1e-12, err_msg=name)
            else:
                assert got[name][key] == value, (name, key)

    monitor._compact(version, datetime.now(UTC) - timedelta(hours=1))  # nothing left to merge
    assert [w.rows for w in store.windows(version)] == [30, 5, 4]


def test_merge_windows_without_a_profile() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    empty = {"columns": [], "sketches": {}, "rows": 0}
    windows = [
        StoredWindow("r", start, start + timedelta(minutes=1), 0, empty,
                     {"requests": 2, "latency_mean_s": 0.5, "seconds": 60}),
        StoredWindow("r", start + timedelta(minutes=1), start + timedelta(minutes=2), 0, empty,
                     {"requests": 6, "latency_mean_s": 0.1, "seconds": 60}),
    ]  # fmt: skip
    merged = merge_windows(windows)
    assert merged.stats["requests"] == 8
    assert np.isclose(merged.stats["latency_mean_s"], (2 * 0.5 + 6 * 0.1) / 8)
    assert merged.stats["seconds"] == 120
    assert merged.profile == empty


def test_history_and_predictions_retention(
    registry: Registry, cancer_classifier: Any, cancer_csv: Path, breast_cancer: Any
) -> None:
    x, _ = breast_cancer
    version, store, profile = _profiled(registry, cancer_classifier, cancer_csv)
    now = datetime.now(UTC)
    store.add_window(version, _window(profile, x[:3], now - timedelta(days=40), 1))
    store.add_window(version, _window(profile, x[:3], now - timedelta(minutes=3), 1))
    store.add_evaluation(version, now - timedelta(days=40), {"old": True})
    store.add_evaluation(version, now, {"old": False})
    store.prune_history(now - timedelta(days=30))
    assert len(store.windows(version)) == 1
    assert [r for _, r in store.evaluations(version)] == [{"old": False}]

    stamps = [now - timedelta(minutes=m) for m in (50, 40, 30, 20, 10)]
    store.add_predictions(version, [(f"r{i}", at, {"label": [1]}, None)
                                    for i, at in enumerate(stamps)])  # fmt: skip
    store.add_predictions(version, [("r0", now, {"label": [0]}, None)])  # first record kept
    assert store.predictions(version)[0].outputs == {"label": [1]}
    assert store.prune_predictions(None, 3) == 2
    assert [p.request_id for p in store.predictions(version)] == ["r2", "r3", "r4"]
    assert store.prune_predictions(timedelta(minutes=15), None) == 2
    assert [p.request_id for p in store.predictions(version)] == ["r4"]


def test_labels_join_by_request_id_within_the_model(
    registry: Registry, cancer_classifier: Any, cancer_csv: Path, tiny_onnx_path: Path
) -> None:
    version = _version(registry, cancer_classifier, cancer_csv)
    other = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    store = MonitorStore(registry.database)
    now = datetime.now(UTC)
    store.add_predictions(version, [("a", now, {"label": [1]}, None)])
    store.add_predictions(other, [("b", now, {"y": [[1.0]]}, None)])
    outcome = store.set_labels("cancer", {"a": 1, "b": 0, "zzz": 1})
    assert outcome.matched == ["a"]
    assert outcome.unknown == ["b", "zzz"]  # b belongs to another model
    (record,) = store.predictions(version, labelled_only=True)
    assert (record.request_id, record.label) == ("a", 1)
    assert record.labelled_at is not None


def _same_profile(got: Profile | None, want: Profile | None) -> None:
    assert got is not None
    assert want is not None
    assert got.rows == want.rows
    for name, sketch in want.to_dict()["sketches"].items():
        mine = got.to_dict()["sketches"][name]
        for key, value in sketch.items():  # counts exactly, sums up to the order of addition
            if key in ("sums", "total", "total_sq"):
                np.testing.assert_allclose(mine[key], value, rtol=1e-9, atol=1e-6, err_msg=name)
            else:
                assert mine[key] == value, (name, key)


def test_recent_windows_follow_the_period_as_a_full_read_does(
    registry: Registry, cancer_classifier: Any, cancer_csv: Path, breast_cancer: Any
) -> None:
    x, _ = breast_cancer
    version, store, profile = _profiled(registry, cancer_classifier, cancer_csv)
    period = timedelta(minutes=30)
    recent = RecentWindows(store, version, profile, period)
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)

    def full_read(at: datetime) -> Profile | None:
        return merged_window(profile, store.windows(version, since=at - period))

    def written(window: StoredWindow, replica: str = "here") -> StoredWindow:
        window = replace(window, replica=replica)
        store.add_window(version, window)
        return window

    for i in range(6):  # two replicas, a window every 5 minutes each, 40 minutes back
        written(_window(profile, x[i * 7 : i * 7 + 7], now - timedelta(minutes=40 - 5 * i), 5))
        written(_window(profile, x[100 + i : 103 + i], now - timedelta(minutes=38 - 5 * i), 5), "b")
    _same_profile(recent.refresh(now), full_read(now))
    assert recent.requests == sum(
        w.stats["requests"] for w in store.windows(version, since=now - period)
    )

    own = _window(profile, x[200:230], now, 1)
    window_id = store.add_window(version, own)
    recent.add(window_id, own, Profile.from_dict(own.profile))  # this replica's: not read back
    later = now + timedelta(minutes=12)  # the oldest windows age out
    _same_profile(recent.refresh(later), full_read(later))

    other = Profile.from_dict(profile.to_dict())
    other.columns = other.columns[:-1]  # a window written against an older profile: left out
    del other.sketches[profile.columns[-1].name]
    stray = _window(profile, x[300:305], later, 1)
    written(replace(stray, profile=other.like().to_dict(), rows=0))
    compacted = store.windows(version, since=later - period, replica="b")[:2]
    store.replace_windows(version, [w.id for w in compacted if w.id], merge_windows(compacted))
    even_later = later + timedelta(minutes=2)
    _same_profile(recent.refresh(even_later), full_read(even_later))
    assert recent.requests == sum(
        w.stats["requests"] for w in store.windows(version, since=even_later - period)
    )

    quiet = even_later + timedelta(hours=2)  # everything aged out: an empty total, no NaN
    total = recent.refresh(quiet)
    assert total is not None
    assert total.rows == 0
    assert recent.requests == 0
    assert all(s.count == 0 for s in total.sketches.values())


def test_a_large_log_goes_in_whole(
    registry: Registry, cancer_classifier: Any, cancer_csv: Path
) -> None:
    """Several rows per INSERT, in chunks of falling sizes: every record arrives, once."""
    version, store, _ = _profiled(registry, cancer_classifier, cancer_csv)
    now = datetime.now(UTC)
    records = [
        (f"r{i}", now + timedelta(microseconds=i), {"label": [i]}, [{"x": float(i)}])
        for i in range(301)  # 128 + 128 + 32 + 8 + 4 + 1
    ]
    store.add_predictions(version, records)
    stored = store.predictions(version)
    assert [(p.request_id, p.outputs, p.inputs) for p in stored] == [
        (r, o, i) for r, _, o, i in records
    ]
    assert all(p.created_at == at for p, (_, at, _, _) in zip(stored, records, strict=True))

    later = now + timedelta(seconds=1)
    twice = [("d", later, {"label": [2]}, None), ("d", later, {"label": [3]}, None)]
    store.add_predictions(version, twice)  # the same id twice in one insert: the first kept
    assert [p.outputs for p in store.predictions(version) if p.request_id == "d"] == [
        {"label": [2]}
    ]
