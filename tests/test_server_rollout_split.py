"""A running server follows a rollout's split from the database: the candidate is loaded
beside the baseline, takes its share of requests (sticky by a header when asked), each answer
says which version gave it, and the split ends with the rollout."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from server_helpers import (
    client,
    register_tiny,
    running_server,
    server_settings,
    tiny_variant_expected,
    wait_for,
)
from shipyard import Registry
from shipyard.rollout.states import State, move

X = [[1.0, 2.0, 3.0]]
BODY = json.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": X[0]}]})


def _progressing(registry: Registry, weight: float, spec: dict[str, Any]) -> Any:
    rollout = registry.rollouts.create("tiny", 1, 2, "canary", "pending", spec, actor=None)
    lease = registry.leases.acquire(f"rollout:{rollout.id}", "test", ttl_s=300)
    assert lease is not None
    rollout = move(registry.rollouts, lease, rollout, State.VALIDATING, "pre-flight")
    rollout = move(
        registry.rollouts, lease, rollout, State.PROGRESSING, "step 1", weight=weight, step=1
    )
    return rollout, lease


def _answers(http: Any, count: int, headers: dict[str, str] | None = None) -> list[str]:
    versions = []
    for _ in range(count):
        response = http.post("/v2/models/tiny/infer", content=BODY, headers=headers or {})
        assert response.status_code == 200, response.text
        version = response.headers["x-model-version"]
        assert response.json()["model_version"] == version
        (output,) = response.json()["outputs"]
        np.testing.assert_allclose(
            np.asarray(output["data"]).reshape(output["shape"]),
            tiny_variant_expected(X, float(version)),
            rtol=1e-6,
        )
        versions.append(version)
    return versions


def _split(http: Any) -> dict[str, Any] | None:
    (deployment,) = http.get("/api/deployments").json()
    split: dict[str, Any] | None = deployment["split"]
    return split


@contextlib.contextmanager
def _serving(tmp_path: Path) -> Iterator[tuple[Registry, Any]]:
    """tiny:1 in production, tiny:2 registered, a server following the registry closely."""
    # the test drives the rollouts itself: the server only follows them
    settings = server_settings(tmp_path / "home", reload_interval_s=0.1, rollouts=False)
    with Registry(settings) as registry:
        register_tiny(registry, tmp_path / "src", 1.0, alias="production")
        register_tiny(registry, tmp_path / "src", 2.0)
        with running_server(settings, models=["tiny"]) as server, client(server) as http:
            yield registry, http


def test_a_rollouts_weight_splits_the_traffic_then_ends_with_it(tmp_path: Path) -> None:
    with _serving(tmp_path) as (registry, http):
        assert set(_answers(http, 20)) == {"1"}
        rollout, lease = _progressing(registry, 0.3, {})
        wait_for(lambda: _split(http), "the split to be followed")
        versions = _answers(http, 600)
        share = versions.count("2") / len(versions)
        assert abs(share - 0.3) <= 4 * math.sqrt(0.3 * 0.7 / len(versions))
        split = _split(http)
        assert split is not None
        assert split["candidate"] == 2
        assert split["weight"] == 0.3
        assert split["routed"]["candidate"] == versions.count("2")
        assert split["routed"]["baseline"] == versions.count("1")

        rollout = move(registry.rollouts, lease, rollout, State.ROLLING_BACK, "test")
        move(registry.rollouts, lease, rollout, State.ROLLED_BACK, "test", weight=0.0)
        wait_for(lambda: _split(http) is None, "the split to end")
        assert set(_answers(http, 50)) == {"1"}
        (deployment,) = wait_for(
            lambda: [d for d in http.get("/api/deployments").json() if len(d["versions"]) == 1],
            "the candidate unloaded",
        )
        assert deployment["versions"][0]["version"] == 1


def test_a_sticky_header_keeps_each_user_on_one_version(tmp_path: Path) -> None:
    with _serving(tmp_path) as (registry, http):
        _progressing(registry, 0.5, {"sticky_header": "X-User-Id"})
        wait_for(lambda: _split(http), "the split to be followed")
        seen: dict[str, set[str]] = {}
        for user in range(40):
            headers = {"x-user-id": f"user-{user}"}
            seen[f"user-{user}"] = set(_answers(http, 5, headers))
        assert all(len(versions) == 1 for versions in seen.values())  # sticky
        assert {next(iter(v)) for v in seen.values()} == {"1", "2"}  # and split
        assert set(_answers(http, 60)) == {"1", "2"}  # no header: drawn per request


def test_a_user_in_the_canary_stays_in_it_as_the_weight_grows(tmp_path: Path) -> None:
    with _serving(tmp_path) as (registry, http):
        rollout, lease = _progressing(registry, 0.1, {"sticky_header": "x-user-id"})
        users = [f"user-{n}" for n in range(120)]
        seen: list[dict[str, str]] = []
        for weight in (0.1, 0.3, 0.6):
            if weight != rollout.weight:
                rollout = move(
                    registry.rollouts, lease, rollout, State.PROGRESSING, "next step",
                    weight=weight, step=rollout.step + 1,
                )  # fmt: skip
            wait_for(lambda w=weight: (_split(http) or {}).get("weight") == w, f"{weight}")
            seen.append({u: _answers(http, 1, {"x-user-id": u})[0] for u in users})
        for before, after in itertools.pairwise(seen):
            stayed = [u for u, version in before.items() if version == "2"]
            assert stayed
            assert all(after[u] == "2" for u in stayed)  # in the canary once, in it still
        shares = [sum(v == "2" for v in step.values()) / len(users) for step in seen]
        assert shares == sorted(shares)
        assert shares[0] < shares[-1]
