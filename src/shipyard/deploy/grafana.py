"""The Grafana dashboard: serving and model health of the models a Prometheus scrapes.

One row of two panels per concern, all filtered by a ``model`` variable filled from
``shipyard_requests_total``, and a ``datasource`` variable so the JSON imports into any
Grafana without editing. Queries use ``$__rate_interval`` so rates stay correct whatever the
scrape interval. Below them a "Rollouts" row: the share of traffic per version over time,
and the current phase and latest check results of each rollout (stat panels on instant
queries, so only what holds now is shown).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
MODEL = 'model=~"$model"'
RATE = "[$__rate_interval]"
PANEL_WIDTH, PANEL_HEIGHT = 12, 8  # two panels per row on Grafana's 24-column grid
GRID_WIDTH, ROW_HEIGHT = 24, 1


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    """A timeseries over the dashboard's range, or (``kind="stat"``) the names of the series
    an instant query returns now, such as the current phase of a rollout."""

    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"
    width: int = PANEL_WIDTH
    colors: tuple[tuple[str, str], ...] = ()  # (name regex, color) of a stat's series


def _quantile(q: float) -> Query:
    buckets = f"shipyard_request_duration_seconds_bucket{{{MODEL}}}"
    return Query(
        f"histogram_quantile({q:g}, sum by (le, model, version) (rate({buckets}{RATE})))",
        f"p{q * 100:g} {{{{model}}}}:{{{{version}}}}",
    )


PANELS = (
    Panel(
        "Request rate by status",
        "Inference requests per second, by HTTP status.",
        "reqps",
        (
            Query(
                f"sum by (status) (rate(shipyard_requests_total{{{MODEL}}}{RATE}))",
                "{{status}}",
            ),
        ),
    ),
    Panel(
        "Latency p50 / p99",
        "Request duration from body read to response sent.",
        "s",
        (_quantile(0.5), _quantile(0.99)),
    ),
    Panel(
        "Batch size",
        "Mean rows per batch the model ran: how much dynamic batching merges.",
        "short",
        (
            Query(
                f"sum by (model, version) (rate(shipyard_batch_size_rows_sum{{{MODEL}}}{RATE}))"
                f" / sum by (model, version) (rate(shipyard_batch_size_rows_count{{{MODEL}}}"
                f"{RATE}))",
                "{{model}}:{{version}}",
            ),
        ),
    ),
    Panel(
        "Queue depth",
        "Rows waiting for a batch slot; a growing queue means the server is saturated.",
        "short",
        (
            Query(
                f"sum by (model, version) (shipyard_queue_depth_rows{{{MODEL}}})",
                "{{model}}:{{version}}",
            ),
        ),
    ),
    Panel(
        "Feature drift scores",
        "Per-feature distance between the live window and the reference data.",
        "short",
        (
            Query(
                f"shipyard_feature_drift_score{{{MODEL}}}",
                "{{model}}:{{version}} {{feature}}",
            ),
        ),
    ),
    Panel(
        "Dataset drift share",
        "Share of the features that drifted; the dataset-drift alert fires above its threshold.",
        "percentunit",
        (Query(f"shipyard_dataset_drift_share{{{MODEL}}}", "{{model}}:{{version}}"),),
    ),
    Panel(
        "Prediction drift",
        "Distance between the live and the reference distribution of the model's outputs.",
        "short",
        (Query(f"shipyard_prediction_drift_score{{{MODEL}}}", "{{model}}:{{version}}"),),
    ),
    Panel(
        "Data quality violations",
        "Missing, non-finite, out-of-range or unseen values per second, by feature and kind.",
        "short",
        (
            Query(
                "sum by (model, version, feature, kind) "
                f"(rate(shipyard_data_quality_violations_total{{{MODEL}}}{RATE}))",
                "{{model}}:{{version}} {{feature}} {{kind}}",
            ),
        ),
    ),
    Panel(
        "Model performance",
        "Quality measured on feedback labels, by metric.",
        "short",
        (
            Query(
                f"shipyard_model_performance{{{MODEL}}}",
                "{{model}}:{{version}} {{metric}}",
            ),
        ),
    ),
    Panel(
        "Monitor last evaluation age",
        "Seconds since the monitor last evaluated; drift panels are stale when this grows.",
        "s",
        (
            Query(
                f"time() - shipyard_monitor_last_evaluation_timestamp_seconds{{{MODEL}}}",
                "{{model}}:{{version}}",
            ),
        ),
    ),
)


ROLLOUT_PANELS = (
    Panel(
        "Rollout traffic weight",
        "Share of the model's traffic each version takes while a rollout runs.",
        "percentunit",
        (Query(f"shipyard_rollout_weight{{{MODEL}}}", "{{model}}:{{version}}"),),
        width=GRID_WIDTH,
    ),
    Panel(
        "Rollout phase",
        "The current phase of each model's rollout (pending to succeeded, rolled_back, failed).",
        "none",
        (Query(f"shipyard_rollout_phase{{{MODEL}}} == 1", "{{model}}: {{phase}}"),),
        kind="stat",
        colors=((".*: paused$", "orange"), (".*: (rolling_back|rolled_back|failed)$", "red")),
    ),
    Panel(
        "Rollout checks",
        "The latest result of each check of the rollout analysis: pass, fail or inconclusive.",
        "none",
        (Query(f"shipyard_rollout_check{{{MODEL}}} == 1", "{{model}} {{check}}: {{result}}"),),
        kind="stat",
        colors=((".*: inconclusive$", "blue"), (".*: fail$", "red")),
    ),
)
ROWS = (("Rollouts", ROLLOUT_PANELS),)


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (import it, or provision it from a file)."""
    return {
        "uid": "shipyard",
        "title": "Shipyard",
        "description": "Serving and model health, written by `shipyard deploy grafana`.",
        "tags": ["shipyard"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "timezone": "browser",
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [_datasource_variable(), _model_variable()]},
        "annotations": {"list": []},
        "panels": _layout(),
    }


