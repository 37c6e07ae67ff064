"""The rollout routes under /api/: the same operations as ``shipyard rollout``, with the same
refusals, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollout_models import register_classifier
from server_helpers import client, running_server, server_settings
from shipyard import Registry


@pytest.fixture
def http(tmp_path: Path) -> Iterator[Any]:
    """A server whose controller is off: the rollouts stay where the routes put them."""
    settings = server_settings(tmp_path / "home", rollouts=False, monitor={"enabled": False})
    with Registry(settings) as registry:
        register_classifier(registry, tmp_path / "src", "good", alias="production")
        register_classifier(registry, tmp_path / "src", "different")
        with running_server(settings, models=["clf"]) as server, client(server) as session:
            yield session


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"candidate": 1}, 400, "the candidate is the baseline (clf:1): nothing to roll out"),
        ({"candidate": 7}, 404, "model 'clf' has no version 7"),
        (
            {"candidate": 2, "settings": {"steps": [0.5, 0.1]}},
            400,
            "canary steps must rise strictly within (0, 100] percent, got 50, 10",
        ),
        (
            {"candidate": 2, "settings": {"interval_s": 0.5}},
            422,
            "body 'settings.interval_s': Input should be greater than or equal to 1",
        ),
        (
            {"candidate": 2, "settings": {"strategy": "big-bang"}},
            422,
            "body 'settings.strategy': Input should be 'canary', 'blue-green', 'ab' or 'shadow'",
        ),
        (
            {"candidate": 2, "settings": {"strategy": "ab", "goal": "f1"}},
            422,
            "body 'settings.goal': Input should be 'accuracy', 'mae' or 'latency'",
        ),
    ],
)
def test_a_bad_start_is_refused(http: Any, body: dict[str, Any], status: int, message: str) -> None:
    response = http.post("/api/rollouts/clf/start", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert http.get("/api/rollouts/clf").status_code == 404


def test_start_read_and_step_in(http: Any) -> None:
    started = http.post(
        "/api/rollouts/clf/start", json={"candidate": 2, "settings": {"steps": [0.1]}}
    )
    assert started.status_code == 201, started.text
    assert (started.json()["state"], started.json()["spec"]["steps"]) == ("pending", [0.1])
    again = http.post("/api/rollouts/clf/start", json={"candidate": 2})
    assert again.status_code == 409
    assert "clf already has rollout 1 (pending)" in again.json()["error"]
    assert http.get("/api/rollouts/clf").json()["id"] == 1
    resumed = http.post("/api/rollouts/clf/resume")
    assert resumed.status_code == 409
    assert resumed.json() == {"error": "rollout 1 is pending, not paused"}
    aborted = http.post("/api/rollouts/clf/abort")
    assert aborted.status_code == 202
    assert aborted.json()["command"] == "abort"
    assert [r["id"] for r in http.get("/api/rollouts/clf/history").json()] == [1]
    assert http.post("/api/rollouts/clf/undo").status_code == 404
    assert http.get("/api/rollouts/nope").status_code == 404
