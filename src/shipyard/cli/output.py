"""How the CLI speaks: JSON for machines, Rich tables and progress bars for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from shipyard.registry import ProgressFactory, plain, quiet_progress

console = Console()
err_console = Console(stderr=True)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(plain(value), indent=2, sort_keys=False, default=str) + "\n")


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[ProgressFactory]:
    """A ProgressFactory drawing one bar per long step on stderr (quiet when not a terminal)."""
    if not enabled or not err_console.is_terminal:
        yield quiet_progress
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )

    def factory(description: str, total: int) -> Callable[[int], None]:
        task = progress.add_task(description, total=total or None)

        def advance(n: int) -> None:
            if total:
                progress.advance(task, n)
            else:
                progress.update(task, total=1, completed=1)

        return advance

    with progress:
        yield factory


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
