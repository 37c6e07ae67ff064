"""The management API keeps to its OpenAPI document: schemathesis runs every check against a
real server, with and without SHIPYARD_API_TOKEN, and the document declares every error with
the one error body."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server_helpers import client, register_tiny, running_server, server_settings
from shipyard import Registry
from shipyard.server import Server

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
TOKEN = "schema-secret"
UNLOAD = "/api/deployments/{name}/versions/{version}/unload"
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """tiny:1 (production, served) and tiny:2, which the API can load and unload."""
    root = tmp_path_factory.mktemp("api-schema")
    with Registry(server_settings(root / "home")) as registry:
        register_tiny(registry, root / "src", 1.0, alias="production")
        register_tiny(registry, root / "src", 2.0)
        yield registry


@pytest.fixture(scope="module", params=[None, TOKEN], ids=["open", "guarded"])
def server(request: pytest.FixtureRequest, two_versions: Registry) -> Iterator[Server]:
    settings = server_settings(two_versions.settings.home, api_token=request.param)
    with running_server(settings, models=["tiny"]) as s:
        yield s


def _document(server: Server) -> Any:
    with client(server) as http:
        response = http.get("/api/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()


def test_schemathesis_finds_nothing(server: Server, tmp_path: Path) -> None:
    """Every check schemathesis has, on every operation: each status answered is declared,
    each body fits its schema, bad input is refused, the token is enforced."""
    # A schema-valid rollout may still break a rule no schema can state (steps that rise, a
    # deadline of at least the interval): that is a 400, and the check is told so.
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[checks.positive_data_acceptance]\n"
        'expected-statuses = ["2xx", "400", "401", "403", "404", "409"]\n'
    )
    command = [
        SCHEMATHESIS,
        "--config-file",
        str(config),
        "run",
        f"{server.url}/api/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "20",
        "--seed",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
    ]
    if server.settings.api_token:
        command += ["--header", f"Authorization: Bearer {server.settings.api_token}"]
    # in tmp_path: schemathesis and hypothesis write their folders where they run
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "failures" not in output, output  # warnings (data it could not reach) are not
    assert re.search(r"(\d+) generated, \1 passed", output), output
    operations = sum(len(methods) for methods in _document(server)["paths"].values())
    assert f"{operations} selected / {operations} total" in output, output


def test_unload_declares_its_errors_with_the_error_body(server: Server) -> None:
    document = _document(server)
    responses = document["paths"][UNLOAD]["post"]["responses"]
    for status in ("404", "409", "422"):
        assert responses[status]["content"]["application/json"]["schema"] == ERROR_BODY
    assert "move its alias first" in responses["409"]["description"]
    error = document["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["type"] == "string"
    assert error["additionalProperties"] is False


def test_every_error_of_every_route_has_the_error_body(server: Server) -> None:
    """Routes added later too: FastAPI's own HTTPValidationError never shows up."""
    document = _document(server)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    guarded = server.settings.api_token is not None
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {s: r for s, r in operation["responses"].items() if not s.startswith("2")}
            for status, response in errors.items():
                assert response["content"]["application/json"]["schema"] == ERROR_BODY, (
                    f"{method} {path} {status}"
                )
                assert response["description"], f"{method} {path} {status}"
            assert ({"401", "403"} <= set(errors)) is guarded, f"{method} {path}"
            assert ("security" in operation) is guarded, f"{method} {path}"
    schemes = document.get("components", {}).get("securitySchemes", {})
    assert bool(schemes) is guarded


def test_fastapi_errors_answer_with_the_error_body(server: Server) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"} if server.settings.api_token else {}
    with client(server, headers=headers) as http:
        not_a_number = http.post("/api/deployments/tiny/versions/two/load")
        assert not_a_number.status_code == 422
        assert not_a_number.json() == {
            "error": "path parameter 'version': Input should be a valid integer, unable to "
            "parse string as an integer (got 'two')"
        }
        huge = http.post("/api/deployments/tiny/versions/99999999999999999999999/load")
        assert huge.status_code == 422  # refused before the registry sees it
        assert "less than or equal to 2147483647" in huge.json()["error"]
