"""The report's view of every version's health over time: the share of drifted inputs, the
prediction drift and each live performance metric from labelled feedback, one line per
version, from the evaluations the serving replicas stored; alias moves and rollouts marked
on each chart, so that a change can be read against what was deployed when."""

from __future__ import annotations

from collections.abc import Callable

from shipyard.monitor.report_html import (
    STATE_COLOURS,
    Chart,
    Html,
    Marker,
    Series,
    colour_of,
    escape,
    join,
    note,
    time_chart,
)
from shipyard.monitor.report_story import HealthPoint, Story
from shipyard.monitor.report_timeline import alias_spans

Reading = Callable[[HealthPoint], float | None]


def health(story: Story) -> Html:
    if not any(story.health.values()):
        return note(
            "no evaluations stored yet: a serving replica stores one per version at most once "
            "a minute while it has traffic"
        )
    markers = _markers(story)
    charts: list[tuple[str, list[Series], float | None, float | None]] = [
        ("share of input columns drifted", _series(story, lambda p: p.drifted_share), 0.0, 1.0),
        ("prediction drift (largest output distance)",
         _series(story, lambda p: p.prediction_drift), 0.0, None),
    ]  # fmt: skip
    metrics = sorted({m for points in story.health.values() for p in points for m in p.performance})
    for metric in metrics:
        charts.append((f"{metric} from feedback", _series(story, _metric(metric)), None, None))
    cards = [
        f"<div class='card'><b>{escape(title)}</b>"
        + time_chart(Chart(series, markers, low=low, high=high, width=460), end=story.read_at)
        + "</div>"
        for title, series, low, high in charts
        if series
    ]
    missing = [title for title, series, _, _ in charts if not series]
    absent = (
        note(f"Not measured yet: {', '.join(missing)} (drift needs reference data and traffic).")
        if missing
        else Html("")
    )
    return Html(
        "<p class='note'>Dashed lines: alias moves and rollouts (hover for which).</p>"
        f"<div class='grid'>{join(Html(c) for c in cards)}</div>{absent}"
    )


def _metric(metric: str) -> Reading:
    return lambda p: p.performance.get(metric)


def _series(story: Story, reading: Reading) -> list[Series]:
    series = []
    for version, points in sorted(story.health.items()):
        values = [(p.at, value) for p in points if (value := reading(p)) is not None]
        if values:
            series.append(Series(f"{story.model}:{version}", colour_of(version), values))
    return series


def _markers(story: Story) -> list[Marker]:
    markers = [
        Marker(s.start, f"@{s.alias} → {story.model}:{s.version}", colour_of(s.version))
        for s in alias_spans(story)
    ]
    for told in story.rollouts:
        r = told.rollout
        markers.append(Marker(r.created_at, f"rollout {r.id} started ({r.strategy})"))
        if r.finished_at is not None:
            markers.append(
                Marker(r.finished_at, f"rollout {r.id} {r.state}",
                       STATE_COLOURS.get(r.state, "#888888"))
            )  # fmt: skip
    return markers
