"""``shipyard optimize``: a faster version of a registered model, proven on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.cli.app import settings_of
from shipyard.cli.output import (
    console,
    human_size,
    name_column,
    print_json,
    progress_bars,
    table,
    value_column,
)


def optimize(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS."),
    eval_data: Path | None = typer.Option(
        None, help="Evaluation inputs (default: the version's reference data)."
    ),
    labels: Path | None = typer.Option(None, help="Ground truth for the evaluation inputs."),
    tolerance: float = typer.Option(0.01, help="Accuracy a candidate may lose (relative)."),
    min_speedup: float = typer.Option(1.2, help="How much faster a candidate must be."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Try graph fusion and int8 quantization; register the fastest candidate that passes."""
    from shipyard.optimize import optimize as run_optimize
    from shipyard.optimize.report import describe
    from shipyard.registry import Registry

    with Registry(settings_of(ctx)) as registry, progress_bars(not json_output) as progress:
        report = run_optimize(
            ref,
            eval_data=eval_data,
            labels=labels,
            tolerance=tolerance,
            min_speedup=min_speedup,
            registry=registry,
            progress=progress,
        )
    if json_output:
        print_json(report.to_dict())
        return
    flags = ", ".join(report.cpu["flags"]) or "none"
    pinned = (
        f" (pinned by SHIPYARD_CPU_FEATURES={report.cpu['pinned']})"
        if "pinned" in report.cpu
        else ""
    )
    console.print(
        f"{report.parent}: {report.task}, {report.eval_rows} evaluation rows, "
        f"typical batch {report.typical_batch}, CPU {flags}{pinned}",
        highlight=False,
    )
    if report.held_out_rows < report.eval_rows:
        console.print(
            f"accuracy judged on {report.held_out_rows} held-out rows; the other "
            f"{report.eval_rows - report.held_out_rows} fit calibration, smoothing and the "
            "sensitivity ranking",
            highlight=False,
        )
    candidates = table(
        name_column("candidate"), "size", value_column("quality"), "speedup b=1", "speedup typical",
        value_column("verdict"),
    )  # fmt: skip
    for c in report.candidates:
        if c.skipped:
            continue
        quality = describe(c.quality, against_parent=False) if c.quality else "-"
        candidates.add_row(
            c.recipe.name,
            human_size(c.size_bytes) if c.size_bytes else "-",
            quality,
            f"{c.speedup_batch1:.2f}x" if c.speedup_batch1 else "-",
            f"{c.speedup_typical:.2f}x" if c.speedup_typical else "-",
            c.reason,
        )
    console.print(candidates)
    for c in report.candidates:
        if c.skipped:
            console.print(c.reason, highlight=False)
    console.print(report.verdict, highlight=False)
