"""The monitoring report's HTML vocabulary: escaping, the page's style, tables, and charts
over time drawn as inline SVG (no script, no external asset).

Every text that reaches the page goes through ``escape`` (``table`` escapes each cell), so
a model's name, a tag or a rollout's reason cannot inject markup; ``Html`` marks a fragment
already built from escaped parts, the one kind of cell left as it is.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

REFERENCE_COLOUR = "#8da0cb"
CURRENT_COLOUR = "#fc8d62"
LINE_COLOUR = "#1b9e77"
MARKER_COLOUR = "#888888"
# One colour per version (cycled): the same version is the same colour in every chart.
PALETTE = (
    "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
)  # fmt: skip
STATE_COLOURS = {"succeeded": "#1a7837", "rolled_back": "#b2182b", "failed": "#b2182b"}
# What a rollout did after an analysis: moved on, stopped, or waited.
NEXT_COLOURS = {"advance": "#1a7837", "roll_back": "#b2182b", "pause": "#e6ab02"}
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:80rem;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
h3{font-size:1.05rem;margin-top:1.5rem}
table{border-collapse:collapse;margin:.5rem 0}
td,th{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f6f6f6}.drift{color:#b2182b;font-weight:600}.ok{color:#1a7837}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr));gap:1rem}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:.5rem}.note{color:#666}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem;
vertical-align:middle}.wide{overflow-x:auto}td.num{font-variant-numeric:tabular-nums}
svg text{font:11px system-ui,sans-serif;fill:#444}
"""


class Html(str):
    """A fragment of markup built from escaped parts: placed in a page as it is."""

    __slots__ = ()


def escape(value: object) -> Html:
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[str]) -> Html:
    """Fragments side by side; each must already be ``Html``."""
    return Html("".join(parts))


def table(headings: Sequence[str], rows: Iterable[Sequence[object]]) -> Html:
    """A table, every cell escaped unless it is ``Html``."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return Html(f"<div class='wide'><table><tr>{head}</tr>{body}</table></div>")


def _cell(value: object) -> str:
    return value if isinstance(value, Html) else escape("-" if value is None else value)


def note(text: str) -> Html:
    return Html(f"<p class='note'>{escape(text)}</p>")


def colour_of(version: int) -> str:
    return PALETTE[(version - 1) % len(PALETTE)]


# Figures as text -------------------------------------------------------------------------------


def when(at: datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M:%S}"


def figure(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.3g}%"


def lasted(start: datetime, end: datetime | None) -> str:
    if end is None:
        return "-"
    seconds = max((end - start).total_seconds(), 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# Time -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeScale:
    """Where a moment falls across ``width`` pixels starting at ``left``."""

    start: datetime
    end: datetime
    left: float
    width: float

    @classmethod
    def over(cls, moments: Iterable[datetime], left: float, width: float) -> TimeScale:
        ordered = sorted(moments)
        start, end = ordered[0], ordered[-1]
        # everything at one moment (a test, a first minute) still spreads over a second
        return cls(start, max(end, start + timedelta(seconds=1)), left, width)

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        return self.left + (at - self.start).total_seconds() / span * self.width

    def axis(self, y: float, ticks: int = 4) -> Html:
        """Tick labels along ``y``: the first, the last and evenly between."""
        step = (self.end - self.start) / ticks
        labels = []
        shown = set()
        for i in range(ticks + 1):
            at = self.start + step * i
            text = _tick(at, self.end - self.start)
            if text in shown:
                continue  # a short span repeats a label: once is enough
            shown.add(text)
            anchor = "start" if i == 0 else "end" if i == ticks else "middle"
            labels.append(
                f"<text x='{self.x(at):.1f}' y='{y:.1f}' text-anchor='{anchor}'>"
                f"{escape(text)}</text>"
            )
        return join(labels)


def _tick(at: datetime, span: timedelta) -> str:
    if span <= timedelta(minutes=10):
        return f"{at:%H:%M:%S}"
    if span <= timedelta(days=2):
        return f"{at:%m-%d %H:%M}"
    return f"{at:%Y-%m-%d}"


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    points: list[tuple[datetime, float]]
    steps: bool = False  # a value holds until the next one (a weight), not a trend


@dataclass(frozen=True)
class Marker:
    """A moment worth seeing on every chart: a promotion, a rollout's start."""

    at: datetime
    label: str
    colour: str = MARKER_COLOUR


