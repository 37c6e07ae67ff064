"""``shipyard models``: register, list, show, alias, verify and delete model versions."""

from __future__ import annotations

from pathlib import Path

import typer

import shipyard
from shipyard.cli.app import settings_of
from shipyard.cli.output import (
    JSON_OPTION,
    console,
    facts,
    human_size,
    name_column,
    print_json,
    progress_bars,
    table,
    value_column,
)
from shipyard.errors import InvalidInputError
from shipyard.formats import DEFAULT_TOLERANCE, FLAVORS, RegistrationOptions, TextOptions
from shipyard.registry import Model, ModelRef, ModelVersion, Registry
from shipyard.registry.lineage import Lineage, lineage_of

app = typer.Typer(
    help="Register and manage model versions.", no_args_is_help=True, add_completion=False
)


def _pairs(values: list[str], what: str) -> dict[str, str]:
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"{what} {item!r} is not KEY=VALUE")
        result[key] = value
    return result


def _metrics(values: list[str]) -> dict[str, float]:
    result = {}
    for key, value in _pairs(values, "--metric").items():
        try:
            result[key] = float(value)
        except ValueError:
            raise InvalidInputError(
                f"--metric {key}={value!r}: the value must be a number"
            ) from None
    return result


@app.command()
def register(
    ctx: typer.Context,
    source: Path = typer.Argument(
        ..., help="An .onnx file, a Hugging Face model folder or a pickle."
    ),
    name: str = typer.Option(..., "--name", "-n", help="Model name, e.g. fraud-detector."),
    flavor: str | None = typer.Option(
        None, help=f"One of {', '.join(FLAVORS)} (default: detected)."
    ),
    reference_data: Path | None = typer.Option(
        None, help="Baseline data (.npy, .csv, .parquet; .txt lines for text models)."
    ),
    example_input: Path | None = typer.Option(
        None, help="Input example (.npy, .json, .csv, .txt)."
    ),
    alias: str | None = typer.Option(None, help="Point this alias at the new version."),
    tolerance: float = typer.Option(DEFAULT_TOLERANCE, help="Parity tolerance of the conversion."),
    allow_parity_failure: bool = typer.Option(False, help="Register even if parity fails."),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Allow loading a pickle (unpickling runs the file's code)."
    ),
    tag: list[str] = typer.Option([], help="KEY=VALUE, repeatable."),
    metric: list[str] = typer.Option([], help="KEY=NUMBER, repeatable."),
    tokenizer: Path | None = typer.Option(
        None, help="tokenizer.json: serve this ONNX encoder as a text-embedding model."
    ),
    pooling: str = typer.Option("mean", help="With --tokenizer: mean or cls pooling."),
    normalize: bool = typer.Option(True, help="With --tokenizer: L2-normalise the vectors."),
    max_length: int | None = typer.Option(None, help="With --tokenizer: truncation length."),
    run_id: str | None = typer.Option(None, help="The training run that produced the model."),
    description: str | None = typer.Option(None, help="Describes the model (first version only)."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Convert a model to ONNX, check parity, and store it as the next version."""
    settings = settings_of(ctx)
    if not source.exists():
        raise InvalidInputError(f"model file {source} does not exist")
    options = RegistrationOptions(
        flavor=flavor,
        reference_data=reference_data,
        example_input=example_input,
        alias=alias,
        tolerance=tolerance,
        allow_parity_failure=allow_parity_failure,
        trust_pickle=trust_pickle,
        text=TextOptions(tokenizer, pooling, normalize, max_length) if tokenizer else None,
        tags=_pairs(tag, "--tag"),
        metrics=_metrics(metric),
        run_id=run_id,
        description=description,
    )
    with Registry(settings) as registry, progress_bars(not json_output) as progress:
        version = shipyard.register(  # the reference profile is built here too
            source, name, options=options, registry=registry, progress=progress
        )
    if json_output:
        print_json(version)
        return
    parity = version.conversion.get("parity")
    note = f", parity {parity['metric']} {parity['value']:.3g}" if parity else ""
    aliases = f" as @{', @'.join(version.aliases)}" if version.aliases else ""
    console.print(
        f"registered [bold]{version.ref}[/]{aliases} ({version.flavor}, "
        f"{human_size(version.size_bytes)}{note})",
        highlight=False,
    )


@app.command("list")
def list_models(ctx: typer.Context, json_output: bool = JSON_OPTION) -> None:
    """List models with their latest version and aliases."""
    with Registry(settings_of(ctx)) as registry:
        models = registry.list_models()
    if json_output:
        print_json(models)
        return
    rows = table(
        name_column("name"), "latest", value_column("aliases"), "created", name_column("by")
    )
    for model in models:
        rows.add_row(
            model.name,
            str(model.latest_version or "-"),
            ", ".join(f"{a}→{v}" for a, v in model.aliases.items()) or "-",
            model.created_at.strftime("%Y-%m-%d %H:%M"),
            model.created_by or "-",
        )
    console.print(rows if models else "no models registered yet")


@app.command()
def show(ctx: typer.Context, ref: str, json_output: bool = JSON_OPTION) -> None:
    """Show a model (NAME) with its versions, or one version (NAME:VERSION, NAME@ALIAS)."""
    parsed = ModelRef.parse(ref)
    with Registry(settings_of(ctx)) as registry:
        if parsed.version is None and parsed.alias is None:
            model = registry.get_model(parsed.name)
            versions = registry.list_versions(parsed.name)
            events = registry.events(parsed.name, limit=20)
            if json_output:
                print_json({"model": model, "versions": versions, "events": events})
            else:
                _show_model(model, versions)
            return
        version = registry.get_version(parsed)
        if json_output:
            print_json(version)
            return
        history = lineage_of(registry, version)
    _show_version(version)
    _show_lineage(history)


def _show_model(model: Model, versions: list[ModelVersion]) -> None:
    console.print(
        f"[bold]{model.name}[/]" + (f" — {model.description}" if model.description else "")
    )
    rows = table(
        "version",
        value_column("aliases"),
        name_column("flavor"),
        "size",
        value_column("parity"),
        "created",
        name_column("by"),
    )
    for v in versions:
        parity = v.conversion.get("parity")
        rows.add_row(
            str(v.version),
            ", ".join(v.aliases) or "-",
            v.flavor,
            human_size(v.size_bytes),
            f"{parity['metric']} {parity['value']:.3g}" if parity else "-",
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            v.created_by or "-",
        )
    console.print(rows)


def _show_version(v: ModelVersion) -> None:
    console.print(
        f"[bold]{v.ref}[/]  {v.kind.value}, {v.flavor}, {v.status.value}", highlight=False
    )
    rows = [
        ("aliases", ", ".join(v.aliases) or "-"),
        ("artifact digest", v.artifact_digest),
        ("created", f"{v.created_at.isoformat(timespec='seconds')} by {v.created_by or '-'}"),
        ("run id", v.run_id or "-"),
        ("parent version", str(v.parent_version) if v.parent_version else "-"),
    ]
    parity = v.conversion.get("parity")
    if parity:
        verdict = "passed" if parity["passed"] else "FAILED (allowed)"
        rows.append(
            (
                "parity",
                f"{parity['metric']} {parity['value']:.6g} on {parity['rows']} rows, "
                f"tolerance {parity['tolerance']:g}: {verdict}",
            )
        )
    optimization = v.conversion.get("optimization")
    if optimization:
        quality = optimization.get("quality") or {}
        rows.append(
            ("optimized from", f"{optimization['parent']}: {optimization['recipe']['name']}")
        )
        rows.append(
            (
                "measured",
                f"{optimization['speedup_typical']:.2f}x at a typical batch, "
                f"{optimization['speedup_batch1']:.2f}x at batch 1; size "
                f"{human_size(optimization['size_before'])} → "
                f"{human_size(optimization['size_after'])}",
            )
        )
        if quality:
            rows.append(
                (
                    "accuracy",
                    f"{quality['metric']} {quality['parent']:.4f} → {quality['candidate']:.4f}",
                )
            )
        rows.append(("cpu", ", ".join(optimization["cpu"]["flags"]) or "-"))
    reference = v.conversion.get("reference_data")
    if reference:
        rows.append(("reference data", f"{reference['rows']} rows from {reference['source']}"))
    if v.metrics:
        rows.append(("metrics", ", ".join(f"{k}={val:g}" for k, val in v.metrics.items())))
    if v.tags:
        rows.append(("tags", ", ".join(f"{k}={val}" for k, val in v.tags.items())))
    grid = facts()
    for key, value in rows:
        grid.add_row(f"[dim]{key}[/]", value)
    console.print(grid)
    signature = table("", name_column("name"), "datatype", value_column("shape"), title="signature")
    for direction, specs in (("input", v.signature.inputs), ("output", v.signature.outputs)):
        for spec in specs:
            shape = "[" + ", ".join("?" if d < 0 else str(d) for d in spec.shape) + "]"
            signature.add_row(direction, spec.name, spec.datatype, shape)
    console.print(signature)
    files = table(name_column("file"), "size", "sha256", title="artifacts")
    for f in v.files:
        files.add_row(f.path, human_size(f.size), f.digest[:16] + "…")
    console.print(files)


@app.command()
def alias(
    ctx: typer.Context,
    name: str,
    alias_name: str = typer.Argument(..., metavar="ALIAS"),
    version: int | None = typer.Argument(None, help="The version to point at."),
    delete: bool = typer.Option(False, "--delete", help="Remove the alias instead."),
    reason: str | None = typer.Option(None, help="Why; kept in the event log."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Point NAME@ALIAS at VERSION (or remove it with --delete); every move is recorded."""
    with Registry(settings_of(ctx)) as registry:
        if delete:
            registry.delete_alias(name, alias_name, reason=reason)
            if json_output:
                print_json({"name": name, "alias": alias_name, "deleted": True})
            else:
                console.print(f"removed {name}@{alias_name}", highlight=False)
            return
        if version is None:
            raise InvalidInputError("give the VERSION to point the alias at, or --delete")
        before = registry.get_model(name).aliases.get(alias_name)
        moved = registry.set_alias(name, alias_name, version, reason=reason)
    if json_output:
        print_json({"name": name, "alias": alias_name, "from": before, "to": moved.version})
    else:
        console.print(
            f"{name}@{alias_name}: {before if before is not None else '-'} → {moved.version}",
            highlight=False,
        )


@app.command()
def verify(ctx: typer.Context, ref: str, json_output: bool = JSON_OPTION) -> None:
    """Re-hash every artifact file of a version against its manifest."""
    with Registry(settings_of(ctx)) as registry, progress_bars(not json_output) as progress:
        version = registry.verify(ref, progress)
    if json_output:
        print_json({"ref": version.ref, "verified": True, "files": version.files})
    else:
        console.print(
            f"{version.ref}: {len(version.files)} file(s), {human_size(version.size_bytes)}, "
            "all digests match",
            highlight=False,
        )


@app.command()
def delete(
    ctx: typer.Context,
    ref: str,
    force: bool = typer.Option(False, "--force", help="Also remove aliases pointing at it."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Delete a version (NAME:VERSION) and the artifacts no other version shares."""
    parsed = ModelRef.parse(ref)
    if parsed.version is None and parsed.alias is None:
        raise InvalidInputError(f"name the version to delete, e.g. {parsed.name}:3")
    with Registry(settings_of(ctx)) as registry:
        version = registry.delete_version(parsed, force=force)
    if json_output:
        print_json({"deleted": version.ref, "aliases_removed": list(version.aliases)})
    else:
        console.print(f"deleted {version.ref}", highlight=False)


def _show_lineage(history: Lineage) -> None:
    """run → this version → the versions optimized from it → its rollouts."""
    v = history.version
    lines = facts()
    run = history.run
    if run is not None:
        command = " ".join((run.command or {}).get("argv", [])) or "-"
        lines.add_row("run", f"{run.id[:8]} ({run.experiment}, {run.status}): {command}")
    if history.parent is not None:
        lines.add_row("optimized from", history.parent.ref)
    lines.add_row("version", v.ref)
    for derived in history.derived:
        recipe = (derived.conversion.get("optimization") or {}).get("recipe", {}).get("name")
        lines.add_row("optimized into", derived.ref + (f" ({recipe})" if recipe else ""))
    for rollout in history.rollouts:
        role = "candidate" if rollout.candidate == v.version else "baseline"
        other = rollout.baseline if role == "candidate" else rollout.candidate
        lines.add_row(
            "rollout",
            f"#{rollout.id} {rollout.strategy}, {role} against version {other}: {rollout.state}",
        )
    console.print("[bold]lineage[/]")
    console.print(lines)
