"""``shipyard runs list|show|compare`` and ``shipyard run -- COMMAND``: training runs, what
they were given and what they measured."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.app import settings_of
from shipyard.cli.output import console, err_console, human_size, print_json

app = typer.Typer(
    help="Training runs: params, metrics, data, code and lineage.",
    no_args_is_help=True,
    add_completion=False,
)

JSON_OUTPUT = typer.Option(False, "--json", help="Print JSON.")
SHORT_ID = 8
OUTPUT_TAIL_LINES = 20
PLOT_WIDTH = 100  # a plot's width where no terminal says


def run(
    ctx: typer.Context,
    command: list[str] = typer.Argument(..., help="The command, after --."),
    experiment: str = typer.Option("default", "--experiment", "-e", help="The run's experiment."),
    param: list[str] = typer.Option([], "--param", "-p", help="KEY=VALUE (repeatable)."),
    params_file: Path | None = typer.Option(
        None, "--params", help="Params from a .json, .toml or .yaml file (flags win)."
    ),
) -> None:
    """Run a command as a tracking run: its params, output and exit status are kept, and the
    versions it registers are linked to it. The command's exit status is this one's."""
    from shipyard.registry import Registry
    from shipyard.tracking.command import parse_param, read_params_file, run_command

    params: dict[str, Any] = read_params_file(params_file) if params_file else {}
    params.update(parse_param(item) for item in param)
    with Registry(settings_of(ctx)) as registry:
        finished = run_command(
            registry,
            command,
            experiment=experiment,
            params=params,
            on_start=lambda r: console.print(f"[dim]run {r.id} started[/]", highlight=False),
        )
    run_ = finished.run
    console.print(
        f"[dim]run {run_.id} {run_.status}"
        + (f" ({escape(run_.error)})" if run_.error else "")
        + "[/]",
        highlight=False,
    )
    raise typer.Exit(finished.exit_code if finished.exit_code >= 0 else 128 - finished.exit_code)


@app.command("list")
def list_runs(
    ctx: typer.Context,
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="Only this one."),
    status: str | None = typer.Option(None, help="running, finished, failed or killed."),
    limit: int = typer.Option(50, help="At most this many, newest first (0: all)."),
    json_output: bool = JSON_OUTPUT,
) -> None:
    """List runs, newest first."""
    from shipyard.registry import Registry

    with Registry(settings_of(ctx)) as registry:
        runs = registry.runs.search(experiment=experiment, status=status, limit=limit or None)
        if limit and len(runs) == limit:
            _say_cut(len(runs), registry.runs.count(experiment=experiment, status=status), "runs")
    if json_output:
        print_json([_run_document(r) for r in runs])
        return
    if not runs:
        console.print("no runs yet")
        return
    table = Table("run", "experiment", "status", "started", "duration", "metrics")
    for r in runs:
        table.add_row(
            r.id[:SHORT_ID],
            escape(r.experiment),
            r.status,
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            _duration(r.duration_s),
            escape(", ".join(f"{k}={_figure(v[0])}" for k, v in list(r.latest.items())[:4])),
        )
    console.print(table)


@app.command()
def show(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="A run id, or its first characters."),
    json_output: bool = JSON_OUTPUT,
) -> None:
    """Show a run: params, metrics, data, code, environment, files and versions."""
    from shipyard.registry import Registry

    with Registry(settings_of(ctx)) as registry:
        r = registry.runs.get(run_id)
        datasets = registry.runs.datasets(r.id)
        files = registry.runs.files(r.id)
        versions = registry.runs.versions_of(r.id)
        output = next((f for f in files if f.path == "output.log"), None)
        tail = (
            registry.artifacts.read_verified(output.digest, "output.log").decode(errors="replace")
            if output is not None
            else None
        )
    if json_output:
        document = _run_document(r)
        document.update(
            datasets=datasets,
            files=files,
            versions=[f"{name}:{version}" for name, version in versions],
        )
        print_json(document)
        return
    console.print(f"[bold]run {r.id}[/]  {escape(r.experiment)}, {r.status}", highlight=False)
    code = r.code
    commit = (
        f"{code['git'][:12]}"
        + (" (dirty, diff " + code["diff_sha256"][:12] + ")" if code.get("dirty") else "")
        if code.get("git")
        else "not in git"
    )
    facts = [
        ("started", f"{r.started_at.isoformat(timespec='seconds')} by {r.created_by or '-'}"),
        ("duration", _duration(r.duration_s)),
        ("code", commit),
        (
            "environment",
            f"Python {r.environment.get('python')}, "
            + ", ".join(f"{k} {v}" for k, v in r.environment.get("packages", {}).items()),
        ),
        (
            "lock",
            f"{r.environment.get('lock')} sha256 {str(r.environment.get('lock_sha256'))[:12]}",
        ),
    ]
    if r.command:
        facts.append(("command", " ".join(r.command["argv"]) + f"  (in {r.command['cwd']})"))
    if r.exit_code is not None:
        facts.append(("exit status", str(r.exit_code)))
    if r.error:
        facts.append(("error", r.error.splitlines()[-1] if r.error else "-"))
    facts.append(("versions", ", ".join(f"{n}:{v}" for n, v in versions) or "-"))
    grid = Table.grid(padding=(0, 2))
    for key, value in facts:
        grid.add_row(f"[dim]{key}[/]", escape(value))
    console.print(grid)
    _print_mapping("params", r.params)
    _print_mapping(
        "metrics (latest)", {k: f"{_figure(v)} at step {s}" for k, (v, s) in r.latest.items()}
    )
    if datasets:
        table = Table("dataset", "rows", "columns", "sha256", "source", title="datasets")
        for d in datasets:
            columns = d.columns if isinstance(d.columns, int) else len(d.columns)
            table.add_row(
                escape(d.name),
                str(d.rows),
                str(columns),
                d.digest[:16] + "…",
                escape(d.source or "-"),
            )
        console.print(table)
    if files:
        table = Table("file", "size", "sha256", title="files")
        for f in files:
            table.add_row(escape(f.path), human_size(f.size), f.digest[:16] + "…")
        console.print(table)
    if tail:
        console.print("[dim]output (last lines)[/]")
        console.print(
            escape("\n".join(tail.rstrip().splitlines()[-OUTPUT_TAIL_LINES:])), highlight=False
        )


@app.command()
def compare(
    ctx: typer.Context,
    run_ids: list[str] = typer.Argument(None, help="Runs (ids or their first characters)."),
    experiment: list[str] = typer.Option([], "--experiment", "-e", help="Every run of these."),
    plot: str | None = typer.Option(None, "--plot", help="Draw this metric over its steps."),
    all_params: bool = typer.Option(False, "--all-params", help="Show params that agree too."),
    limit: int = typer.Option(
        50, help="At most this many runs of each experiment, the newest (0: all)."
    ),
    json_output: bool = JSON_OUTPUT,
) -> None:
    """Put runs side by side, across experiments: the params that differ and every metric;
    ``--plot KEY`` draws that metric over the steps of each run."""
    from shipyard.errors import InvalidInputError
    from shipyard.registry import Registry
    from shipyard.tracking.compare import compare as line_up
    from shipyard.tracking.compare import plot as draw

    with Registry(settings_of(ctx)) as registry:
        chosen = [registry.runs.get(run_id) for run_id in run_ids or []]
        for name in experiment:
            found = registry.runs.search(experiment=name, limit=limit or None)
            if limit and len(found) == limit:
                _say_cut(len(found), registry.runs.count(experiment=name), f"runs of {name}")
            chosen += found
        if not chosen:
            raise InvalidInputError("name the runs to compare, or an --experiment")
        unique = list({r.id: r for r in chosen}.values())
        history = registry.runs.history([r.id for r in unique], plot) if plot else {}
    comparison = line_up(unique, all_params=all_params)
    if json_output:
        print_json(
            {
                "runs": [_run_document(r) for r in unique],
                "differing_params": sorted(comparison.differing),
                "history": {k: [(p.step, p.value) for p in v] for k, v in history.items()},
            }
        )
        return
    table = Table("run", "experiment", "status", *comparison.params, *comparison.metrics)
    for r in unique:
        table.add_row(
            r.id[:SHORT_ID],
            escape(r.experiment),
            r.status,
            *(escape(_cell(comparison.param(r, k))) for k in comparison.params),
            *(_figure(comparison.metric(r, k)) for k in comparison.metrics),
        )
    console.print(table)
    if plot:
        width = console.width if console.is_terminal else PLOT_WIDTH
        series = {f"{r.id[:SHORT_ID]} {r.experiment}": history.get(r.id, []) for r in unique}
        console.print(f"[bold]{escape(plot)}[/] over steps", highlight=False)
        console.print(escape("\n".join(draw(series, width=width))), highlight=False, soft_wrap=True)


def _say_cut(shown: int, total: int, what: str) -> None:
    # On stderr, so that a pipe or --json reads the runs alone; a table of thousands of
    # runs is unreadable (and Rich takes seconds to draw it), so the newest come first.
    if total > shown:
        err_console.print(
            f"[dim]the newest {shown} of {total:,} {escape(what)}: "
            "--limit N for more, 0 for all[/]",
            highlight=False,
        )


def _print_mapping(title: str, values: dict[str, Any]) -> None:
    if not values:
        return
    table = Table("name", "value", title=title)
    for key, value in values.items():
        table.add_row(escape(key), escape(_cell(value)))
    console.print(table)


def _run_document(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "experiment": r.experiment,
        "status": r.status,
        "params": r.params,
        "metrics": {k: v[0] for k, v in r.latest.items()},
        "tags": r.tags,
        "code": r.code,
        "environment": r.environment,
        "command": r.command,
        "exit_code": r.exit_code,
        "error": r.error,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "created_by": r.created_by,
    }


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    return f"{value:.4g}"


def _cell(value: Any) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