def render_dashboard() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def _layout() -> list[dict[str, Any]]:
    """The panels left to right on the grid, then each row: its header and its panels."""
    out: list[dict[str, Any]] = []
    x = y = 0

    def place(panel: Panel) -> None:
        nonlocal x, y
        if x + panel.width > GRID_WIDTH:
            x, y = 0, y + PANEL_HEIGHT
        out.append(_panel(len(out) + 1, panel, {"x": x, "y": y, "w": panel.width}))
        x += panel.width

    for panel in PANELS:
        place(panel)
    for title, panels in ROWS:
        y += PANEL_HEIGHT if x else 0
        out.append(_row(len(out) + 1, title, y))
        x, y = 0, y + ROW_HEIGHT
        for panel in panels:
            place(panel)
    return out


def _row(panel_id: int, title: str, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": ROW_HEIGHT},
    }


def _panel(panel_id: int, panel: Panel, position: dict[str, int]) -> dict[str, Any]:
    instant = panel.kind == "stat"
    overrides = [
        {
            "matcher": {"id": "byRegexp", "options": pattern},
            "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}],
        }
        for pattern, color in panel.colors
    ]
    options: dict[str, Any]
    if instant:
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "name",  # the series' name, from the legend: the phase or the result
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
        }
    else:
        options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
    defaults: dict[str, Any] = {"unit": panel.unit}
    if instant:
        defaults["color"] = {"mode": "fixed", "fixedColor": "green"}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {**position, "h": PANEL_HEIGHT},
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": options,
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend,
                "range": not instant,
                "instant": instant,
            }
            for i, query in enumerate(panel.queries)
        ],
    }


def _datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
    }


def _model_variable() -> dict[str, Any]:
    query = "label_values(shipyard_requests_total, model)"
    return {
        "name": "model",
        "label": "Model",
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": "model"},
        "refresh": 2,  # on time range change, so newly deployed models appear
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {},
        "sort": 1,
        "hide": 0,
    }
