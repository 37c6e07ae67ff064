"""``shipyard rollout``: start a rollout of a model's next version, watch it, and step in.

A running ``shipyard serve`` drives the rollout (the replica holding its lease); these
commands write to the registry and read from it, so they work from any machine that
reaches the database.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from shipyard.cli.app import settings_of
from shipyard.cli.output import console, name_column, print_json, table, value_column

app = typer.Typer(
    help="Roll out the next version: canary, blue-green, A/B or shadow.",
    no_args_is_help=True,
    add_completion=False,
)

NAME = typer.Argument(..., help="The model's name.")
JSON_OUTPUT = typer.Option(False, "--json", help="Print JSON.")
WATCH_EVERY_S = 1.0


@app.command()
def start(
    ctx: typer.Context,
    name: str = NAME,
    candidate: int = typer.Option(..., "--candidate", help="The version to roll out."),
    strategy: str = typer.Option("canary", help="canary, blue-green, ab or shadow."),
    steps: str | None = typer.Option(None, help="Canary weights in percent, e.g. 5,10,25,50."),
    interval: str | None = typer.Option(None, help="One analysis per interval: 60s, 2m..."),
    deadline: str | None = typer.Option(None, help="A step with no decision by then rolls back."),
    max_failed_checks: int | None = typer.Option(None, help="Failed analyses that roll back."),
    max_p99_ms: float | None = typer.Option(None, help="An absolute SLO on the candidate's p99."),
    max_error_ratio: float | None = typer.Option(
        None, help="How much higher the candidate's error ratio may be than the baseline's."
    ),
    sticky_header: str | None = typer.Option(None, help="Route each value of it to one version."),
    goal: str | None = typer.Option(None, help="A/B: accuracy, mae or latency."),
    split: float | None = typer.Option(None, help="A/B: the candidate's share in percent."),
    mirror: float | None = typer.Option(None, help="Shadow, blue-green: percent mirrored."),
    min_samples: int | None = typer.Option(None, help="Requests per version before deciding."),
    slice_feature: str | None = typer.Option(
        None, help="Break agreement down by this input (NAME or NAME[column])."
    ),
    alias: str | None = typer.Option(None, help="The alias a promotion moves (production)."),
    prediction_drift: bool = typer.Option(
        True,
        "--prediction-drift/--no-prediction-drift",
        help="Fail a candidate whose answers drift from the baseline's (off for one meant to "
        "answer differently, judged on its labels).",
    ),
    json_output: bool = JSON_OUTPUT,
) -> None:
    """Start a rollout; a running server carries it out."""
    from shipyard.monitor.export import parse_duration
    from shipyard.registry import Registry
    from shipyard.rollout import service

    chosen: dict[str, Any] = {
        "strategy": strategy,
        "steps": percents(steps) if steps is not None else None,
        "interval_s": parse_duration(interval) if interval is not None else None,
        "deadline_s": parse_duration(deadline) if deadline is not None else None,
        "failure_threshold": max_failed_checks,
        "max_p99_ms": max_p99_ms,
        "max_error_ratio_increase": max_error_ratio,
        "sticky_header": sticky_header,
        "goal": goal,
        "split": split / 100 if split is not None else None,
        "mirror": mirror / 100 if mirror is not None else None,
        "min_samples": min_samples,
        "slice_feature": slice_feature,
        "alias": alias,
        "prediction_drift": None if prediction_drift else False,
    }
    settings = settings_of(ctx)
    with Registry(settings) as registry:
        rollout = service.start(
            registry,
            name,
            candidate,
            {key: value for key, value in chosen.items() if value is not None},
            actor=settings.actor,
        )
    if json_output:
        print_json(rollout)
        return
    console.print(
        f"rollout {rollout.id} of {name}: {rollout.baseline} -> {rollout.candidate} "
        f"({rollout.strategy}) is {rollout.state}; a running server carries it out",
        highlight=False,
    )


@app.command()
def status(
    ctx: typer.Context,
    name: str = NAME,
    watch: bool = typer.Option(False, "--watch", help="Refresh until the rollout finishes."),
    json_output: bool = JSON_OUTPUT,
) -> None:
    """The rollout's phase, weight and each check of its latest analysis."""
    from shipyard.registry import Registry
    from shipyard.rollout import service

    with Registry(settings_of(ctx)) as registry:
        rollout = service.latest(registry, name)
        if json_output:
            print_json(rollout)
            return
        _show(rollout)
        while watch and rollout.finished_at is None:
            time.sleep(WATCH_EVERY_S)
            latest = service.latest(registry, name)
            if latest.revision != rollout.revision or latest.analysis != rollout.analysis:
                _show(latest)
            rollout = latest


