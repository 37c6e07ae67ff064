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
    engine: str = typer.Option(
        "local", help="local: this process; ray: one Ray Serve deployment per model."
    ),
    num_replicas: int = typer.Option(1, min=1, help="Ray: replicas per model."),
    autoscale: str | None = typer.Option(
        None, metavar="MIN:MAX", help="Ray: autoscale each model between MIN and MAX replicas."
    ),
    ray_address: str | None = typer.Option(
        None, help="Ray: an existing cluster [default: start one on this machine's CPUs]."
    ),
    replica_cpus: float = typer.Option(1.0, min=0, help="Ray: CPUs reserved per replica."),
    ray_ingress: str | None = typer.Option(
        None,
        help="Ray: proxy (Ray Serve's HTTP proxy actor) or haproxy (its HAProxy ingress, "
        "straight to each replica's HTTP server; a cluster this command starts) "
        "[default: haproxy for a cluster this command starts, else proxy].",
    ),
) -> None:
    """Serve models over the Open Inference Protocol (V2), V1 and OpenAI routes."""
    from shipyard.errors import InvalidInputError
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
    if engine == "local":
        Server(settings, models=model or None).run()
        return
    if engine != "ray":
        raise InvalidInputError(f"--engine is local or ray, not {engine!r}")
    from shipyard.server import ray_engine

    options = ray_engine.RayOptions(
        num_replicas=num_replicas,
        autoscale=ray_engine.parse_autoscale(autoscale) if autoscale is not None else None,
        address=ray_address,
        replica_cpus=replica_cpus,
        ingress=ray_ingress,
    )
    ray_engine.run(settings, model or None, options)