@dataclass(frozen=True)
class Chart:
    series: list[Series]
    markers: list[Marker] = field(default_factory=list)
    low: float | None = None  # a fixed range (0 to 100 for a weight), else the data's
    high: float | None = None
    width: int = 640
    height: int = 170
    legend: bool = True  # off where the chart's title already names its one line


def time_chart(chart: Chart, start: datetime | None = None, end: datetime | None = None) -> Html:
    """Lines over time with their legend; markers as dashed verticals, named on hover."""
    drawn = [s for s in chart.series if s.points]
    if not drawn:
        return note("no data")
    moments = [t for s in drawn for t, _ in s.points] + [m.at for m in chart.markers]
    moments += [t for t in (start, end) if t is not None]
    top, bottom, left = 10.0, chart.height - 22.0, 52.0
    scale = TimeScale.over(moments, left, chart.width - left - 10.0)
    values = [v for s in drawn for _, v in s.points]
    low = min(values) if chart.low is None else chart.low
    high = max(values) if chart.high is None else chart.high
    if high == low:  # one value: drawn mid-height, between labels that differ
        pad = max(abs(high) * 0.05, 0.05)
        low, high = low - pad, high + pad
    spread = high - low

    def y(value: float) -> float:
        return bottom - (value - low) / spread * (bottom - top)

    shapes = [
        f"<line x1='{left}' y1='{bottom}' x2='{chart.width - 10}' y2='{bottom}' stroke='#ccc'/>",
        f"<text x='{left - 4}' y='{top + 8:.1f}' text-anchor='end'>{escape(figure(high))}</text>",
        f"<text x='{left - 4}' y='{bottom:.1f}' text-anchor='end'>{escape(figure(low))}</text>",
        scale.axis(chart.height - 6.0),
    ]
    for marker in chart.markers:
        x = scale.x(marker.at)
        shapes.append(
            f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{bottom}' stroke='{marker.colour}' "
            f"stroke-dasharray='3,3'><title>{escape(marker.label)} at {escape(when(marker.at))}"
            "</title></line>"
        )
    for s in drawn:
        coords = []
        previous: float | None = None
        for at, value in s.points:
            if s.steps and previous is not None:
                coords.append(f"{scale.x(at):.1f},{y(previous):.1f}")
            coords.append(f"{scale.x(at):.1f},{y(value):.1f}")
            previous = value
        if s.steps and end is not None and previous is not None:
            coords.append(f"{scale.x(end):.1f},{y(previous):.1f}")
        line = " ".join(coords)
        shapes.append(
            f"<polyline fill='none' stroke='{s.colour}' stroke-width='2' points='{line}'/>"
        )
        for at, value in s.points if len(s.points) <= 60 else []:
            shapes.append(
                f"<circle cx='{scale.x(at):.1f}' cy='{y(value):.1f}' r='2.5' fill='{s.colour}'>"
                f"<title>{escape(s.label)}: {escape(figure(value))} at {escape(when(at))}</title>"
                "</circle>"
            )
    legend = "".join(f"<span style='background:{s.colour}'></span>{escape(s.label)}" for s in drawn)
    return Html(
        f"<svg width='{chart.width}' height='{chart.height}' viewBox='0 0 {chart.width} "
        f"{chart.height}' role='img'>{''.join(shapes)}</svg>"
        f"<div class='legend note'>{legend}</div>"
    )
