"""``shipyard monitor``: drift, data quality and performance of served models."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.cli.app import settings_of
from shipyard.cli.output import console, name_column, print_json, table, value_column

app = typer.Typer(
    help="Watch served models: drift, data quality, feedback.",
    no_args_is_help=True,
    add_completion=False,
)

SHORT = {"out_of_range": "range", "unseen_category": "unseen", "nonfinite": "nan/inf"}
PERIOD = typer.Option("1h", "--period", help="Recent traffic to evaluate: 30m, 1h, 7d...")


@app.command()
def status(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS."),
    period: str = PERIOD,
    json_output: bool = typer.Option(False, "--json", help="Print the evaluation as JSON."),
) -> None:
    """A table of each column's drift and quality over recent traffic."""
    from shipyard.monitor.api import status as evaluate
    from shipyard.registry import Registry

    with Registry(settings_of(ctx)) as registry:
        current = evaluate(registry, ref, period)
    evaluation = current.evaluation
    if json_output:
        print_json(evaluation.to_dict())
        return
    console.print(
        f"{current.version.ref}: {evaluation.rows} rows in {evaluation.requests} requests "
        f"since {evaluation.since:%Y-%m-%d %H:%M:%S} UTC",
        highlight=False,
    )
    if current.reference is None:
        console.print("no reference profile (registered without reference data)")
    if evaluation.drift is None:
        console.print("no traffic in this period: nothing to compare yet")
    else:
        drift = evaluation.drift
        # column names are what people look for: one line each, in a terminal or in a log
        drift_table = table(
            name_column("column"),
            "role",
            "method",
            value_column("score"),
            value_column("threshold"),
            "drift",
            value_column("quality"),
        )
        for c in [*drift.columns, *drift.predictions]:
            quality = ", ".join(
                f"{SHORT.get(k, k)} {v}"
                for k, v in evaluation.quality.get(c.column, {}).items()
                if v
            )
            drift_table.add_row(
                c.column,
                c.role,
                c.method,
                f"{c.score:.3g}",
                f"{c.threshold:.3g}",
                "[red]yes[/]" if c.drifted else "no",
                quality or "-",
            )
        console.print(drift_table)
        verdict = "[red]drifted[/]" if drift.dataset_drift else "no drift"
        console.print(
            f"dataset: {verdict} ({drift.drifted_share:.0%} of input columns, threshold "
            f"{drift.thresholds.drift_share:.0%}); prediction drift {drift.prediction_drift:.4f}"
        )
    if evaluation.performance:
        scores = ", ".join(f"{k} {v:.4g}" for k, v in evaluation.performance.items())
        console.print(f"performance from feedback: {scores}", highlight=False)


@app.command()
def report(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="The HTML file to write."),
    period: str = PERIOD,
) -> None:
    """Write one self-contained HTML report: drift table, histograms, traffic, performance."""
    from shipyard.monitor.api import write_report
    from shipyard.registry import Registry

    with Registry(settings_of(ctx)) as registry:
        current = write_report(registry, ref, out, period)
    note = "" if current.evaluation.rows else " (no traffic yet: reference profile only)"
    console.print(f"wrote {out}{note}", highlight=False)


@app.command()
def export(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME (every version), NAME:VERSION or NAME@ALIAS."),
    out: Path = typer.Option(..., "--out", "-o", help="A .parquet or .csv file."),
    since: str | None = typer.Option(None, help="Only from then: 7d, 12h, or an ISO date."),
    labelled_only: bool = typer.Option(False, help="Only rows that have a label."),
) -> None:
    """Export logged predictions (and inputs, labels) as the next training set."""
    from shipyard.monitor.api import export as run_export
    from shipyard.registry import Registry

    with Registry(settings_of(ctx)) as registry:
        rows = run_export(registry, ref, out, since, labelled_only)
    console.print(f"wrote {rows} rows to {out}", highlight=False)
