"""``shipyard optimize``: a faster version of a registered model, proven on this machine."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from shipyard.cli.app import settings_of
from shipyard.cli.output import console, human_size, print_json, progress_bars


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
    console.print(
        f"{report.parent}: {report.task}, {report.eval_rows} evaluation rows, "
        f"typical batch {report.typical_batch}, CPU {flags}",
        highlight=False,
    )
    table = Table("candidate", "size", "quality", "speedup b=1", "speedup typical", "verdict")
    for c in report.candidates:
        quality = (
            f"{c.quality.metric} {c.quality.candidate:.4f}"
            + (
                f" (worst {c.quality.details['worst_cosine']:.4f})"
                if "worst_cosine" in c.quality.details
                else ""
            )
            if c.quality
            else "-"
        )
        table.add_row(
            c.recipe.name,
            human_size(c.size_bytes) if c.size_bytes else "-",
            quality,
            f"{c.speedup_batch1:.2f}x" if c.speedup_batch1 else "-",
            f"{c.speedup_typical:.2f}x" if c.speedup_typical else "-",
            c.reason,
        )
    console.print(table)
    if report.registered is not None:
        console.print(
            f"registered [bold]{report.registered.ref}[/] from {report.parent}", highlight=False
        )
    else:
        console.print("no candidate passed both gates; nothing was registered")
