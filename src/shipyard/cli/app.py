"""The ``shipyard`` command: settings read once, errors translated once, sub-commands below.

Sub-commands are imported when they are called (``COMMANDS``), so ``shipyard runs list`` does
not pay for the model formats' imports, nor ``shipyard models list`` for the server's."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from typer.core import TyperGroup
from typer.main import get_command

from shipyard import __version__
from shipyard.cli.output import err_console
from shipyard.errors import ShipyardError
from shipyard.settings import Settings

CONFIG_ERROR_EXIT = 2

# Command name -> (module under shipyard.cli, its attribute): a Typer app holding a group of
# commands, or the function of a single command. Listed in the order `--help` shows them.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "serve"),
    "optimize": ("optimize", "optimize"),
    "run": ("runs", "run"),
    "retrain": ("retrain", "retrain"),
    "models": ("models", "app"),
    "db": ("db", "app"),
    "deploy": ("deploy", "app"),
    "monitor": ("monitor", "app"),
    "rollout": ("rollout", "app"),
    "runs": ("runs", "app"),
    "gc": ("gc", "gc"),
}


def load_command(name: str) -> Any:
    """The click command ``name`` of COMMANDS, its module imported now."""
    module, attribute = COMMANDS[name]
    target = getattr(importlib.import_module(f"shipyard.cli.{module}"), attribute)
    if not isinstance(target, typer.Typer):  # a single command's function
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        target = single
    command = get_command(target)
    command.name = name
    return command


class ShipyardGroup(TyperGroup):
    """Turns every ShipyardError into one line on stderr and the class's exit code; finds
    the sub-commands of COMMANDS when they are asked for."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        try:
            return super().invoke(ctx)
        except ShipyardError as exc:
            # escaped: a message's own brackets (pip install 'shipyard[ray]') are not markup
            message = escape(exc.message)
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            self.add_command(load_command(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        # A mistyped command is told the names it may have meant: all of them loaded first.
        if args and args[0] not in COMMANDS:
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


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
