"""The ``shipyard`` command: settings read once, errors translated once, sub-commands below."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from shipyard import __version__
from shipyard.cli.output import err_console
from shipyard.errors import ShipyardError
from shipyard.settings import Settings

CONFIG_ERROR_EXIT = 2


class ShipyardGroup(TyperGroup):
    """Turns every ShipyardError into one line on stderr and the class's exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        try:
            return super().invoke(ctx)
        except ShipyardError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=ShipyardGroup,
    name="shipyard",
    help="Take a trained model to production and keep it healthy there.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shipyard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None, "--home", help="Folder for the database and artifacts [env: SHIPYARD_HOME]"
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    try:
        settings = Settings(home=home) if home is not None else Settings()
    except ValidationError as exc:
        err_console.print(f"[bold red]error:[/] invalid settings: {exc}", highlight=False)
        raise typer.Exit(CONFIG_ERROR_EXIT) from None
    ctx.obj = settings


def settings_of(ctx: typer.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings
