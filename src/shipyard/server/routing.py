"""The routing table: method and path pattern to handler, matched without regular expressions.

A pattern is one of

    /v2/health/live                             the path itself
    /v2/models/{name}/feedback                  a model name (one path segment), then the rest
    /v2/models/{name}[/versions/{version}]      ... optionally followed by a version number
    /v2/models/{name}/versions/{version}/infer  ... or always followed by one
    /v1/models/{name}:predict                   a model name, then a verb after the last colon
    /api/{path}                                 whatever follows the prefix

and the method is an HTTP method or ANY. A request's path is looked up in a dict of the
exact paths first, then tested against the few prefixes (the text before a pattern's first
brace), longest first; under a prefix one split of the path finds the name, the version and
the action, and a dict the handler. A version that is not a number is a 400 under its
prefix. A path no route takes is a 404 to GET and a 405 to any other method; ``no_route``
as the ``{path}`` of a prefix makes every other path under it a 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from shipyard.errors import InvalidInputError, NotFoundError, ShipyardError
from shipyard.server.errors import plain_error, respond_error
from shipyard.server.http import JSON, ASGIApp, Receive, RequestIds, Scope, Send, respond

# (scope, receive, send, model name, version): the name is "" and the version None where the
# pattern names neither.
Handler = Callable[[Scope, Receive, Send, str, int | None], Awaitable[None]]
ANY = "*"

_NAME = "{name}"
_REST = "{path}"
_OPTIONAL_VERSION = "[/versions/{version}]"
_VERSION = "/versions/{version}"
_VERSIONS = "versions/"
_AFTER_VERSIONS = len(_VERSIONS)


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: str
    handler: Handler


async def no_route(
    scope: Scope, receive: Receive, send: Send, name: str, version: int | None
) -> None:
    """404 to every method, for a prefix whose every path the table names."""
    raise NotFoundError(f"no route for {scope['path']}")


def mount(app: ASGIApp) -> Handler:
    """An ASGI app as a handler: it sees the request as it came."""

    async def handler(
        scope: Scope, receive: Receive, send: Send, name: str, version: int | None
    ) -> None:
        await app(scope, receive, send)

    return handler


Methods = dict[str, Handler]


class _Prefix:
    """The routes under one prefix: by action after a name and maybe a version, by verb after
    a name, or any path."""

    __slots__ = ("named", "prefix", "rest", "start", "verbs", "versioned")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.start = len(prefix)
        self.named: dict[str, Methods] = {}  # action -> method -> handler, after {name}
        self.versioned: dict[str, Methods] = {}  # the same after {name}/versions/{version}
        self.verbs: list[tuple[str, int, Methods]] = []  # (":verb", -len(":verb"), methods)
        self.rest: Methods = {}  # {path}

    def add(self, route: Route, rest: str) -> None:
        if rest == _REST:
            _put(self.rest, route)
            return
        if not rest.startswith(_NAME):
            raise ValueError(f"{route.pattern!r}: a pattern's first brace is {_NAME} or {_REST}")
        rest = rest[len(_NAME) :]
        tables = [self.named]
        if rest.startswith(_OPTIONAL_VERSION):
            tables, rest = [self.named, self.versioned], rest[len(_OPTIONAL_VERSION) :]
        elif rest.startswith(_VERSION):
            tables, rest = [self.versioned], rest[len(_VERSION) :]
        if "{" in rest or "[" in rest:
            raise ValueError(f"{route.pattern!r}: only {_NAME} and a version may be named")
        if rest.startswith(":") and len(tables) == 1 and tables[0] is self.named:
            methods = next((known for verb, _, known in self.verbs if verb == rest), None)
            if methods is None:
                methods = {}
                self.verbs.append((rest, -len(rest), methods))
            _put(methods, route)
        elif rest.startswith("/" + _VERSIONS):
            raise ValueError(f"{route.pattern!r}: a version is written {_VERSION}")
        elif rest == "" or rest.startswith("/"):
            for table in tables:
                _put(table.setdefault(rest[1:], {}), route)
        else:
            raise ValueError(f"{route.pattern!r}: {_NAME} ends at a slash or a verb's colon")
        if self.verbs and (self.named or self.versioned):
            raise ValueError(f"{self.prefix!r}: verbs and actions under one prefix are ambiguous")


def _put(methods: Methods, route: Route) -> None:
    if route.method in methods:
        raise ValueError(f"{route.method} {route.pattern} is routed twice")
    methods[route.method] = route.handler


class Router:
    """The ASGI app of a routing table. A ShipyardError that a handler raises before it
    answers is answered here, as are the requests no route takes."""

    def __init__(self, routes: Iterable[Route], ids: RequestIds) -> None:
        self._ids = ids
        self._exact: dict[str, Methods] = {}
        prefixes: dict[str, _Prefix] = {}
        for route in routes:
            brace = route.pattern.find("{")
            if brace < 0:
                _put(self._exact.setdefault(route.pattern, {}), route)
                continue
            prefix = route.pattern[:brace]
            prefixes.setdefault(prefix, _Prefix(prefix)).add(route, route.pattern[brace:])
        self._prefixes = sorted(prefixes.values(), key=lambda p: -len(p.prefix))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        name = ""
        version: int | None = None
        handler: Handler | None = None
        try:
            methods = self._exact.get(path)
            if methods is not None:
                handler = methods.get(method) or methods.get(ANY)
            else:
                # Matched here rather than in a method of _Prefix: this runs for every request.
                for group in self._prefixes:
                    if not path.startswith(group.prefix):
                        continue
                    if group.verbs:
                        for verb, cut, verb_methods in group.verbs:
                            if path.endswith(verb):
                                name, methods = path[group.start : cut], verb_methods
                                break
                    elif group.named or group.versioned:
                        name, _, action = path[group.start :].partition("/")
                        methods = group.named.get(action)
                        if methods is None and action.startswith(_VERSIONS):
                            number, _, action = action[_AFTER_VERSIONS:].partition("/")
                            if not (number.isascii() and number.isdigit()):
                                raise InvalidInputError(f"version {number!r} is not a number")
                            version = int(number)
                            methods = group.versioned.get(action)
                    if methods is not None:
                        handler = methods.get(method) or methods.get(ANY)
                    if handler is None:
                        handler = group.rest.get(method) or group.rest.get(ANY)
                    break
            if handler is not None:
                await handler(scope, receive, send, name, version)
            elif method == "GET":
                raise NotFoundError(f"no route for {path}")
            else:
                body = plain_error(405, f"{method} is not allowed on {path}")
                await respond(send, 405, body, JSON, [(b"x-request-id", self._ids.of(scope))])
        except ShipyardError as exc:
            await respond_error(send, exc, self._ids.of(scope))
