"""``shipyard db``: the metadata database's schema."""

from __future__ import annotations

import typer

from shipyard.cli.app import settings_of
from shipyard.cli.output import console
from shipyard.registry.backends import open_database
from shipyard.registry.database import head_revision

app = typer.Typer(help="Manage the metadata database.", no_args_is_help=True, add_completion=False)


@app.command()
def upgrade(ctx: typer.Context) -> None:
    """Apply every pending migration (also done automatically on first use)."""
    database = open_database(settings_of(ctx))
    try:
        before = database.current_revision()
        after = database.upgrade()
    finally:
        database.dispose()
    if before == after:
        console.print(f"database already at revision {after}")
    else:
        console.print(f"database upgraded from {before or 'empty'} to {after}")


@app.command()
def current(ctx: typer.Context) -> None:
    """Print the schema revision of the database and the newest one this version knows."""
    database = open_database(settings_of(ctx))
    try:
        revision = database.current_revision()
    finally:
        database.dispose()
    console.print(f"current: {revision or 'empty'}  head: {head_revision()}")
