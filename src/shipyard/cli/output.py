"""How the CLI speaks: JSON for machines, Rich tables and progress bars for people.

This module alone decides how wide the CLI's output is (``FittedConsole``), and every table
a command prints is built here (``table`` and ``facts``, their columns ``name_column`` and
``value_column``), so that all of them fit a terminal and none is squeezed into a log.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console, ConsoleDimensions
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Column, Table

from shipyard.registry import ProgressFactory, plain, quiet_progress

# The width of output that goes to no terminal (a pipe, a file, a CI log): wider than any
# line we print, so that a table is as wide as its content and a message stays on one line
# (a log is read by grep and by scrolling sideways, never by a terminal's width).
UNBOUNDED_WIDTH = 4096

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


class FittedConsole(Console):
    """A Rich console whose width is decided at each print, by where the output goes then.

    - A terminal, or output Rich is told to treat as one (``FORCE_COLOR``,
      ``TTY_COMPATIBLE=1``): Rich's own answer, the terminal's width or ``COLUMNS``.
    - No terminal but ``COLUMNS`` set: ``COLUMNS``, as Rich reads it.
    - No terminal at all: ``UNBOUNDED_WIDTH``. Rich would assume 80 columns, or the width
      of whatever terminal stdin happens to be, and wrap every long name in a table.

    Deciding at print time, not at import, follows ``sys.stdout`` when it is replaced (as
    tests and embedding programs do).
    """

    @property
    def size(self) -> ConsoleDimensions:
        decided = super().size
        if self.is_terminal or _columns_given():
            return decided
        return ConsoleDimensions(UNBOUNDED_WIDTH, decided.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self.width, self.height = new_size  # what Rich's own setter does


def _columns_given() -> bool:
    # COLUMNS is the terminal's convention (POSIX), which Rich follows, not Shipyard's
    # configuration: read here the way Rich reads it, a number or nothing.
    return os.environ.get("COLUMNS", "").isdigit()


console = FittedConsole()
err_console = FittedConsole(stderr=True)


def name_column(heading: str) -> Column:
    """A column of names people look for and grep (features, checks, files): never wrapped,
    so never split over two lines; cut (with …) only on a terminal too narrow for the
    rest of the table."""
    return Column(heading, no_wrap=True)


def value_column(heading: str) -> Column:
    """A column whose every character matters (figures, reasons, digests): on a narrow
    terminal it wraps at spaces and folds a longer word over lines, where Rich's default
    would cut it short with an ellipsis (a figure cut short reads as another figure)."""
    return Column(heading, overflow="fold")


def table(*columns: Column | str, title: str | None = None) -> Table:
    """A table for people. A plain heading makes a column of short labels (a state, a
    role), which Rich may cut with an ellipsis on a narrow terminal."""
    return Table(*columns, title=title)


def facts() -> Table:
    """Lines of a key and its value, without borders."""
    return Table.grid(name_column(""), value_column(""), padding=(0, 2))


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
