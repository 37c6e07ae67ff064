"""The rollout routes of the management API, the same operations as ``shipyard rollout``:

    POST /api/rollouts/{name}/start           start one ({"candidate": 2, "settings": {...}})
    GET  /api/rollouts/{name}                 the unfinished rollout, else the last one
    GET  /api/rollouts/{name}/history         every rollout of the model
    POST /api/rollouts/{name}/promote|abort|resume   left for the rollout's controller
    POST /api/rollouts/{name}/undo            the alias back to the version a promotion replaced

Registry calls block, so the handlers are plain functions (FastAPI runs them in its pool).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from shipyard.registry import Registry
from shipyard.registry.rollouts import Rollout
from shipyard.rollout import service
from shipyard.server.api_docs import MAX_VERSION, NAME_PATTERN, ModelName, documented

Share = Annotated[float, Field(gt=0, le=1)]
Positive = Annotated[float, Field(gt=0)]


class RolloutSettings(BaseModel):
    """A rollout's settings (``shipyard.rollout.spec.RolloutSpec``); each left out takes its
    default. What a schema cannot say (steps that rise, a deadline of at least the interval,
    a goal for an A/B) is checked by the spec and answered 400."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["canary", "blue-green", "ab", "shadow"] | None = None
    steps: list[Share] | None = Field(
        default=None, min_length=1, description="Canary weights, rising"
    )
    interval_s: float | None = Field(default=None, ge=1, le=86_400)
    deadline_s: float | None = Field(default=None, ge=1, le=30 * 86_400)
    failure_threshold: int | None = Field(default=None, ge=1, le=1000)
    min_samples: int | None = Field(default=None, ge=1, le=10**9)
    split: Share | None = None
    mirror: Share | None = None
    sticky_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    max_error_ratio_increase: Positive | None = None
    max_p99_ms: Positive | None = None
    max_p99_increase: Positive | None = None
    p99_slack_ms: Positive | None = None
    min_agreement: Share | None = None
    min_cosine: Share | None = None
    max_relative_error: Positive | None = None
    max_prediction_drift: Positive | None = None
    prediction_drift: bool | None = None
    max_accuracy_drop: Positive | None = None
    goal: Literal["accuracy", "mae", "latency"] | None = None
    min_effect: Positive | None = None
    slice_feature: str | None = Field(default=None, min_length=1, max_length=128)
    alias: str | None = Field(default=None, pattern=NAME_PATTERN, max_length=64)
    promote_shadow: bool | None = None


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidate: int = Field(ge=1, le=MAX_VERSION, description="The version to roll out")
    settings: RolloutSettings = Field(default_factory=RolloutSettings)


def rollout_routes(registry: Registry, actor: str | None) -> APIRouter:
    router = APIRouter(prefix="/api/rollouts", tags=["rollouts"])

    @router.post(
        "/{name}/start",
        status_code=201,
        summary="Start a rollout of the model to a candidate version",
        responses=documented(
            400,
            404,
            409,
            422,
            descriptions={
                400: "Bad settings, the candidate is the baseline, or its signature does not "
                "fit the baseline's",
                404: "No such model, version or alias to roll out from",
                409: "The model has an unfinished rollout",
            },
        ),
    )
    def start(name: ModelName, request: StartRequest) -> dict[str, Any]:
        settings = request.settings.model_dump(exclude_none=True)
        rollout = service.start(registry, name, request.candidate, settings, actor)
        return _document(rollout)

    @router.get(
        "/{name}",
        summary="The model's unfinished rollout, else its last one, with its latest analysis",
        responses=documented(422, 404, descriptions={404: "No such model, or it has no rollouts"}),
    )
    def status(name: ModelName) -> dict[str, Any]:
        return _document(service.latest(registry, name))

    @router.get(
        "/{name}/history",
        summary="Every rollout of the model, oldest first",
        responses=documented(404, 422, descriptions={404: "No such model"}),
    )
    def history(name: ModelName) -> list[dict[str, Any]]:
        registry.get_model(name)
        return [_document(rollout) for rollout in registry.rollouts.history(name)]

    @router.post(
        "/{name}/undo",
        summary="Point the alias back at the version the last promotion replaced",
        responses=documented(
            404,
            409,
            422,
            descriptions={
                404: "No such model, or no promoted rollout to undo",
                409: "The alias has moved since that promotion",
            },
        ),
    )
    def undo(name: ModelName) -> dict[str, Any]:
        return dataclasses.asdict(service.undo(registry, name, actor))

    for command, summary in (
        ("promote", "Promote the candidate now, whatever the checks say"),
        ("abort", "Roll back now: the candidate gets no traffic, the alias stays"),
        ("resume", "Resume a paused rollout with a new step clock"),
    ):
        router.add_api_route(
            f"/{{name}}/{command}",
            _commanding(registry, command, actor),
            methods=["POST"],
            status_code=202,
            summary=f"{summary} (its controller carries it out at its next tick)",
            responses=documented(
                404,
                409,
                422,
                descriptions={
                    404: "No such model, or it has no rollouts",
                    409: "The model has no unfinished rollout"
                    + (", or it is not paused" if command == "resume" else ""),
                },
            ),
        )

    return router


def _commanding(
    registry: Registry, command: str, actor: str | None
) -> Callable[[str], dict[str, Any]]:
    def handler(name: ModelName) -> dict[str, Any]:
        return _document(service.request(registry, name, command, actor))

    handler.__name__ = command
    return handler


def _document(rollout: Rollout) -> dict[str, Any]:
    values = dataclasses.asdict(rollout)
    for key in ("created_at", "updated_at", "finished_at", "step_started_at"):
        if values[key] is not None:
            values[key] = values[key].isoformat()
    return values
