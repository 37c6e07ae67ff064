"""The Grafana dashboard: serving and model health of the models a Prometheus scrapes.

One row of two panels per concern, all filtered by a ``model`` variable filled from
``shipyard_requests_total``, and a ``datasource`` variable so the JSON imports into any
Grafana without editing. Queries use ``$__rate_interval`` so rates stay correct whatever the
scrape interval.
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


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]


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
        "panels": [_panel(i, panel) for i, panel in enumerate(PANELS)],
    }


def render_dashboard() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def _panel(index: int, panel: Panel) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {
            "x": (index % 2) * PANEL_WIDTH,
            "y": (index // 2) * PANEL_HEIGHT,
            "w": PANEL_WIDTH,
            "h": PANEL_HEIGHT,
        },
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend,
                "range": True,
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
