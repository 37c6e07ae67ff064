"""``shipyard retrain NAME``: the champion's training command run again on its labelled
traffic, the result gated against the champion and rolled out."""

from __future__ import annotations

import typer
from rich.markup import escape

from shipyard.cli.app import settings_of
from shipyard.cli.output import console, print_json


def retrain(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model to retrain."),
    alias: str = typer.Option("production", help="The champion's alias."),
    since: str | None = typer.Option(None, help="Only traffic since then: 7d, 12h, a date."),
    holdout: float = typer.Option(0.3, help="Share of the labelled traffic held out to gate on."),
    tolerance: float = typer.Option(
        0.0, help="How much worse than the champion the candidate may be (accuracy points)."
    ),
    slice_feature: str | None = typer.Option(None, "--slice", help="Gate per slice of this input."),
    strategy: str = typer.Option(
        "canary", help="Roll a passing candidate out: canary, blue-green, ab, shadow or none."
    ),
    interval: str | None = typer.Option(None, help="The rollout's analysis interval: 30s, 1m..."),
    steps: str | None = typer.Option(None, help="Canary weights in percent, e.g. 5,25,50."),
    min_samples: int | None = typer.Option(None, help="The rollout's requests per version."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Retrain NAME: run its recorded training command on the traffic it served and the
    labels that came back, gate the new version offline against the champion (overall and
    per slice), then start a rollout of it (a running server carries the rollout out)."""
    import sys

    from shipyard.cli.rollout import percents
    from shipyard.monitor.export import parse_duration, parse_since
    from shipyard.registry import Registry
    from shipyard.retrain import RetrainOptions
    from shipyard.retrain import retrain as run_retrain

    rollout: dict[str, object] = {}
    if interval is not None:
        rollout["interval_s"] = parse_duration(interval)
    if steps is not None:
        rollout["steps"] = percents(steps)
    if min_samples is not None:
        rollout["min_samples"] = min_samples
    options = RetrainOptions(
        alias=alias,
        since=parse_since(since) if since else None,
        holdout=holdout,
        tolerance=tolerance,
        slice_feature=slice_feature,
        strategy=None if strategy == "none" else strategy,
        rollout=rollout,
    )
    with Registry(settings_of(ctx)) as registry:
        result = run_retrain(
            registry,
            name,
            options,
            echo=sys.stderr if json_output else None,
            on_run=lambda run: console.print(f"[dim]training run {run.id} started[/]"),
        )
    if json_output:
        print_json(
            {
                "champion": result.champion.ref,
                "run": result.run.id,
                "rows": result.data.rows,
                "candidate": result.candidate.ref if result.candidate else None,
                "gate": result.gate.to_dict() if result.gate else None,
                "rollout": result.rollout.id if result.rollout else None,
            }
        )
    else:
        gate = result.gate
        candidate = result.candidate.ref if result.candidate else "-"
        console.print(
            f"retrained [bold]{result.champion.ref}[/] on {result.data.rows} rows "
            f"(run {result.run.id[:8]}): candidate [bold]{candidate}[/]",
            highlight=False,
        )
        if gate is not None:
            verdict = "[green]passed[/]" if gate.passed else "[red]refused[/]"
            console.print(f"gate {verdict}: {escape(gate.reason)}", highlight=False)
            for score in gate.slices:
                mark = {True: "pass", False: "FAIL", None: "too few rows"}[score.passed]
                console.print(
                    f"  {escape(score.slice)}: {gate.metric} {score.candidate:.4g} vs "
                    f"{score.champion:.4g} on {score.rows} rows — {mark}",
                    highlight=False,
                )
        if result.rollout is not None:
            console.print(
                f"rollout {result.rollout.id} ({result.rollout.strategy}) started: "
                f"`shipyard rollout status {name}` follows it",
                highlight=False,
            )
    if not result.passed:
        raise typer.Exit(1)
