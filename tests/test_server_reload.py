"""Hot reload: the server follows its alias in the registry without dropping a request."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from server_helpers import (
    HANG_GUARD_S,
    blob_of,
    client,
    register_tiny,
    running_server,
    server_settings,
    tiny_variant_expected,
    v2_tiny,
    wait_for,
)
from shipyard import Registry

X = [[1.0, 2.0, 3.0], [0.25, -4.0, 1.5]]
SCALES = {1: 1.0, 2: 2.0, 3: 3.0}


class Traffic:
    """One client sending requests back to back from a thread, recording every answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[int, str | None, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(HANG_GUARD_S)

    def _run(self) -> None:
        try:
            with client(self.url) as http:
                while not self._stop.is_set():
                    response = http.post("/v2/models/tiny/infer", json=v2_tiny(X))
                    self.answers.append(
                        (
                            response.status_code,
                            response.headers.get("x-model-version"),
                            response.json(),
                        )
                    )
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def versions(self) -> list[str | None]:
        return [version for _, version, _ in self.answers]


def _check_answers(traffic: Traffic) -> None:
    assert traffic.error is None, traffic.error
    assert traffic.answers
    for status, version, document in traffic.answers:
        assert status == 200, document
        assert version is not None
        assert document["model_version"] == version
        (output,) = document["outputs"]
        values = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
        np.testing.assert_allclose(
            values, tiny_variant_expected(X, SCALES[int(version)]), rtol=1e-6
        )


def test_alias_move_switches_versions_without_errors(tmp_path: Path) -> None:
    settings = server_settings(tmp_path / "home", reload_interval_s=0.2)
    with Registry(settings) as registry:
        register_tiny(registry, tmp_path / "src", 1.0, alias="production")
        register_tiny(registry, tmp_path / "src", 2.0)
        with (
            running_server(settings, models=["tiny"]) as server,
            Traffic(server.url) as traffic,
            Traffic(server.url) as other,
        ):
            wait_for(lambda: len(traffic.answers) >= 20, "traffic on version 1")
            registry.set_alias("tiny", "production", 2, reason="rollout")
            wait_for(lambda: "2" in traffic.versions(), "an answer from version 2")
            seen = len(traffic.answers)
            wait_for(lambda: len(traffic.answers) >= seen + 20, "traffic on version 2")

            with client(server) as http:
                (deployment,) = http.get("/api/deployments").json()
            assert deployment["current_version"] == 2
            assert [v["version"] for v in wait_for(lambda: _versions(server), "v1 unloaded")] == [2]
        events = wait_for(
            lambda: [e for e in registry.events("tiny") if e.kind == "deployment.switched"],
            "the deployment.switched event",
        )

    for client_traffic in (traffic, other):
        _check_answers(client_traffic)
        versions = client_traffic.versions()
        first_v2 = versions.index("2")
        assert set(versions[:first_v2]) == {"1"}
        assert set(versions[first_v2:]) == {"2"}  # each client in sequence: never back to 1
    (switched,) = events
    assert (switched.from_version, switched.to_version) == (1, 2)
    assert switched.reason == "tiny@production moved to 2"


def _versions(server: Any) -> list[dict[str, Any]] | None:
    with client(server) as http:
        (deployment,) = http.get("/api/deployments").json()
    versions: list[dict[str, Any]] = deployment["versions"]
    return versions if len(versions) == 1 else None


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(tmp_path: Path) -> None:
    settings = server_settings(tmp_path / "home", reload_interval_s=0.2)
    with Registry(settings) as registry:
        register_tiny(registry, tmp_path / "src", 1.0)
        register_tiny(registry, tmp_path / "src", 2.0, alias="production")
        broken = register_tiny(registry, tmp_path / "src", 3.0)
        blob = blob_of(registry, broken)
        blob.chmod(0o644)
        blob.write_bytes(b"not an onnx model any more")

        with running_server(settings, models=["tiny"]) as server, Traffic(server.url) as traffic:
            wait_for(lambda: len(traffic.answers) >= 10, "traffic on version 2")
            registry.set_alias("tiny", "production", 3)
            failures = wait_for(
                lambda: [e for e in registry.events("tiny") if e.kind == "deployment.load_failed"],
                "the deployment.load_failed event",
            )
            seen = len(traffic.answers)
            wait_for(lambda: len(traffic.answers) >= seen + 10, "more traffic")
            with client(server) as http:
                ready = http.get("/v2/health/ready")
                (deployment,) = http.get("/api/deployments").json()

    assert ready.status_code == 200
    assert deployment["current_version"] == 2
    assert [v["version"] for v in deployment["versions"]] == [2]
    _check_answers(traffic)
    assert set(traffic.versions()) == {"2"}
    failure = failures[0]
    assert (failure.from_version, failure.to_version) == (2, 3)
    assert failure.reason is not None
    assert "corrupt or was tampered with" in failure.reason
    assert not [e for e in registry.events("tiny") if e.kind == "deployment.switched"]
