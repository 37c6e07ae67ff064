"""The management API under /api/: deployments, loading and unloading versions.

Protected by a bearer token when SHIPYARD_API_TOKEN is set (401 without one, 403 when
wrong). OpenAPI docs at /api/docs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from shipyard.errors import ShipyardError
from shipyard.version import __version__

if TYPE_CHECKING:
    from shipyard.server.app import ShipyardApp


def build_management_app(server: ShipyardApp) -> FastAPI:
    from shipyard.server.app import check_bearer

    def authorized(request: Request) -> None:
        check_bearer(request.headers.get("authorization"), server.settings.api_token)

    api = FastAPI(
        title="Shipyard management API",
        version=__version__,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        dependencies=[Depends(authorized)],
    )

    @api.exception_handler(ShipyardError)
    async def shipyard_error(_request: Request, exc: ShipyardError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.http_status)

    @api.get("/api/deployments", summary="Every served model, its versions and their state")
    async def list_deployments() -> list[dict[str, Any]]:
        return [d.to_dict() for _, d in sorted(server.manager.deployments.items())]

    @api.get("/api/deployments/{name}", summary="One served model")
    async def get_deployment(name: str) -> dict[str, Any]:
        server.manager.route(name, None)  # 404 for a model not served here
        return server.manager.deployments[name].to_dict()

    @api.post(
        "/api/deployments/{name}/versions/{version}/load",
        summary="Load and warm a version beside the current one (reachable by version)",
    )
    async def load_version(name: str, version: int) -> dict[str, Any]:
        await server.manager.load(name, version, current_if_none=True)
        return server.manager.deployments[name].to_dict()

    @api.post(
        "/api/deployments/{name}/versions/{version}/unload",
        summary="Drain and unload a version that is not the current one",
    )
    async def unload_version(name: str, version: int) -> dict[str, Any]:
        await server.manager.unload(name, version)
        return server.manager.deployments[name].to_dict()

    return api
