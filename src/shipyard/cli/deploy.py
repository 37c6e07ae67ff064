"""``shipyard deploy``: configuration for the monitoring stack (Prometheus rules, Grafana)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from shipyard.cli.output import console
from shipyard.deploy import RuleOptions, render_dashboard, render_rules, write_text
from shipyard.registry.names import validate_name

app = typer.Typer(
    help="Write monitoring configuration: alert rules, dashboards.",
    no_args_is_help=True,
    add_completion=False,
)

OUT_OPTION = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout.")


def _emit(text: str, out: Path | None, what: str) -> None:
    # sys.stdout, not the Rich console: PromQL's [5m] would be read as console markup.
    if out is None:
        sys.stdout.write(text)
        return
    write_text(out, text)
    console.print(f"wrote {what} to {out}", highlight=False, markup=False, soft_wrap=True)


@app.command("prometheus-rules")
def prometheus_rules(
    out: Path | None = OUT_OPTION,
    model: str | None = typer.Option(None, "--model", help="Only alert on this model."),
    drift_share: float = typer.Option(
        0.5, help="Share of drifted features that raises ShipyardDatasetDrift, in (0, 1]."
    ),
    stale_seconds: float = typer.Option(
        300.0, help="Seconds without a monitor evaluation that raise ShipyardMonitorStale."
    ),
    performance_drop: float = typer.Option(
        0.05, help="Relative accuracy drop against a day ago that raises ShipyardPerformanceDrop."
    ),
) -> None:
    """A Prometheus rule file: error ratio, p99 latency, drift, monitor freshness, accuracy."""
    options = RuleOptions(
        model=validate_name(model) if model is not None else None,
        drift_share=drift_share,
        stale_seconds=stale_seconds,
        performance_drop=performance_drop,
    )
    _emit(render_rules(options), out, "Prometheus rules")


@app.command()
def grafana(out: Path | None = OUT_OPTION) -> None:
    """A Grafana dashboard (JSON): traffic, latency, batching, drift, quality, performance."""
    _emit(render_dashboard(), out, "Grafana dashboard")
