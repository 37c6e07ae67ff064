"""Two ``shipyard serve`` replicas on one PostgreSQL database and one artifact store: both
follow an alias move under load with no failed request; feedback given to one replica joins a
request the other served, and one evaluation sees both replicas' windows; the database
stopped under load leaves every loaded model serving, readiness saying why, new loads
refused with a 503 that names the database, and both replicas recovering by themselves when
it is back. (A rollout driven by one replica and obeyed by both, on PostgreSQL too, is in
test_rollout_replicas.py.)

The storage is a fixture giving the replicas' environment, so an artifact store other than
the shared local folder (a bucket) joins as another of its parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest

from replica_helpers import WAIT_S, Load, poll, serve, serve_environment, stop_all
from rollout_models import body, expected_labels, register_classifier
from server_helpers import ServeProcess, client, scrape
from shipyard import Registry, Settings
from shipyard.registry.store import utcnow

# The artifacts in one bucket both replicas read (the folder store's sharing is covered by
# tests/test_rollout_replicas.py on PostgreSQL).
ARTIFACT_STORES = ("s3",)
MONITOR = {"flush_seconds": 1.0}  # windows written and evaluated every second


@pytest.fixture(params=ARTIFACT_STORES)
def storage(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str) -> dict[str, str]:
    """The environment every replica (and the test's registry) is given: one database, one
    artifact store."""
    env = {"SHIPYARD_HOME": str(tmp_path / "home"), "SHIPYARD_DB_URL": postgres_url}
    if request.param == "s3":
        env["SHIPYARD_ARTIFACT_URL"] = request.getfixturevalue("s3_url")
    return env


@pytest.fixture
def shared(storage: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """The test's own registry on the replicas' storage, read from the same variables."""
    for key, value in storage.items():
        monkeypatch.setenv(key, value)
    registry = Registry(Settings())
    try:
        yield registry
    finally:
        registry.close()


def replicas(
    storage: dict[str, str], logs: Path, names: tuple[str, ...], monitor: dict[str, Any] | None
) -> list[ServeProcess]:
    home = Path(storage["SHIPYARD_HOME"])
    servers = []
    for name in names:
        options = None if monitor is None else {**monitor, "replica": name}
        servers.append(serve(home, logs, {**storage, **serve_environment(options, replica=name)}))
    return servers


def answered_by(load: Load, version: str) -> bool:
    return bool(load.versions) and load.versions[-1] == version


def metric(http: httpx2.Client, sample: str, at_least: float) -> bool:
    return scrape(http).value(sample) >= at_least


def infer(http: httpx2.Client, rows: np.ndarray) -> httpx2.Response:
    response = http.post("/v2/models/clf/infer", content=json.dumps(body(rows)))
    assert response.status_code == 200, response.text
    return response


# An alias move under load ----------------------------------------------------------------


def test_both_replicas_follow_an_alias_move_under_load_with_no_failed_request(
    tmp_path: Path, storage: dict[str, str], shared: Registry
) -> None:
    register_classifier(shared, tmp_path / "src", "good", alias="production")
    register_classifier(shared, tmp_path / "src", "good")
    servers = replicas(storage, tmp_path, ("a", "b"), None)
    loads: list[Load] = []
    try:
        for server in servers:
            server.wait_ready(WAIT_S)
        loads = [Load(s.url, seed=i).start() for i, s in enumerate(servers)]
        poll(lambda: all(answered_by(load, "1") for load in loads), "both to serve version 1")
        shared.set_alias("clf", "production", 2)
        poll(lambda: all(answered_by(load, "2") for load in loads), "both to follow the move")
        moved = [load.answered for load in loads]
        poll(lambda: all(load.answered > n + 20 for load, n in zip(loads, moved, strict=True)),
             "more requests after the move")  # fmt: skip
    finally:
        stop_all(*loads, *servers)
    for load in loads:
        assert load.failures() == {}, load.statuses
        assert load.wrong == []
        # the switch is one assignment: version 1 until it, version 2 from it on
        first_new = load.versions.index("2")
        assert set(load.versions[:first_new]) == {"1"}
        assert set(load.versions[first_new:]) == {"2"}
    for server in servers:
        assert "Traceback" not in server.stderr(), server.stderr()


# Feedback and windows across replicas -----------------------------------------------------


def test_feedback_to_one_replica_joins_the_others_request_and_windows_merge(
    tmp_path: Path, storage: dict[str, str], shared: Registry
) -> None:
    reference = tmp_path / "reference.csv"
    np.savetxt(reference, np.random.default_rng(0).normal(size=(200, 3)), delimiter=",")
    register_classifier(shared, tmp_path / "src", "good", alias="production",
                        reference_data=reference)  # fmt: skip
    version = shared.get_version("clf@production")
    servers = replicas(storage, tmp_path, ("a", "b"), MONITOR)
    rng = np.random.default_rng(3)
    rows_a, rows_b = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
    try:
        for server in servers:
            server.wait_ready(WAIT_S)
        with client(servers[0].url) as http_a, client(servers[1].url) as http_b:
            served_a = infer(http_a, rows_a.astype(np.float32))
            served_b = infer(http_b, rows_b.astype(np.float32))
            id_a = served_a.headers["x-request-id"]
            id_b = served_b.headers["x-request-id"]

            # replica a writes its prediction log every second; then b can join it
            def logged() -> bool:
                return id_a in {p.request_id for p in shared.monitoring.predictions(version)}

            poll(logged, "replica a's prediction log to reach the database")
            right = expected_labels(rows_a).tolist()  # a's request labelled right ...
            wrong = [(label + 1) % 4 for label in expected_labels(rows_b).tolist()]  # b's wrong
            labels = [{"request_id": id_a, "label": right}, {"request_id": id_b, "label": wrong}]
            answer = http_b.post("/v2/models/clf/feedback", json={"labels": labels})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"model": "clf", "matched": 2, "unknown": []}

            # every replica's evaluation merges both replicas' windows: 6 + 4 rows
            for http in (http_a, http_b):
                poll(partial(metric, http, "shipyard_monitor_window_rows", 10),
                     "an evaluation of both replicas' windows")  # fmt: skip
            # b was told of the labels: its performance joins a's request and its own
            accuracy = poll(
                lambda: scrape(http_b).value("shipyard_model_performance", metric="accuracy"),
                "b's live accuracy from the labels",
            )
            assert accuracy == pytest.approx(6 / 10)
    finally:
        stop_all(*servers)
    labelled = {
        p.request_id: p.label for p in shared.monitoring.predictions(version, labelled_only=True)
    }
    assert labelled == {id_a: right, id_b: wrong}
    windows = shared.monitoring.windows(version)
    assert {w.replica for w in windows} == {"a", "b"}
    assert sum(w.rows for w in windows if w.replica == "a") == 6
    assert sum(w.rows for w in windows if w.replica == "b") == 4


# The database stopped under load ----------------------------------------------------------


def ready_body(server: ServeProcess) -> dict[str, Any]:
    response = httpx2.get(server.url + "/v2/health/ready", timeout=WAIT_S)
    assert response.status_code == 200, response.text  # ready all along: it can serve
    answer: dict[str, Any] = response.json()
    return answer


def registry_reason(server: ServeProcess, cleared: bool = False) -> str | bool | None:
    """What readiness says of the registry; with ``cleared``, whether it says nothing."""
    answer = ready_body(server)
    reason: str | None = answer.get("registry")
    return answer == {"ready": True} if cleared else reason


def reachable(server: ServeProcess) -> float:
    with client(server.url) as http:
        return scrape(http).value("shipyard_registry_reachable")


def test_the_database_stopped_under_load_leaves_loaded_models_serving_and_both_recover(
    tmp_path: Path, storage: dict[str, str], shared: Registry, postgres_cluster: Any
) -> None:
    register_classifier(shared, tmp_path / "src", "good", alias="production")
    register_classifier(shared, tmp_path / "src", "good")
    servers = replicas(storage, tmp_path, ("a", "b"), MONITOR)
    loads: list[Load] = []
    late: ServeProcess | None = None
    halted: datetime | None = None
    resumed: datetime | None = None
    try:
        for server in servers:
            server.wait_ready(WAIT_S)
        loads = [Load(s.url, seed=i).start() for i, s in enumerate(servers)]
        poll(lambda: all(load.answered > 20 for load in loads), "load on both replicas")
        assert [ready_body(s) for s in servers] == [{"ready": True}] * 2
        assert [reachable(s) for s in servers] == [1.0, 1.0]

        database = "the metadata database"  # how the registry words every failure of it
        halted = utcnow()
        postgres_cluster.halt()
        try:
            before = [load.answered for load in loads]
            for server in servers:
                reason = poll(partial(registry_reason, server), "readiness to say why")
                assert reason.startswith("unreachable: "), reason
                assert database in reason, reason  # it names the database
                assert reachable(server) == 0.0
                with client(server.url) as http:
                    refused = http.post("/api/deployments/clf/versions/2/load")
                    assert refused.status_code == 503, refused.text
                    message = refused.json()["error"]
                    assert message.startswith("cannot load clf:2 now: "), message
                    assert database in message, message
                    assert "the versions loaded here keep serving" in message
                    # several flushes and reload ticks fail while the database is away
                    poll(partial(metric, http, "shipyard_monitor_failures_total", 3),
                         "the monitor to fail a few flushes")  # fmt: skip
            # a replica started now cannot open the registry: it exits, naming the database
            late = serve(Path(storage["SHIPYARD_HOME"]), tmp_path,
                         {**storage, **serve_environment()})  # fmt: skip
            assert late.process.wait(WAIT_S) == 9  # StorageError's exit code
            assert "metadata database" in late.stderr(), late.stderr()
            poll(lambda: all(load.answered > n + 50 for load, n in zip(loads, before, strict=True)),
                 "requests served during the outage")  # fmt: skip
        finally:
            postgres_cluster.resume()
            resumed = utcnow()

        for server in servers:
            poll(partial(registry_reason, server, cleared=True), "the reason to clear")
            assert reachable(server) == 1.0
        with client(servers[0].url) as http:  # loads work again
            loaded = http.post("/api/deployments/clf/versions/2/load")
            assert loaded.status_code == 200, loaded.text
        shared.set_alias("clf", "production", 2)
        poll(lambda: all(answered_by(load, "2") for load in loads), "both to follow the move")
    finally:
        stop_all(*loads, *servers, late)
        if not postgres_cluster.running:
            postgres_cluster.resume()

    for load in loads:
        assert load.failures() == {}, load.statuses  # not one request failed
        assert load.wrong == []
    for server in servers:
        log = server.stderr()
        assert log.count("the registry is unreachable") == 1, log  # once per outage ...
        assert log.count("the registry is reachable again") == 1, log
        assert log.count("the monitor keeps its open windows") == 1, log
        assert log.count("the monitor's database is reachable again") == 1, log
        assert "Traceback" not in log, log  # ... and no traceback at every tick
    # the monitor kept the window open through the outage and wrote it afterwards: every
    # request of each replica is in its windows
    assert halted is not None
    assert resumed is not None
    for name, load in zip(("a", "b"), loads, strict=True):
        windows = [
            w
            for number in (1, 2)
            for w in shared.monitoring.windows(shared.get_version(f"clf:{number}"))
            if w.replica == name
        ]
        assert any(w.started_at < halted and w.ended_at > resumed for w in windows), windows
        assert sum(w.stats["requests"] for w in windows) == load.answered
