"""What the management API's OpenAPI document says about its errors.

This module owns the path parameters routes share, the schema of the error body,
``{"error": message}``, that ``shipyard.server.errors`` answers with, and what each status
means. A route of the management API, or of an APIRouter included in it, declares every
status it may answer besides its success with ``responses=documented(...)``, so /api/docs
and /api/openapi.json list them all, each with this body::

    @api.post("/api/things/{name}/stop", responses=documented(404, 409))

A route's own reason for a status goes in ``descriptions``; a status that no
ShipyardError answers with needs one. The handlers that make every error of the API take
this shape (validation errors included) live with the app, in
``shipyard.server.management``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

# Versions are numbered from 1, in an INTEGER column: 32 bits in PostgreSQL, and a larger
# number makes SQLite raise OverflowError (a 500), so the API refuses it first.
MAX_VERSION = 2**31 - 1

# A model or alias name, as the registry takes them (shipyard.registry.names): a dot is
# never followed by another.
NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]|\.(?:[a-z0-9_-]|$))*$"

# The path parameters every route names the same way.
ModelName = Annotated[
    str, Path(pattern=NAME_PATTERN, max_length=64, description="The model's name")
]
VersionNumber = Annotated[
    int, Path(ge=1, le=MAX_VERSION, description="A version of the model, from 1")
]


class ErrorBody(BaseModel):
    """The body of every error the management API answers with."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="What went wrong, in a sentence for a person to read")


# What each status means, from the statuses of shipyard.errors' classes.
STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "Bad input: a name, reference or option the server refuses",
    401: "No credentials: SHIPYARD_API_TOKEN is set and the request has no "
    "'Authorization: Bearer <token>'",
    403: "Credentials that are not SHIPYARD_API_TOKEN",
    404: "Not found: the model or version is not served here, or not in the registry",
    409: "Conflict: the deployment's state forbids the change",
    413: "The request body is over the server's limit",
    422: "A request that does not parse: a path parameter of the wrong type or out of range, "
    "or a body that does not fit its schema",
    500: "Internal error: an artifact that does not match its digest, an optional extra that "
    "is not installed, or a bug (see the server log)",
    503: "Not ready: the model is loading or unloading, or failed its warm-up; retry later",
    504: "The request's deadline passed before it ran",
    507: "Storage failed: the disk or the registry's database",
}


def documented(
    *statuses: int, descriptions: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """FastAPI's ``responses=`` for ``statuses``, each answered with an ErrorBody.

    ``descriptions`` gives a status this route's own reason, in place of the general one.
    """
    own = dict(descriptions or {})
    unknown = set(own) - set(statuses)
    if unknown:
        raise ValueError(f"descriptions for statuses not documented: {sorted(unknown)}")
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if not 400 <= status <= 599:
            raise ValueError(f"{status} is not an error status")
        description = own.get(status) or STATUS_DESCRIPTIONS.get(status)
        if description is None:
            raise ValueError(f"status {status} needs a description: pass descriptions=")
        responses[status] = {"model": ErrorBody, "description": description}
    return responses
