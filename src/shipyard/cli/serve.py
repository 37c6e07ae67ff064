"""``shipyard serve``: put registered models behind the inference server."""

from __future__ import annotations

import typer

from shipyard.cli.app import settings_of


def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, help="Address to bind [default: 127.0.0.1]."),
    port: int | None = typer.Option(None, help="Port to bind [default: 8000; 0 picks one]."),
    model: list[str] = typer.Option(
        [],
        "--model",
        "-m",
        help="NAME, NAME@ALIAS or NAME:VERSION; repeatable. "
        "Default: every model with a production alias.",
    ),
    max_batch_size: int | None = typer.Option(None, help="Rows per batch, for every model."),
    max_batch_delay_ms: float | None = typer.Option(None, help="Batch window, for every model."),
    access_log: bool | None = typer.Option(None, "--access-log/--no-access-log"),
) -> None:
    """Serve models over the Open Inference Protocol (V2), V1 and OpenAI routes."""
    from shipyard.server import Server

    settings = settings_of(ctx)
    update: dict[str, object] = {}
    if host is not None:
        update["host"] = host
    if port is not None:
        update["port"] = port
    if access_log is not None:
        update["access_log"] = access_log
    batching = {
        key: value
        for key, value in (
            ("max_batch_size", max_batch_size),
            ("max_batch_delay_ms", max_batch_delay_ms),
        )
        if value is not None
    }
    if batching:
        update["batching"] = settings.batching.model_copy(update=batching)
    if update:
        settings = settings.model_copy(update=update)
    Server(settings, models=model or None).run()
