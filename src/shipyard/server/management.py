"""The management API under /api/: deployments, loading and unloading versions.

Protected by a bearer token when SHIPYARD_API_TOKEN is set (401 without one, 403 when
wrong). OpenAPI docs at /api/docs.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from shipyard.errors import ShipyardError
from shipyard.server.deployments import DeploymentManager
from shipyard.server.errors import error_answer
from shipyard.server.http import check_bearer
from shipyard.settings import Settings
from shipyard.version import __version__


def build_management_app(manager: DeploymentManager, settings: Settings) -> FastAPI:
    def authorized(request: Request) -> None:
        check_bearer(request.headers.get("authorization"), settings.api_token)

    api = FastAPI(
        title="Shipyard management API",
        version=__version__,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        dependencies=[Depends(authorized)],
    )

    @api.exception_handler(ShipyardError)
    async def shipyard_error(_request: Request, exc: ShipyardError) -> Response:
        status, headers, body = error_answer(exc, None)
        return Response(
            body,
            status_code=status,
            headers={key.decode(): value.decode() for key, value in headers},
            media_type="application/json",
        )

    @api.get("/api/deployments", summary="Every served model, its versions and their state")
    async def list_deployments() -> list[dict[str, Any]]:
        return [d.to_dict() for _, d in sorted(manager.deployments.items())]

    @api.get("/api/deployments/{name}", summary="One served model")
    async def get_deployment(name: str) -> dict[str, Any]:
        manager.route(name, None)  # 404 for a model not served here
        return manager.deployments[name].to_dict()

    @api.post(
        "/api/deployments/{name}/versions/{version}/load",
        summary="Load and warm a version beside the current one (reachable by version)",
    )
    async def load_version(name: str, version: int) -> dict[str, Any]:
        await manager.load(name, version, current_if_none=True)
        return manager.deployments[name].to_dict()

    @api.post(
        "/api/deployments/{name}/versions/{version}/unload",
        summary="Drain and unload a version that is not the current one",
    )
    async def unload_version(name: str, version: int) -> dict[str, Any]:
        await manager.unload(name, version)
        return manager.deployments[name].to_dict()

    return api
