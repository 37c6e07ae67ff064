"""The retrain trigger: which evaluations alert, the policy that keeps it from looping, and a
real server that retrains a model whose world changed and rolls the result out by itself."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest

from retrain_world import new_world, train_champion
from server_helpers import client, running_server, server_settings, wait_for
from shipyard import Registry, Settings
from shipyard.monitor.drift import DriftReport, Thresholds
from shipyard.monitor.evaluation import Evaluation
from shipyard.retrain.service import lease_name
from shipyard.retrain.trigger import alert_of, refusal
from shipyard.settings import RetrainSettings


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    registry = Registry(Settings(home=tmp_path / "home"))
    train_champion(registry, tmp_path / "src")
    yield registry
    registry.close()


def _evaluation(
    registry: Registry, performance: dict[str, Any], drift: DriftReport | None = None
) -> Evaluation:
    now = datetime.now(UTC)
    return Evaluation(
        version=registry.get_version("world:1"),
        evaluated_at=now,
        since=now - timedelta(hours=1),
        rows=100,
        requests=100,
        drift=drift,
        quality={},
        performance=performance,
        window=None,
    )


def test_a_drop_in_live_accuracy_alerts(registry: Registry) -> None:
    options = RetrainSettings(min_labelled_rows=50, performance_drop=0.05)
    registered = registry.get_version("world:1").metrics["accuracy"]
    fine = _evaluation(registry, {"rows": 200, "accuracy": registered - 0.04})
    assert alert_of(fine, options) is None
    dropped = _evaluation(registry, {"rows": 200, "accuracy": 0.66})
    alert = alert_of(dropped, options)
    assert alert is not None
    assert (alert.model, alert.version, alert.kind) == ("world", 1, "performance")
    assert (
        alert.reason
        == f"live accuracy of world:1 0.660 on 200 labelled rows, registered {registered:.3f}"
    )
    too_few = _evaluation(registry, {"rows": 49, "accuracy": 0.1})
    assert alert_of(too_few, options) is None
    deaf = RetrainSettings(on=("drift",))
    assert alert_of(dropped, deaf) is None


def test_dataset_drift_alerts(registry: Registry) -> None:
    drift = DriftReport(
        columns=[], predictions=[], drifted_share=0.6, dataset_drift=True,
        prediction_drift=0.0, thresholds=Thresholds(),
    )  # fmt: skip
    alert = alert_of(_evaluation(registry, {}, drift), RetrainSettings())
    assert alert is not None
    assert (alert.kind, alert.reason) == ("drift", "60% of the features of world:1 drifted")
    calm = DriftReport([], [], 0.1, False, 0.0, Thresholds())
    assert alert_of(_evaluation(registry, {}, calm), RetrainSettings()) is None


def test_the_policy_cools_down_keeps_a_budget_and_runs_one_at_a_time(registry: Registry) -> None:
    now = datetime.now(UTC)
    options = RetrainSettings(cooldown_s=600, max_per_day=2)
    assert refusal(registry, "world", options, now) is None
    assert refusal(registry, "world", RetrainSettings(models=("other",)), now) == (
        "the trigger does not watch world"
    )
    registry.record_event("world", "retrain.started", reason="test")
    reason = refusal(registry, "world", options, datetime.now(UTC))
    assert reason is not None
    assert reason.startswith("cooling down: the last retrain started at ")
    # Past the cool-down, the budget: two in 24 hours.
    later = datetime.now(UTC) + timedelta(seconds=601)
    assert refusal(registry, "world", options, later) is None
    registry.record_event("world", "retrain.started", reason="test")
    spent = refusal(registry, "world", options, datetime.now(UTC) + timedelta(seconds=1200))
    assert spent == "the budget of 2 retrains in 24 hours is spent"
    assert refusal(registry, "world", options, datetime.now(UTC) + timedelta(hours=25)) is None
    held = registry.leases.acquire(lease_name("world"), "elsewhere", 60)
    assert held is not None
    busy = refusal(registry, "world", options, datetime.now(UTC) + timedelta(hours=25))
    assert busy == "a retrain is already running"


def _drive(url: str, stop: threading.Event, failures: list[str]) -> None:
    """Requests of the changed world, one row each, and their labels right after."""
    rng = np.random.default_rng(7)
    with httpx2.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            x, y = new_world(1, seed=int(rng.integers(1 << 30)))
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP32",
                        "shape": [1, 2],
                        "data": x.ravel().tolist(),
                    }
                ]
            }
            answer = http.post("/v2/models/world/infer", json=body)
            if answer.status_code != 200:
                failures.append(f"{answer.status_code} {answer.text}")
                continue
            request_id = answer.headers["x-request-id"]
            label = http.post(
                "/v2/models/world/feedback", json={"request_id": request_id, "label": [int(y[0])]}
            )
            if label.status_code != 200:
                failures.append(f"feedback {label.status_code} {label.text}")
            stop.wait(0.003)


def test_a_server_retrains_a_model_whose_world_changed_and_rolls_it_out(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Registry(Settings(home=home)) as registry:
        train_champion(registry, tmp_path / "src")
    settings = server_settings(
        home,
        monitor_flush_seconds=0.5,
        model_monitoring={"world": {"log_inputs": True}},
        rollout_bake_s=0,
        retrain={
            "trigger": True,
            "min_labelled_rows": 150,
            "max_per_day": 1,
            "rollout": {"interval_s": 1, "steps": [0.5], "min_samples": 30, "deadline_s": 120},
        },
    )
    stop = threading.Event()
    failures: list[str] = []
    with running_server(settings, ["world"]) as server:
        traffic = threading.Thread(target=_drive, args=(server.url, stop, failures))
        traffic.start()
        try:
            with Registry(settings) as registry:

                def promoted() -> bool:
                    return registry.get_version("world@production").version == 2

                wait_for(promoted, "the retrained version to be promoted", 240)
                (rollout,) = registry.rollouts.history("world")
                events = registry.events("world", limit=500)
            with client(server) as http:
                status = http.get("/api/models/world/retrains").json()
        finally:
            stop.set()
            traffic.join()
    assert failures == []
    assert (rollout.baseline, rollout.candidate, rollout.state) == (1, 2, "succeeded")
    started = [e for e in events if e.kind == "retrain.started"]
    assert len(started) == 1
    assert started[0].reason.startswith("performance alert: live accuracy of world:1 ")
    gated = next(e for e in events if e.kind == "retrain.gated")
    assert gated.reason.startswith("passed: accuracy ")
    assert status["running"] is False
    assert [e["kind"] for e in status["events"]][:2] == ["retrain.gated", "retrain.started"]


def test_the_retrain_api_starts_one_at_a_time(tmp_path: Path) -> None:
    from retrain_world import log_served

    home = tmp_path / "home"
    with Registry(Settings(home=home)) as registry:
        train_champion(registry, tmp_path / "src")
        log_served(registry, 200)
    settings = server_settings(home, retrain={"strategy": "none"})
    with running_server(settings, ["world"]) as server, client(server) as http:
        with Registry(settings) as registry:
            held = registry.leases.acquire(lease_name("world"), "another-host:42", 60)
            assert held is not None
            busy = http.post("/api/models/world/retrain")
            assert busy.status_code == 409
            assert "a retrain of world is already running" in busy.json()["error"]
            assert http.get("/api/models/world/retrains").json()["running"] is True
            registry.leases.release(held)
        missing = http.post("/api/models/nothing/retrain")
        assert missing.status_code == 404
        started = http.post("/api/models/world/retrain")
        assert started.status_code == 202, started.text

        def finished() -> bool:
            return http.get("/api/models/world/retrains").json()["running"] is False

        wait_for(finished, "the retrain to finish", 120)
        kinds = [e["kind"] for e in http.get("/api/models/world/retrains").json()["events"]]
    assert kinds[:2] == ["retrain.gated", "retrain.started"]
    with Registry(settings) as registry:
        assert registry.get_version("world:2").run_id is not None
        assert registry.get_version("world@production").version == 1  # strategy none
