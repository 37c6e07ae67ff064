"""``shipyard monitor report``: one self-contained HTML file people read.

No scripts and no external assets: the plots are inline SVG, so the file opens anywhere,
attaches to a ticket and survives offline. This module assembles the page and draws the
version's state now: the drift table, reference-against-current histograms per column,
data quality, latency and throughput per window, and performance from labelled feedback.
Without traffic it says so and still shows the reference part. With the model's story (see
``report_story``) the page also tells each version's life: the timeline and lineage
(``report_timeline``), every rollout with its steps and decisions (``report_rollouts``), and
drift and performance over time across versions (``report_health``).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import numpy as np

from shipyard.monitor.drift import ColumnDrift, gated_by
from shipyard.monitor.evaluation import Evaluation
from shipyard.monitor.profile import Profile
from shipyard.monitor.report_health import health
from shipyard.monitor.report_html import (
    CURRENT_COLOUR,
    LINE_COLOUR,
    REFERENCE_COLOUR,
    STYLE,
    Chart,
    Series,
    escape,
    time_chart,
)
from shipyard.monitor.report_rollouts import rollouts
from shipyard.monitor.report_story import Story
from shipyard.monitor.report_timeline import audit_log, timeline, versions_table
from shipyard.monitor.sketch import CategoricalSketch, NumericSketch, Sketch
from shipyard.registry.monitoring import StoredWindow

_e = escape


def render(
    title: str,
    reference: Profile | None,
    evaluation: Evaluation | None,
    windows: list[StoredWindow],
    history: list[tuple[datetime, dict[str, Any]]],
    story: Story | None = None,
) -> str:
    """The page; ``story`` (the model's versions, rollouts and log) adds their history."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    traffic = evaluation is not None and evaluation.rows > 0
    if evaluation is not None:
        parts.append(
            f"<p>Evaluated {evaluation.evaluated_at:%Y-%m-%d %H:%M:%S} UTC over traffic since "
            f"{evaluation.since:%Y-%m-%d %H:%M:%S}: {evaluation.rows} rows in "
            f"{evaluation.requests} requests.</p>"
        )
    if not traffic:
        parts.append(
            "<p class='note'><b>No traffic yet</b> in this period: there is nothing to compare, "
            "so the report shows the reference profile only.</p>"
        )
    if reference is None:
        parts.append(
            "<p class='note'>This version has no reference data, so there is no profile "
            "to compare with. Register it with reference data to get drift figures.</p>"
        )
    if story is not None:
        parts.append(f"<h2>Versions of {_e(story.model)}</h2>" + timeline(story))
        parts.append(versions_table(story))
    if evaluation is not None and evaluation.drift is not None:
        parts.append(_summary(evaluation))
        parts.append("<h2>Input drift</h2>" + _drift_table(evaluation.drift.columns))
        parts.append("<h2>Prediction drift</h2>" + _drift_table(evaluation.drift.predictions))
    if evaluation is not None and evaluation.quality:
        parts.append("<h2>Data quality</h2>" + _quality_table(evaluation.quality))
    if reference is not None:
        window = evaluation.window if evaluation is not None else None
        parts.append("<h2>Distributions</h2>" + _legend(window is not None))
        parts.append("<div class='grid'>")
        for column in reference.columns:
            current = window.sketches.get(column.name) if window is not None else None
            parts.append(
                f"<div class='card'><b>{_e(column.name)}</b> <span class='note'>"
                f"({column.role})</span>{_histogram(reference.sketches[column.name], current)}"
                "</div>"
            )
        parts.append("</div>")
    parts.append("<h2>Traffic over time</h2>" + _traffic(windows))
    parts.append("<h2>Performance over time</h2>" + _performance(history))
    if story is not None:
        parts.append("<h2>Rollouts</h2>" + rollouts(story))
        parts.append("<h2>Every version over time</h2>" + health(story))
        parts.append("<h2>Audit log</h2>" + audit_log(story))
    parts.append(f"<p class='note'>Shipyard {_version()}</p></body></html>")
    return "\n".join(parts)


def _summary(evaluation: Evaluation) -> str:
    drift = evaluation.drift
    assert drift is not None
    verdict = (
        "<span class='drift'>dataset drift</span>"
        if drift.dataset_drift
        else "<span class='ok'>no dataset drift</span>"
    )
    lines = [
        f"<p>{verdict}: {drift.drifted_share:.0%} of input columns drifted "
        f"(threshold {drift.thresholds.drift_share:.0%}); largest prediction drift "
        f"{drift.prediction_drift:.4f}.</p>"
    ]
    if evaluation.performance:
        scores = ", ".join(f"{k} {v:.4f}" for k, v in evaluation.performance.items() if k != "rows")
        lines.append(
            f"<p>Performance on {evaluation.performance.get('rows', 0)} labelled rows: "
            f"{scores}.</p>"
        )
    return "".join(lines)


def _drift_table(columns: list[ColumnDrift]) -> str:
    if not columns:
        return "<p class='note'>none</p>"
    rows = [
        "<table><tr><th>column</th><th>kind</th><th>method</th><th>score</th><th>threshold</th>"
        "<th>verdict</th><th>other statistics</th><th>note</th></tr>"
    ]
    for c in columns:
        verdict = "<span class='drift'>drift</span>" if c.drifted else "<span class='ok'>ok</span>"
        if c.method == "none":
            verdict = "-"
        # the score column holds the gating figure: a test's p-value, or a distance
        gating = gated_by(c.method)
        shown = gating.key if gating is not None else c.method
        others = ", ".join(f"{k} {v:.4g}" for k, v in c.statistics.items() if k != shown)
        rows.append(
            f"<tr><td>{_e(c.column)}</td><td>{c.kind}</td><td>{c.method}</td>"
            f"<td>{c.score:.4g}</td><td>{c.threshold:.4g}</td><td>{verdict}</td>"
            f"<td>{_e(others)}</td><td>{_e(c.note)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _quality_table(quality: dict[str, dict[str, int]]) -> str:
    kinds = sorted({k for counts in quality.values() for k in counts})
    rows = ["<table><tr><th>column</th>" + "".join(f"<th>{k}</th>" for k in kinds) + "</tr>"]
    for column, counts in quality.items():
        cells = "".join(f"<td>{counts.get(k, '')}</td>" for k in kinds)
        rows.append(f"<tr><td>{_e(column)}</td>{cells}</tr>")
    rows.append("</table>")
    return "".join(rows)


def _legend(with_current: bool) -> str:
    current = f"<span style='background:{CURRENT_COLOUR}'></span>current" if with_current else ""
    return (
        f"<p class='legend'><span style='background:{REFERENCE_COLOUR}'></span>reference"
        f"{current}</p>"
    )


def _histogram(reference: Sketch, current: Sketch | None, width: int = 320) -> str:
    """Side-by-side bars of each bin's share (reference and current use the same bins)."""
    if isinstance(reference, NumericSketch):
        labels = _bin_labels(reference)
    else:
        assert isinstance(reference, CategoricalSketch)
        labels = [*reference.categories, "other"]
    ref_share = _shares(reference)
    cur_share = _shares(current) if current is not None else None
    if not ref_share.sum() and (cur_share is None or not cur_share.sum()):
        return "<p class='note'>no values</p>"
    height, bins = 120, len(ref_share)
    peak = max(ref_share.max(), cur_share.max() if cur_share is not None else 0.0, 1e-12)
    step = width / bins
    bar = step / (2 if cur_share is not None else 1) * 0.9
    shapes = []
    for i in range(bins):
        for j, (shares, colour) in enumerate(
            [(ref_share, REFERENCE_COLOUR)]
            + ([(cur_share, CURRENT_COLOUR)] if cur_share is not None else [])
        ):
            h = shares[i] / peak * (height - 10)
            x = i * step + j * bar
            shapes.append(
                f"<rect x='{x:.1f}' y='{height - h:.1f}' width='{bar:.1f}' height='{h:.1f}' "
                f"fill='{colour}'><title>{_e(labels[i])}: {shares[i]:.1%}</title></rect>"
            )
    return (
        f"<svg width='{width}' height='{height + 4}' viewBox='0 0 {width} {height + 4}' "
        f"role='img'>{''.join(shapes)}</svg><div class='note'>{_e(_range_note(reference))}</div>"
    )


def _bin_labels(sketch: NumericSketch) -> list[str]:
    edges = sketch.edges
    if not edges.size:
        return ["all values"]
    labels = [f"<= {edges[0]:.4g}"]
    labels += [f"{a:.4g} .. {b:.4g}" for a, b in itertools.pairwise(edges)]
    labels.append(f"> {edges[-1]:.4g}")
    return labels


def _range_note(sketch: Sketch) -> str:
    if isinstance(sketch, NumericSketch):
        if not sketch.count:
            return "the reference has no values"
        return (
            f"reference mean {sketch.mean:.4g}, std {sketch.std:.4g}, "
            f"range {sketch.minimum:.4g} .. {sketch.maximum:.4g}"
        )
    return f"{len(sketch.categories)} categories kept"


def _shares(sketch: Sketch) -> np.ndarray:
    counts = np.asarray(sketch.counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total else counts


def _traffic(windows: list[StoredWindow]) -> str:
    if not windows:
        return "<p class='note'>no windows recorded yet</p>"
    times = [w.ended_at for w in windows]
    throughput = [
        w.stats.get("requests", 0) / max(w.stats.get("seconds", 1.0), 1e-9) for w in windows
    ]
    latency = [1000 * float(w.stats.get("latency_mean_s", 0.0)) for w in windows]
    return (
        "<div class='grid'><div class='card'><b>requests per second</b>"
        + _line("requests per second", times, throughput)
        + "</div><div class='card'><b>mean latency (ms)</b>"
        + _line("mean latency (ms)", times, latency)
        + "</div></div>"
    )


def _performance(history: list[tuple[datetime, dict[str, Any]]]) -> str:
    series: dict[str, tuple[list[datetime], list[float]]] = {}
    for at, result in history:
        for metric, value in (result.get("performance") or {}).items():
            if metric == "rows":
                continue
            times, values = series.setdefault(metric, ([], []))
            times.append(at)
            values.append(float(value))
    if not series:
        return "<p class='note'>no labelled feedback yet (POST /v2/models/NAME/feedback)</p>"
    cards = "".join(
        f"<div class='card'><b>{_e(metric)}</b>{_line(metric, times, values)}</div>"
        for metric, (times, values) in series.items()
    )
    return f"<div class='grid'>{cards}</div>"


def _line(label: str, times: list[datetime], values: list[float]) -> str:
    points = list(zip(times, values, strict=True))
    chart = Chart([Series(label, LINE_COLOUR, points)], width=320, height=140, legend=False)
    return time_chart(chart)


def _version() -> str:
    from shipyard.version import __version__

    return __version__
