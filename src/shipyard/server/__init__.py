"""The inference server: Open Inference Protocol (V2), V1 predict, OpenAI embeddings,
dynamic batching, metrics, hot reload from the registry, a management API."""

from shipyard.server.app import ShipyardApp
from shipyard.server.server import Server
from shipyard.settings import Settings


def create_app(settings: Settings | None = None, models: list[str] | None = None) -> ShipyardApp:
    """The ASGI app for any ASGI server: ``uvicorn --factory shipyard.server:create_app``."""
    return ShipyardApp(settings or Settings(), models=models)


__all__ = ["Server", "ShipyardApp", "create_app"]
