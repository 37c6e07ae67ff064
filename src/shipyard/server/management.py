"""The management API under /api/: deployments, loading and unloading versions, the
rollouts (``rollouts_api``) and retraining (``retrain_api``).

Protected by a bearer token when SHIPYARD_API_TOKEN is set (401 without one, 403 when
wrong). OpenAPI docs at /api/docs, the document at /api/openapi.json: every route declares
each status it answers with (see ``shipyard.server.api_docs``), and every error of a route,
FastAPI's validation errors included, has the one body ``{"error": message}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends as Dependency
from fastapi.responses import Response
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from shipyard.errors import ShipyardError
from shipyard.server.api_docs import ModelName, VersionNumber, documented
from shipyard.server.deployments import DeploymentManager
from shipyard.server.errors import error_answer, plain_error
from shipyard.server.http import check_bearer
from shipyard.server.retrain_api import retrain_routes
from shipyard.server.retraining import Retraining
from shipyard.server.rollouts_api import rollout_routes
from shipyard.settings import Settings
from shipyard.version import __version__

# Declares the token in the OpenAPI document (for /api/docs' Authorize); check_bearer checks it.
BEARER = HTTPBearer(
    scheme_name="SHIPYARD_API_TOKEN",
    description="The server's SHIPYARD_API_TOKEN, as 'Authorization: Bearer <token>'",
    auto_error=False,
)


def build_management_app(
    manager: DeploymentManager, settings: Settings, retraining: Retraining | None = None
) -> FastAPI:
    def authorized(request: Request) -> None:
        check_bearer(request.headers.get("authorization"), settings.api_token)

    dependencies: list[Dependency] = [Depends(authorized)]
    responses = None
    if settings.api_token:  # every route, those of routers included later too, may refuse
        dependencies.append(Security(BEARER))
        responses = documented(401, 403)

    api = FastAPI(
        title="Shipyard management API",
        version=__version__,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        dependencies=dependencies,
        responses=responses,
    )

    @api.exception_handler(ShipyardError)
    async def shipyard_error(_request: Request, exc: ShipyardError) -> Response:
        status, headers, body = error_answer(exc, None)
        return _json(status, body, {key.decode(): value.decode() for key, value in headers})

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's own answers (no route, a method not allowed, a body it cannot parse)
        headers = dict(exc.headers or {})
        return _json(exc.status_code, plain_error(exc.status_code, str(exc.detail)), headers)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        return _json(422, plain_error(422, validation_message(exc)))

    @api.get("/api/deployments", summary="Every served model, its versions and their state")
    async def list_deployments() -> list[dict[str, Any]]:
        return [d.to_dict() for _, d in sorted(manager.deployments.items())]

    @api.get(
        "/api/deployments/{name}",
        summary="One served model",
        responses=documented(
            404,
            422,
            503,
            descriptions={
                404: "No model by that name is served here",
                503: "The model has no current version yet: it is still loading",
            },
        ),
    )
    async def get_deployment(name: ModelName) -> dict[str, Any]:
        manager.route(name, None)  # 404 for a model not served here
        return manager.deployments[name].to_dict()

    @api.post(
        "/api/deployments/{name}/versions/{version}/load",
        summary="Load and warm a version beside the current one (reachable by version)",
        responses=documented(
            404,
            422,
            500,
            503,
            507,
            descriptions={
                404: "The registry has no such model or version",
                422: "A version that is not a whole number from 1, or a model the server "
                "cannot read",
                503: "The version failed its warm-up; the current version keeps serving",
            },
        ),
    )
    async def load_version(name: ModelName, version: VersionNumber) -> dict[str, Any]:
        await manager.load(name, version, current_if_none=True)
        return manager.deployments[name].to_dict()

    @api.post(
        "/api/deployments/{name}/versions/{version}/unload",
        summary="Drain and unload a version that is not the current one",
        responses=documented(
            404,
            409,
            422,
            descriptions={
                404: "That version of the model is not loaded here",
                409: "The version is the model's current one: move its alias first",
                422: "A version that is not a whole number from 1",
            },
        ),
    )
    async def unload_version(name: ModelName, version: VersionNumber) -> dict[str, Any]:
        await manager.unload(name, version)
        return manager.deployments[name].to_dict()

    api.include_router(rollout_routes(manager.registry, settings.actor))
    if retraining is not None:
        api.include_router(retrain_routes(retraining))

    return api


def validation_message(exc: RequestValidationError) -> str:
    """FastAPI's validation errors in one sentence, e.g. "path parameter 'version': Input
    should be a valid integer, unable to parse string as an integer (got 'two')"."""
    parts = []
    for error in exc.errors():
        where, *field = error.get("loc") or ("request",)
        place = {"path": "path parameter", "query": "query parameter"}.get(str(where), where)
        named = f" {'.'.join(str(p) for p in field)!r}" if field else ""
        given = error.get("input")
        got = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        parts.append(f"{place}{named}: {error.get('msg', 'invalid')}{got}")
    return "; ".join(parts) or "the request is not valid"


def _json(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status_code=status, headers=headers, media_type="application/json")
