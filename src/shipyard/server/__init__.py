"""The inference server: Open Inference Protocol (V2), V1 predict, OpenAI embeddings,
dynamic batching, metrics, hot reload from the registry, a management API."""

from shipyard.server.app import ShipyardApp
from shipyard.server.server import Server

__all__ = ["Server", "ShipyardApp"]