@app.command()
def promote(ctx: typer.Context, name: str = NAME) -> None:
    """Promote the candidate now, whatever the checks say."""
    _request(ctx, name, "promote")


@app.command()
def abort(ctx: typer.Context, name: str = NAME) -> None:
    """Roll back now: the candidate gets no traffic, the alias stays."""
    _request(ctx, name, "abort")


@app.command()
def resume(ctx: typer.Context, name: str = NAME) -> None:
    """Resume a paused rollout (a sample-ratio mismatch pauses one), with a new step clock."""
    _request(ctx, name, "resume")


@app.command()
def undo(ctx: typer.Context, name: str = NAME) -> None:
    """Point the alias back at the version the last promotion replaced, at once."""
    from shipyard.registry import Registry
    from shipyard.rollout import service

    settings = settings_of(ctx)
    with Registry(settings) as registry:
        undone = service.undo(registry, name, actor=settings.actor)
    console.print(
        f"{undone.model}@{undone.alias}: {undone.from_version} -> {undone.to_version} "
        f"(undid rollout {undone.rollout})",
        highlight=False,
    )


@app.command()
def history(ctx: typer.Context, name: str = NAME, json_output: bool = JSON_OUTPUT) -> None:
    """Every rollout of the model, oldest first."""
    from shipyard.registry import Registry

    with Registry(settings_of(ctx)) as registry:
        registry.get_model(name)
        rollouts = registry.rollouts.history(name)
    if json_output:
        print_json(rollouts)
        return
    rows = table(
        "id",
        name_column("strategy"),
        "baseline",
        "candidate",
        name_column("state"),
        "weight",
        value_column("reason"),
    )
    for rollout in rollouts:
        rows.add_row(
            str(rollout.id),
            rollout.strategy,
            str(rollout.baseline),
            str(rollout.candidate),
            rollout.state,
            f"{rollout.weight:.0%}",
            (rollout.analysis or {}).get("reason", ""),
        )
    console.print(rows)


def _request(ctx: typer.Context, name: str, command: str) -> None:
    from shipyard.registry import Registry
    from shipyard.rollout import service

    settings = settings_of(ctx)
    with Registry(settings) as registry:
        rollout = service.request(registry, name, command, actor=settings.actor)
    console.print(
        f"rollout {rollout.id} of {name}: {command} requested; its controller carries it out "
        "at its next tick",
        highlight=False,
    )


def percents(text: str) -> list[float]:
    from shipyard.errors import InvalidInputError

    try:
        return [float(part) / 100 for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInputError(
            f"steps are percentages separated by commas, like 5,10,25,50; got {text!r}"
        ) from None


def _show(rollout: Any) -> None:
    analysis = rollout.analysis or {}
    console.print(
        f"rollout {rollout.id} of {rollout.model} ({rollout.strategy}): {rollout.state}, "
        f"{rollout.weight:.0%} to {rollout.candidate} (baseline {rollout.baseline}), "
        f"step {rollout.step}, {rollout.failures} failed analyses",
        highlight=False,
    )
    if analysis.get("reason"):
        console.print(f"latest analysis: {analysis['reason']}", highlight=False)
    checks = analysis.get("checks") or {}
    if not checks:
        return
    rows = table(
        name_column("check"), "result", value_column("estimate"), value_column("interval"),
        value_column("p-value"), "n cand", "n base", value_column("reason"),
    )  # fmt: skip
    for check_name, check in checks.items():
        low, high = check.get("low"), check.get("high")
        interval = f"[{low:.4g}, {high:.4g}]" if low is not None and high is not None else "-"
        estimate = check.get("estimate")
        rows.add_row(
            check_name,
            str(check.get("outcome")),
            f"{estimate:.4g}" if isinstance(estimate, int | float) else "-",
            interval,
            f"{check.get('p_value', 1.0):.3g}",
            str(check.get("n_candidate", "")),
            str(check.get("n_baseline", "")),
            str(check.get("reason", "")),
        )
    console.print(rows)
