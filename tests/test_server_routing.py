"""The routing table: every route reaches its handler with the name and version of its path,
and what no route takes answers 400, 404 or 405 as the server always has."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

import shipyard
from server_helpers import asgi_call, server_settings
from shipyard.server import ShipyardApp
from shipyard.server.http import Receive, RequestIds, Scope, Send, respond
from shipyard.server.routing import ANY, Handler, Route, Router, no_route

# The router on its own ---------------------------------------------------------------------


def _recording(label: str) -> Handler:
    async def handler(
        scope: Scope, receive: Receive, send: Send, name: str, version: int | None
    ) -> None:
        body = orjson.dumps({"route": label, "name": name, "version": version})
        await respond(send, 200, body)

    return handler


MODEL = "/v2/models/{name}[/versions/{version}]"
ROUTES = [
    Route("GET", "/v2/health/live", _recording("live")),
    Route("GET", "/v2", _recording("server")),
    Route("GET", MODEL, _recording("metadata")),
    Route("GET", f"{MODEL}/ready", _recording("ready")),
    Route("POST", f"{MODEL}/infer", _recording("infer")),
    Route("POST", "/v2/models/{name}/feedback", _recording("feedback")),
    Route("POST", "/v2/models/{name}/versions/{version}/explain", _recording("explain")),
    Route(ANY, "/v2/models/{path}", no_route),
    Route("POST", "/v1/models/{name}:predict", _recording("predict")),
    Route("POST", "/v1/models/{name}:explain", _recording("v1-explain")),
    Route("POST", "/v1/embeddings", _recording("embeddings")),
    Route(ANY, "/api", _recording("api")),
    Route(ANY, "/api/{path}", _recording("api")),
]


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(ROUTES, RequestIds())


@pytest.mark.parametrize(
    ("method", "path", "route", "name", "version"),
    [
        ("GET", "/v2/health/live", "live", "", None),
        ("GET", "/v2", "server", "", None),
        ("GET", "/v2/models/tiny", "metadata", "tiny", None),
        ("GET", "/v2/models/tiny/", "metadata", "tiny", None),
        ("GET", "/v2/models/tiny/versions/12", "metadata", "tiny", 12),
        ("GET", "/v2/models/tiny/versions/12/", "metadata", "tiny", 12),
        ("GET", "/v2/models/tiny/ready", "ready", "tiny", None),
        ("GET", "/v2/models/tiny/versions/3/ready", "ready", "tiny", 3),
        ("POST", "/v2/models/tiny/infer", "infer", "tiny", None),
        ("POST", "/v2/models/tiny/versions/2/infer", "infer", "tiny", 2),
        ("POST", "/v2/models/tiny/feedback", "feedback", "tiny", None),
        ("POST", "/v2/models/tiny/versions/4/explain", "explain", "tiny", 4),
        ("POST", "/v1/models/tiny:predict", "predict", "tiny", None),
        ("POST", "/v1/models/a:b:predict", "predict", "a:b", None),
        ("POST", "/v1/models/a/b:predict", "predict", "a/b", None),
        ("POST", "/v1/models/tiny:explain", "v1-explain", "tiny", None),
        ("POST", "/v1/embeddings", "embeddings", "", None),
        ("GET", "/api", "api", "", None),
        ("DELETE", "/api/deployments/tiny", "api", "", None),
    ],
)
def test_each_route_reaches_its_handler(
    router: Router, method: str, path: str, route: str, name: str, version: int | None
) -> None:
    status, _, body = asgi_call(router, method, path)
    assert status == 200
    assert orjson.loads(body) == {"route": route, "name": name, "version": version}


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        # a path no route takes: 404 to GET, 405 to anything else
        ("GET", "/nowhere", 404, "no route for /nowhere"),
        ("POST", "/nowhere", 405, "POST is not allowed on /nowhere"),
        ("POST", "/v2/health/live", 405, "POST is not allowed on /v2/health/live"),
        ("HEAD", "/v2", 405, "HEAD is not allowed on /v2"),
        ("GET", "/v1/embeddings", 404, "no route for /v1/embeddings"),
        ("PUT", "/v1/embeddings", 405, "PUT is not allowed on /v1/embeddings"),
        ("GET", "/v1/models/tiny:predict", 404, "no route for /v1/models/tiny:predict"),
        ("POST", "/v1/models/tiny", 405, "POST is not allowed on /v1/models/tiny"),
        ("GET", "/v2/models", 404, "no route for /v2/models"),
        ("GET", "/apis", 404, "no route for /apis"),
        # under a model's path every method of an unknown action is 404
        ("GET", "/v2/models/tiny/infer", 404, "no route for /v2/models/tiny/infer"),
        ("POST", "/v2/models/tiny", 404, "no route for /v2/models/tiny"),
        ("PUT", "/v2/models/tiny/explode", 404, "no route for /v2/models/tiny/explode"),
        ("POST", "/v2/models/tiny/a/infer", 404, "no route for /v2/models/tiny/a/infer"),
        ("GET", "/v2/models/tiny/versions", 404, "no route for /v2/models/tiny/versions"),
        (
            "POST",
            "/v2/models/tiny/versions/1/feedback",
            404,
            "no route for /v2/models/tiny/versions/1/feedback",
        ),
        ("POST", "/v2/models/tiny/explain", 404, "no route for /v2/models/tiny/explain"),
        # a version that is not a number, whatever follows it
        ("POST", "/v2/models/tiny/versions/latest/infer", 400, "version 'latest' is not a number"),
        ("GET", "/v2/models/tiny/versions/one", 400, "version 'one' is not a number"),
        ("DELETE", "/v2/models/tiny/versions/x/y", 400, "version 'x' is not a number"),
        ("GET", "/v2/models/tiny/versions/", 400, "version '' is not a number"),
        ("GET", "/v2/models/tiny/versions/\u00b2", 400, "version '\u00b2' is not a number"),
    ],
)
def test_what_no_route_takes(
    router: Router, method: str, path: str, status: int, message: str
) -> None:
    answered, headers, body = asgi_call(router, method, path, headers={"X-Request-Id": "abc"})
    assert answered == status
    assert orjson.loads(body) == {"error": message}
    assert headers[b"x-request-id"] == b"abc"
    assert headers[b"content-type"] == b"application/json"


def test_an_answer_without_a_request_id_gets_a_new_one(router: Router) -> None:
    first = asgi_call(router, "GET", "/nowhere")[1][b"x-request-id"]
    second = asgi_call(router, "POST", "/nowhere")[1][b"x-request-id"]
    assert first
    assert second
    assert first != second


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (
            [Route("GET", "/v2", no_route), Route("GET", "/v2", no_route)],
            "GET /v2 is routed twice",
        ),
        (
            [
                Route("GET", "/m/{name}", no_route),
                Route("GET", "/m/{name}[/versions/{version}]", no_route),
            ],
            "GET /m/{name}[/versions/{version}] is routed twice",
        ),
        ([Route("GET", "/m/{id}", no_route)], "a pattern's first brace is {name} or {path}"),
        ([Route("GET", "/m/{name}/{action}", no_route)], "only {name} and a version may be named"),
        ([Route("GET", "/m/{name}.json", no_route)], "{name} ends at a slash or a verb's colon"),
        (
            [Route("GET", "/m/{name}/versions/all", no_route)],
            "a version is written /versions/{version}",
        ),
        (
            [Route("POST", "/m/{name}:run", no_route), Route("GET", "/m/{name}/ready", no_route)],
            "verbs and actions under one prefix are ambiguous",
        ),
    ],
)
def test_tables_that_cannot_be_routed_are_refused(routes: list[Route], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("{", r"\{")):
        Router(routes, RequestIds())


# The server's own table -------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShipyardApp]:
    """A server whose models are not loaded: every route answers from its own handler."""
    home = tmp_path_factory.mktemp("routing") / "home"
    server = ShipyardApp(server_settings(home), models=[])
    try:
        yield server
    finally:
        asyncio.run(server.shutdown())


TINY_V2 = orjson.dumps(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}
)
FEEDBACK = orjson.dumps({"request_id": "r1", "label": 1})
EMBEDDINGS = orjson.dumps({"model": "ghost", "input": "hello"})


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "document"),
    [
        ("GET", "/v2/health/live", b"", 200, {"live": True}),
        ("GET", "/v2/health/ready", b"", 503, {"ready": False}),
        (
            "GET",
            "/v2",
            b"",
            200,
            {
                "name": "shipyard",
                "version": shipyard.__version__,
                "extensions": ["binary_tensor_data", "model_repository"],
            },
        ),
        ("GET", "/v2/models/ghost", b"", 404, {"error": "model 'ghost' is not served here"}),
        (
            "GET",
            "/v2/models/ghost/versions/2",
            b"",
            404,
            {"error": "model 'ghost' is not served here"},
        ),
        ("GET", "/v2/models/ghost/ready", b"", 404, {"error": "model 'ghost' is not served here"}),
        (
            "POST",
            "/v2/models/ghost/infer",
            TINY_V2,
            404,
            {"error": "model 'ghost' is not served here"},
        ),
        (
            "POST",
            "/v2/models/ghost/versions/1/infer",
            TINY_V2,
            404,
            {"error": "model 'ghost' is not served here"},
        ),
        (
            "POST",
            "/v2/models/ghost/feedback",
            FEEDBACK,
            404,
            {"error": "no model named 'ghost'; `shipyard models list` shows them"},
        ),
        (
            "POST",
            "/v1/models/ghost:predict",
            b'{"instances": [[1, 2, 3]]}',
            404,
            {"error": "model 'ghost' is not served here"},
        ),
        (
            "POST",
            "/v1/embeddings",
            EMBEDDINGS,
            404,
            {
                "error": {
                    "message": "no text-embedding model named 'ghost' is served here",
                    "type": "invalid_request_error",
                    "code": 404,
                }
            },
        ),
        ("GET", "/api/deployments", b"", 200, []),
        ("GET", "/api/deployments/ghost", b"", 404, {"error": "model 'ghost' is not served here"}),
        ("GET", "/api", b"", 404, {"error": "Not Found"}),  # FastAPI's router, in our body
        (
            "POST",
            "/v2/health/ready",
            b"",
            405,
            {"error": "POST is not allowed on /v2/health/ready"},
        ),
        ("POST", "/metrics", b"", 405, {"error": "POST is not allowed on /metrics"}),
        ("GET", "/v2/nowhere", b"", 404, {"error": "no route for /v2/nowhere"}),
        (
            "GET",
            "/v2/models/ghost/explode",
            b"",
            404,
            {"error": "no route for /v2/models/ghost/explode"},
        ),
        (
            "GET",
            "/v2/models/ghost/versions/one",
            b"",
            400,
            {"error": "version 'one' is not a number"},
        ),
    ],
)
def test_the_server_answers_every_route(
    app: ShipyardApp, method: str, path: str, body: bytes, status: int, document: Any
) -> None:
    answered, headers, answer = asgi_call(app, method, path, body)
    assert answered == status, answer
    assert orjson.loads(answer) == document
    if not path.startswith("/api"):
        assert headers[b"x-request-id"]


def test_the_metrics_route(app: ShipyardApp) -> None:
    status, headers, body = asgi_call(app, "GET", "/metrics")
    assert status == 200
    assert headers[b"content-type"].startswith(b"text/plain")
    assert b"shipyard_requests_total" in body
