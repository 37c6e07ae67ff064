"""The management API under /api/, and bearer tokens for it and for inference."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from server_helpers import (
    client,
    register_tiny,
    running_server,
    server_settings,
    tiny_variant_expected,
    triton_url,
    v2_tiny,
)
from shipyard import Registry
from shipyard.server import Server

X = [[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]]


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """tiny:1 (production) and tiny:2, whose weights are doubled."""
    root = tmp_path_factory.mktemp("management")
    with Registry(server_settings(root / "home")) as registry:
        register_tiny(registry, root / "src", 1.0, alias="production")
        register_tiny(registry, root / "src", 2.0)
        yield registry


@pytest.fixture(scope="module")
def server(two_versions: Registry) -> Iterator[Server]:
    with running_server(server_settings(two_versions.settings.home), models=["tiny"]) as s:
        yield s


@pytest.fixture
def http(server: Server) -> Iterator[Any]:
    with client(server) as c:
        yield c


def _outputs(response: Any) -> np.ndarray:
    (output,) = response.json()["outputs"]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def test_docs_and_openapi(http: Any) -> None:
    spec = http.get("/api/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert "/api/deployments" in paths
    assert "/api/deployments/{name}/versions/{version}/load" in paths
    docs = http.get("/api/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]


def test_list_and_get_deployments(http: Any) -> None:
    listing = http.get("/api/deployments")
    assert listing.status_code == 200
    (tiny,) = listing.json()
    assert tiny["name"] == "tiny"
    assert tiny["follows"] == "production"
    assert tiny["current_version"] == 1
    assert [v["version"] for v in tiny["versions"]] == [1]
    assert tiny["versions"][0]["state"] == "ready"
    assert tiny["versions"][0]["queued_rows"] == 0

    one = http.get("/api/deployments/tiny")
    assert one.status_code == 200
    assert one.json()["current_version"] == 1

    missing = http.get("/api/deployments/ghost")
    assert missing.status_code == 404
    assert missing.json() == {"error": "model 'ghost' is not served here"}


def test_load_infer_by_version_and_unload(http: Any) -> None:
    version_2 = "/v2/models/tiny/versions/2/infer"
    before = http.post(version_2, json=v2_tiny(X))
    assert before.status_code == 404
    assert "load it with POST /api/deployments/tiny/versions/2/load" in before.json()["error"]

    loaded = http.post("/api/deployments/tiny/versions/2/load")
    assert loaded.status_code == 200, loaded.text
    assert [v["version"] for v in loaded.json()["versions"]] == [1, 2]
    assert loaded.json()["current_version"] == 1

    by_version = http.post(version_2, json=v2_tiny(X))
    assert by_version.status_code == 200, by_version.text
    assert by_version.headers["x-model-version"] == "2"
    assert by_version.json()["model_version"] == "2"
    np.testing.assert_allclose(_outputs(by_version), tiny_variant_expected(X, 2.0), rtol=1e-6)

    current = http.post("/v2/models/tiny/infer", json=v2_tiny(X))
    assert current.headers["x-model-version"] == "1"
    np.testing.assert_allclose(_outputs(current), tiny_variant_expected(X, 1.0), rtol=1e-6)

    again = http.post("/api/deployments/tiny/versions/2/load")  # already loaded: a no-op
    assert again.status_code == 200

    conflict = http.post("/api/deployments/tiny/versions/1/unload")
    assert conflict.status_code == 409
    assert conflict.json() == {
        "error": "tiny:1 is the current version of tiny; move its alias first"
    }

    unloaded = http.post("/api/deployments/tiny/versions/2/unload")
    assert unloaded.status_code == 200, unloaded.text
    assert [v["version"] for v in unloaded.json()["versions"]] == [1]
    assert http.post(version_2, json=v2_tiny(X)).status_code == 404

    twice = http.post("/api/deployments/tiny/versions/2/unload")
    assert twice.status_code == 404
    assert twice.json() == {"error": "tiny:2 is not loaded"}


def test_loading_what_the_registry_lacks(http: Any) -> None:
    missing_version = http.post("/api/deployments/tiny/versions/9/load")
    assert missing_version.status_code == 404
    assert "9" in missing_version.json()["error"]

    missing_model = http.post("/api/deployments/ghost/versions/1/load")
    assert missing_model.status_code == 404
    assert "ghost" in missing_model.json()["error"]
    # A failed load leaves nothing behind: the model is still unknown, not "loading".
    assert [d["name"] for d in http.get("/api/deployments").json()] == ["tiny"]
    ready = http.get("/v2/models/ghost/ready")
    assert ready.status_code == 404
    assert http.get("/v2/health/ready").status_code == 200

    not_a_number = http.post("/api/deployments/tiny/versions/two/load")
    assert not_a_number.status_code == 422


def test_loading_a_model_not_served_makes_it_current(
    two_versions: Registry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    register_tiny(two_versions, tmp_path_factory.mktemp("other"), 3.0, name="other")
    settings = server_settings(two_versions.settings.home)
    with running_server(settings, models=["tiny"]) as s, client(s) as http:
        assert http.post("/v2/models/other/infer", json=v2_tiny(X)).status_code == 404
        loaded = http.post("/api/deployments/other/versions/1/load")
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["current_version"] == 1
        answer = http.post("/v2/models/other/infer", json=v2_tiny(X))
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-model-version"] == "1"
        np.testing.assert_allclose(_outputs(answer), tiny_variant_expected(X, 3.0), rtol=1e-6)


# Tokens --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(two_versions: Registry) -> Iterator[Server]:
    settings = server_settings(
        two_versions.settings.home, api_token="admin-secret", inference_token="infer-secret"
    )
    with running_server(settings, models=["tiny"]) as s:
        yield s


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "this endpoint needs 'Authorization: Bearer <token>'"),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, 401, None),
        ({"Authorization": "Bearer"}, 401, None),
        ({"Authorization": "Bearer wrong"}, 403, "the bearer token is not valid here"),
        ({"Authorization": "Bearer infer-secret"}, 403, "the bearer token is not valid here"),
        ({"Authorization": "Bearer admin-secret"}, 200, None),
        ({"Authorization": "bearer admin-secret"}, 200, None),
    ],
)
def test_api_token(
    guarded: Server, headers: dict[str, str], status: int, message: str | None
) -> None:
    with client(guarded) as http:
        response = http.get("/api/deployments", headers=headers)
        assert response.status_code == status, response.text
        if message is not None:
            assert response.json() == {"error": message}
        load = http.post("/api/deployments/tiny/versions/2/load", headers=headers)
        assert load.status_code == status, load.text


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "this endpoint needs 'Authorization: Bearer <token>'"),
        ({"Authorization": "Bearer wrong"}, 403, "the bearer token is not valid here"),
        ({"Authorization": "Bearer admin-secret"}, 403, "the bearer token is not valid here"),
        ({"Authorization": "Token infer-secret"}, 401, None),
    ],
)
def test_inference_token_refusals(
    guarded: Server, headers: dict[str, str], status: int, message: str | None
) -> None:
    with client(guarded) as http:
        for path, body in (
            ("/v2/models/tiny/infer", v2_tiny(X)),
            ("/v1/models/tiny:predict", {"instances": X}),
        ):
            response = http.post(path, json=body, headers=headers)
            assert response.status_code == status, response.text
            if message is not None:
                assert response.json() == {"error": message}
        # Health and metadata stay open: load balancers and probes carry no token.
        assert http.get("/v2/health/ready").status_code == 200
        assert http.get("/v2/models/tiny").status_code == 200


def test_inference_token_with_tritonclient(guarded: Server) -> None:
    tc = triton.InferenceServerClient(triton_url(guarded))
    try:
        x = triton.InferInput("x", [2, 3], "FP32")
        x.set_data_from_numpy(np.asarray(X, dtype=np.float32))
        with pytest.raises(InferenceServerException) as info:
            tc.infer("tiny", [x])
        assert info.value.status() == "401"
        assert info.value.message() == "this endpoint needs 'Authorization: Bearer <token>'"
        with pytest.raises(InferenceServerException) as info:
            tc.infer("tiny", [x], headers={"Authorization": "Bearer nope"})
        assert info.value.status() == "403"
        assert info.value.message() == "the bearer token is not valid here"
        result = tc.infer("tiny", [x], headers={"Authorization": "Bearer infer-secret"})
        np.testing.assert_allclose(result.as_numpy("y"), tiny_variant_expected(X, 1.0), rtol=1e-6)
    finally:
        tc.close()


def test_unguarded_server_needs_no_token(server: Server) -> None:
    with client(server) as http:
        response = http.post(
            "/v2/models/tiny/infer", json=v2_tiny(X), headers={"Authorization": "Bearer anything"}
        )
    assert response.status_code == 200
