"""``POST /v2/models/{name}/feedback``: ground-truth labels for served request ids.

The body is one label, ``{"request_id": "...", "label": 1}``, or many,
``{"labels": [{"request_id": "...", "label": 1}, ...]}``. A request of several rows takes a
list, one label per row. Labels may come days later: they join the prediction log by the
``x-request-id`` the server answered with. Ids with no logged prediction are reported back,
not refused; a label of the wrong type refuses the whole body, so nothing half-applies.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from shipyard.errors import InvalidInputError
from shipyard.monitor.live import LiveMonitor
from shipyard.monitor.performance import check_label, task_of
from shipyard.registry import Registry
from shipyard.server.errors import respond_error
from shipyard.server.http import (
    JSON,
    ClientDisconnected,
    Receive,
    RequestIds,
    Scope,
    Send,
    check_bearer,
    json_object,
    read_body,
    read_headers,
    respond,
)
from shipyard.settings import Settings

MAX_LABELS = 10_000


class FeedbackRoute:
    """The route's handler: the inference token guards it, the labels are written off the loop."""

    def __init__(
        self, settings: Settings, registry: Registry, monitor: LiveMonitor, ids: RequestIds
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.monitor = monitor
        self.ids = ids

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: int | None
    ) -> None:
        try:
            headers = read_headers(scope)
            check_bearer(headers.authorization, self.settings.inference_token)
            body = await read_body(receive, headers.content_length, self.settings.max_body_bytes)
            answer = await asyncio.to_thread(
                record_feedback, self.registry, self.monitor, name, body
            )
        except ClientDisconnected:
            return  # nobody to answer
        except Exception as exc:
            await respond_error(send, exc, self.ids.of(scope))
            return
        await respond(
            send, 200, orjson.dumps(answer), JSON, [(b"x-request-id", self.ids.of(scope))]
        )


def record_feedback(
    registry: Registry, monitor: LiveMonitor, name: str, body: bytes
) -> dict[str, Any]:
    document = json_object(body)
    labels = _labels(document)
    version = registry.get_version(name)  # the latest: the task is the model's, not a version's
    task = task_of(version)
    for request_id, label in labels.items():
        try:
            check_label(task, label)
        except InvalidInputError as exc:
            raise InvalidInputError(f"label for request {request_id!r}: {exc.message}") from None
    monitor.flush_predictions()  # so that a request answered a moment ago can join
    outcome = registry.monitoring.set_labels(name, labels)
    if outcome.matched:
        monitor.labels_arrived(name)
    return {"model": name, "matched": len(outcome.matched), "unknown": outcome.unknown}


def _labels(document: dict[str, Any]) -> dict[str, Any]:
    if "labels" in document:
        items = document["labels"]
        if not isinstance(items, list) or not items:
            raise InvalidInputError('"labels" must be a non-empty list of {request_id, label}')
        if len(items) > MAX_LABELS:
            raise InvalidInputError(f"at most {MAX_LABELS} labels per request")
    elif "request_id" in document:
        items = [document]
    else:
        raise InvalidInputError(
            'feedback needs "request_id" and "label", or "labels": [{request_id, label}, ...]'
        )
    labels: dict[str, Any] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "request_id" not in item or "label" not in item:
            raise InvalidInputError(f"labels[{i}] needs a request_id and a label")
        request_id = item["request_id"]
        if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
            raise InvalidInputError(f"labels[{i}].request_id must be a string of 1-128 characters")
        if item["label"] is None:
            raise InvalidInputError(f"labels[{i}].label must not be null")
        labels[request_id] = item["label"]
    return labels
