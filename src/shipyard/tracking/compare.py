"""Runs side by side: the params that differ and the metrics of each, and a metric drawn over
its steps as a character plot that fits a terminal.

A comparison is data (``Comparison``); the CLI turns it into a table. The plot is text so
that it reads the same in a terminal, a CI log and a pipe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.registry.runs import MetricPoint, Run

MARKS = "*o+x#@%&"


@dataclass(frozen=True)
class Comparison:
    runs: list[Run]
    params: list[str]  # the params some run has, those that differ first
    differing: set[str]
    metrics: list[str]

    def param(self, run: Run, key: str) -> Any:
        return run.params.get(key)

    def metric(self, run: Run, key: str) -> float | None:
        latest = run.latest.get(key)
        return None if latest is None else latest[0]


def compare(runs: Sequence[Run], *, all_params: bool = False) -> Comparison:
    """Line up ``runs``: every param some run has (only those that differ unless
    ``all_params``, since equal ones say nothing), and every metric."""
    keys: dict[str, None] = {}
    metrics: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.params))
        metrics.update(dict.fromkeys(run.latest))
    missing = object()
    differing = {
        key for key in keys if len({repr(run.params.get(key, missing)) for run in runs}) > 1
    }
    shown = [k for k in keys if k in differing] + (
        [k for k in keys if k not in differing] if all_params else []
    )
    return Comparison(list(runs), shown, differing, sorted(metrics))


def plot(series: dict[str, list[MetricPoint]], *, width: int = 72, height: int = 16) -> list[str]:
    """The points of each series (label → points) on one grid of characters, with the
    y range on the left, the steps below and a legend of marks."""
    finite = [p for points in series.values() for p in points if math.isfinite(p.value)]
    if not finite:
        return ["(no finite points to plot)"]
    low = min(p.value for p in finite)
    high = max(p.value for p in finite)
    first = min(p.step for p in finite)
    last = max(p.step for p in finite)
    span = high - low or abs(high) or 1.0
    label_width = max(len(_short(low)), len(_short(high)))
    columns = max(width - label_width - 3, 10)
    grid = [[" "] * columns for _ in range(height)]
    for index, points in enumerate(series.values()):
        mark = MARKS[index % len(MARKS)]
        for point in points:
            if not math.isfinite(point.value):
                continue
            x = 0 if last == first else round((point.step - first) / (last - first) * (columns - 1))
            y = round((point.value - low) / span * (height - 1))
            grid[height - 1 - y][x] = mark
    lines = []
    for row, cells in enumerate(grid):
        label = _short(high) if row == 0 else _short(low) if row == height - 1 else ""
        lines.append(f"{label:>{label_width}} |{''.join(cells)}")
    lines.append(f"{'':>{label_width}} +{'-' * columns}")
    steps = f"step {first}"
    end = f"{last}"
    lines.append(f"{'':>{label_width}}  {steps}{end:>{max(columns - len(steps), len(end))}}")
    for index, label in enumerate(series):
        lines.append(f"{'':>{label_width}}  {MARKS[index % len(MARKS)]} {label}")
    return lines


def _short(value: float) -> str:
    return f"{value:.4g}"
