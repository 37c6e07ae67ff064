"""The command line: thin commands over the Python API (``shipyard --help``); the
sub-commands are listed in ``shipyard.cli.app.COMMANDS``."""

import gc

from shipyard.cli.app import app


def main() -> None:
    # The objects the imports made live as long as the process: moved out of the collector's
    # sight, they cost nothing to scan, neither during a command nor at exit, where the
    # interpreter's last collections would otherwise take a third of a short command's time.
    gc.freeze()
    app()


__all__ = ["app", "main"]
