"""``shipyard gc``: remove the artifact blobs that nothing in the registry names."""

from __future__ import annotations

from datetime import timedelta

import typer

from shipyard.cli.app import settings_of
from shipyard.cli.output import JSON_OPTION, console, human_size, print_json
from shipyard.monitor.export import parse_duration
from shipyard.registry import Registry


def gc(
    ctx: typer.Context,
    min_age: str = typer.Option(
        "1h",
        "--min-age",
        help="Keep unreferenced blobs younger than this (90s, 10m, 2h): a registration in "
        "progress writes its blobs before its row.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; remove nothing."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Remove the blobs no version, manifest or run references (e.g. after a crash)."""
    age = timedelta(seconds=parse_duration(min_age))
    with Registry(settings_of(ctx)) as registry:
        result = registry.collect_garbage(min_age=age, dry_run=dry_run)
    if json_output:
        print_json(
            {
                "dry_run": dry_run,
                "removed": [] if dry_run else [b.digest for b in result.unreferenced],
                "unreferenced": [b.digest for b in result.unreferenced],
                "freed_bytes": 0 if dry_run else result.freed_bytes,
                "kept_young": [b.digest for b in result.young],
                "referenced": result.referenced,
            }
        )
        return
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{verb} {len(result.unreferenced)} unreferenced blob(s), "
        f"{human_size(result.freed_bytes)}; {result.referenced} in use; "
        f"{len(result.young)} unreferenced but younger than {min_age} kept",
        highlight=False,
    )
