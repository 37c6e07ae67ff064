"""The monitor's Python API, which the ``shipyard monitor`` commands wrap.

Each call reads what every replica wrote to the database, so it works with or without a
server running and sees all replicas at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shipyard.errors import InvalidInputError
from shipyard.monitor.drift import Thresholds
from shipyard.monitor.evaluation import Evaluation, evaluate_version
from shipyard.monitor.export import parse_since, rows_of, write_table
from shipyard.monitor.profile import Profile
from shipyard.monitor.references import reference_profile
from shipyard.monitor.report import render
from shipyard.monitor.report_story import read_story
from shipyard.registry import ModelVersion, Registry

DEFAULT_PERIOD = "1h"


@dataclass
class Status:
    version: ModelVersion
    reference: Profile | None
    evaluation: Evaluation


def status(registry: Registry, ref: str, period: str = DEFAULT_PERIOD) -> Status:
    """Drift, data quality and performance of ``ref`` over the last ``period`` (e.g. 1h)."""
    version = registry.get_version(ref)
    now = datetime.now(UTC)
    since = parse_since(period, now)
    if since >= now:
        raise InvalidInputError(f"the period {period!r} must reach into the past")
    reference = reference_profile(registry, version)
    settings = registry.settings.monitoring_for(version.name)
    thresholds = Thresholds.from_dict(dict(settings.thresholds))
    evaluation = evaluate_version(
        registry.monitoring, version, reference, thresholds, now - since, now
    )
    return Status(version, reference, evaluation)


def write_report(registry: Registry, ref: str, out: Path, period: str = DEFAULT_PERIOD) -> Status:
    """One self-contained HTML report: the version's drift and performance (without traffic,
    the reference part alone) and the story of every version of its model."""
    if not out.parent.is_dir():
        raise InvalidInputError(f"folder {out.parent} does not exist")
    current = status(registry, ref, period)
    store = registry.monitoring
    since = current.evaluation.since
    windows = store.windows(current.version, since=since)
    history = store.evaluations(current.version, since=since)
    history.append((current.evaluation.evaluated_at, current.evaluation.to_dict()))
    story = read_story(registry, current.version.name, current.evaluation.evaluated_at)
    title = f"Shipyard monitor: {current.version.ref}"
    html = render(title, current.reference, current.evaluation, windows, history, story)
    out.write_text(html, encoding="utf-8")
    return current


def export(
    registry: Registry,
    ref: str,
    out: Path,
    since: str | None = None,
    labelled_only: bool = False,
) -> int:
    """The prediction log of ``ref`` (every version of the model without one) as Parquet or
    CSV; returns the number of rows written."""
    versions = _versions(registry, ref)
    start = parse_since(since) if since else None
    store = registry.monitoring
    rows = []
    for version in versions:
        rows.extend(
            rows_of(
                version.name, store.predictions(version, since=start, labelled_only=labelled_only)
            )
        )
    write_table(rows, out)
    return len(rows)


def _versions(registry: Registry, ref: str) -> list[ModelVersion]:
    if ":" in ref or "@" in ref:
        return [registry.get_version(ref)]
    return registry.list_versions(ref)
