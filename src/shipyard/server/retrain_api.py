"""``/api/models/{name}/retrain``: start a retrain of a served model's champion on the
server (202; 409 while one runs), and read how the model's retrains went (``GET .../retrains``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shipyard.server.api_docs import ModelName, documented
from shipyard.server.retraining import Retraining


def retrain_routes(retraining: Retraining) -> APIRouter:
    router = APIRouter(prefix="/api/models", tags=["retraining"])

    @router.post(
        "/{name}/retrain",
        status_code=202,
        summary="Retrain the model's champion on its labelled traffic, then gate and roll out",
        responses=documented(
            404,
            409,
            422,
            descriptions={
                404: "No such model, or it has no production alias",
                409: "A retrain of the model is already running",
            },
        ),
    )
    def start(name: ModelName) -> dict[str, Any]:
        retraining.start(name, "manual (API)")
        return retraining.status(name)

    @router.get(
        "/{name}/retrains",
        summary="Whether a retrain of the model runs, and its latest retrain events",
        responses=documented(422),
    )
    def status(name: ModelName) -> dict[str, Any]:
        return retraining.status(name)

    return router
