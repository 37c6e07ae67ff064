"""/metrics: Prometheus text that prometheus_client's parser reads, with the documented names."""

from __future__ import annotations

from typing import Any

import pytest

from server_helpers import Scrape, scrape, v2_tiny
from shipyard.rollout.states import State
from shipyard.server.metrics import ROLLOUT_PHASES, ROLLOUT_RESULTS, Metrics

FAMILIES = {
    "shipyard_requests": "counter",
    "shipyard_request_duration_seconds": "histogram",
    "shipyard_stage_duration_seconds": "histogram",
    "shipyard_batch_size_rows": "histogram",
    "shipyard_queue_depth_rows": "gauge",
    "shipyard_in_flight_requests": "gauge",
    "shipyard_model_load_duration_seconds": "histogram",
    "shipyard_rejected_requests": "counter",
    "shipyard_model_info": "gauge",
    "shipyard_rollouts_rolled_back": "counter",
    "shipyard_rollouts_promoted": "counter",
    "shipyard_rollout_weight": "gauge",
    "shipyard_rollout_phase": "gauge",
    "shipyard_rollout_check": "gauge",
}


def test_every_family_is_exported_with_its_type(http: Any) -> None:
    assert http.post("/v2/models/tiny/infer", json=v2_tiny([[1, 2, 3]])).status_code == 200
    page = scrape(http)
    for name, kind in FAMILIES.items():
        assert name in page.families, f"{name} missing from /metrics"
        assert page.families[name].type == kind, name
    assert page.labels("shipyard_requests_total")  # counters carry the _total suffix


def test_requests_are_counted_by_status(http: Any) -> None:
    before = scrape(http)
    for _ in range(3):
        assert http.post("/v2/models/tiny/infer", json=v2_tiny([[1, 2, 3]])).status_code == 200
    assert http.post("/v2/models/tiny/infer", json={"inputs": []}).status_code == 400
    after = scrape(http)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    ok = {"model": "tiny", "version": "1", "status": "200"}
    bad = {"model": "tiny", "version": "1", "status": "400"}
    assert delta("shipyard_requests_total", **ok) == 3
    assert delta("shipyard_requests_total", **bad) == 1
    assert delta("shipyard_request_duration_seconds_count", model="tiny", version="1") == 4
    assert delta("shipyard_request_duration_seconds_sum", model="tiny", version="1") > 0
    assert delta("shipyard_batch_size_rows_count", model="tiny", version="1") == 3
    assert delta("shipyard_batch_size_rows_sum", model="tiny", version="1") == 3


def test_histogram_buckets_are_cumulative(http: Any) -> None:
    page = scrape(http)
    buckets = [
        s
        for s in page.families["shipyard_request_duration_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["model"] == "tiny"
    ]
    assert buckets
    values = [s.value for s in buckets]
    assert values == sorted(values)
    assert buckets[-1].labels["le"] == "+Inf"
    assert buckets[-1].value == page.value(
        "shipyard_request_duration_seconds_count", model="tiny", version="1"
    )


def test_stages_and_live_gauges(http: Any) -> None:
    assert http.post("/v2/models/cancer/infer", json=_cancer_request()).status_code == 200
    page = scrape(http)
    stages = {
        labels["stage"]
        for labels in page.labels("shipyard_stage_duration_seconds_count")
        if labels["model"] == "cancer"
    }
    assert stages == {"queue", "preprocess", "inference", "postprocess"}
    for gauge in ("shipyard_queue_depth_rows", "shipyard_in_flight_requests"):
        labels = page.labels(gauge)
        assert {(x["model"], x["version"]) for x in labels} == {("cancer", "1"), ("tiny", "1")}
        assert page.value(gauge) == 0  # nothing queued between requests

    loads = {
        (x["model"], x["version"])
        for x in page.labels("shipyard_model_load_duration_seconds_count")
    }
    assert loads == {("cancer", "1"), ("tiny", "1")}
    assert page.value("shipyard_model_load_duration_seconds_sum", model="cancer") > 0


def test_model_info(http: Any) -> None:
    page = scrape(http)
    info = {x["model"]: x for x in page.labels("shipyard_model_info")}
    assert set(info) == {"cancer", "tiny"}
    assert info["cancer"]["version"] == "1"
    assert info["cancer"]["flavor"] == "sklearn"
    assert info["cancer"]["kind"] == "tensor"
    assert info["cancer"]["state"] == "ready"
    assert info["tiny"]["flavor"] == "onnx"
    assert len(info["tiny"]["artifact_digest"]) == 12
    assert page.value("shipyard_model_info", model="tiny", version="1") == 1


def test_unknown_models_are_counted_without_inventing_labels(http: Any) -> None:
    before = scrape(http)
    assert http.post("/v2/models/ghost/infer", json=v2_tiny([[1, 2, 3]])).status_code == 404
    after = scrape(http)
    labels = {"model": "_unknown", "version": "", "status": "404"}
    assert (
        after.value("shipyard_requests_total", **labels)
        - before.value("shipyard_requests_total", **labels)
        == 1
    )
    assert "ghost" not in after.text


def _cancer_request() -> dict[str, Any]:
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 30], "data": [0.5] * 60}]}


def test_served_models_have_rollout_counters_at_zero(http: Any) -> None:
    """So that a model's first rollback is a step 0 -> 1 that increase() sees."""
    page = scrape(http)
    for name in ("shipyard_rollouts_rolled_back_total", "shipyard_rollouts_promoted_total"):
        assert {x["model"] for x in page.labels(name)} == {"cancer", "tiny"}, name
        assert page.value(name) == 0
    assert page.labels("shipyard_rollout_phase") == []  # no rollout, no phase series


# Rollout state, as the controller publishes it ------------------------------------------

CANARY = {"1": 0.9, "2": 0.1}
CHECKS = {"error_ratio": "pass", "p99_latency": "inconclusive", "sample_ratio": "fail"}


def rendered(metrics: Metrics) -> Scrape:
    return Scrape(metrics.render().decode("utf-8"))


def test_rollout_phases_are_the_state_machines() -> None:
    assert tuple(state.value for state in State) == ROLLOUT_PHASES
    assert ROLLOUT_RESULTS == ("pass", "fail", "inconclusive")


def test_rollout_state_is_exported() -> None:
    metrics = Metrics(lambda: [])
    metrics.rollout_state("fraud", "progressing", CANARY, CHECKS)
    metrics.rollout_state("churn", "paused", {"3": 1.0}, {})
    page = rendered(metrics)

    weights = {
        (x.labels["model"], x.labels["version"]): x.value
        for x in page.families["shipyard_rollout_weight"].samples
    }
    assert weights == {("fraud", "1"): 0.9, ("fraud", "2"): 0.1, ("churn", "3"): 1.0}

    phases = {
        (x.labels["model"], x.labels["phase"]): x.value
        for x in page.families["shipyard_rollout_phase"].samples
    }
    assert len(phases) == 2 * len(ROLLOUT_PHASES)  # every phase of both models
    assert {key for key, value in phases.items() if value == 1} == {
        ("fraud", "progressing"),
        ("churn", "paused"),
    }
    assert set(phases.values()) == {0.0, 1.0}

    checks = {
        (x.labels["check"], x.labels["result"]): x.value
        for x in page.families["shipyard_rollout_check"].samples
    }
    assert all(
        x.labels["model"] == "fraud" for x in page.families["shipyard_rollout_check"].samples
    )
    assert len(checks) == len(CHECKS) * len(ROLLOUT_RESULTS)
    assert {key for key, value in checks.items() if value == 1} == set(CHECKS.items())

    for name in ("shipyard_rollouts_rolled_back_total", "shipyard_rollouts_promoted_total"):
        assert {x["model"] for x in page.labels(name)} == {"fraud", "churn"}
        assert page.value(name) == 0

    # The text itself: what a Prometheus scrape reads.
    assert "# TYPE shipyard_rollouts_rolled_back_total counter" in page.text
    assert 'shipyard_rollout_weight{model="fraud",version="2"} 0.1' in page.text
    assert 'shipyard_rollout_phase{model="churn",phase="paused"} 1.0' in page.text
    assert (
        'shipyard_rollout_check{check="sample_ratio",model="fraud",result="fail"} 1.0' in page.text
    )
    assert "# HELP shipyard_rollout_phase " in page.text


def test_each_call_replaces_the_last_one() -> None:
    metrics = Metrics(lambda: [])
    metrics.rollout_state("fraud", "progressing", CANARY, CHECKS)
    metrics.rollout_state("fraud", "progressing", {"1": 0.5, "2": 0.5}, {"error_ratio": "fail"})
    page = rendered(metrics)
    assert page.labels("shipyard_rollout_weight") == [
        {"model": "fraud", "version": "1"},
        {"model": "fraud", "version": "2"},
    ]
    assert page.value("shipyard_rollout_weight", version="2") == 0.5
    assert {x["check"] for x in page.labels("shipyard_rollout_check")} == {"error_ratio"}
    assert page.value("shipyard_rollout_check", check="error_ratio", result="fail") == 1
    assert page.value("shipyard_rollout_check", check="error_ratio", result="pass") == 0


def test_a_cleared_model_loses_its_rollout_series_but_keeps_its_counters() -> None:
    metrics = Metrics(lambda: [])
    metrics.rollout_state("fraud", "progressing", CANARY, CHECKS)
    metrics.rollout_state("churn", "progressing", {"1": 0.8, "2": 0.2}, {"agreement": "pass"})
    metrics.rollout_state("fraud", "rolling_back", {"1": 1.0, "2": 0.0}, CHECKS)
    metrics.rollout_state("fraud", "rolled_back", {"1": 1.0}, CHECKS)
    metrics.rollout_state("fraud", None, {}, {})
    page = rendered(metrics)
    for name in ("shipyard_rollout_weight", "shipyard_rollout_phase", "shipyard_rollout_check"):
        models = {x["model"] for x in page.labels(name)}
        assert models == {"churn"}, name
    assert 'model="fraud"' not in page.text.split("# HELP shipyard_rollout_weight")[1]
    # The counter stays, so the rollback alert still sees its step after the clear.
    assert page.value("shipyard_rollouts_rolled_back_total", model="fraud") == 1

    metrics.rollout_state("churn", None, {"1": 1.0}, {"agreement": "pass"})
    metrics.rollout_state("ghost", None, {}, {})  # clearing a model with no rollout is a no-op
    page = rendered(metrics)
    for name in ("shipyard_rollout_weight", "shipyard_rollout_phase", "shipyard_rollout_check"):
        assert name in page.families
        assert page.labels(name) == [], name
    assert "ghost" not in page.text


def test_counters_count_only_the_change_into_the_final_phase() -> None:
    metrics = Metrics(lambda: [])

    def counts() -> tuple[float, float]:
        page = rendered(metrics)
        return (
            page.value("shipyard_rollouts_rolled_back_total", model="fraud"),
            page.value("shipyard_rollouts_promoted_total", model="fraud"),
        )

    for phase in ("pending", "validating", "progressing", "progressing", "rolling_back"):
        metrics.rollout_state("fraud", phase, CANARY, CHECKS)
    assert counts() == (0, 0)
    for _ in range(3):  # the controller publishes the final state on every tick
        metrics.rollout_state("fraud", "rolled_back", {"1": 1.0}, CHECKS)
        assert counts() == (1, 0)

    # The next rollout of the model, after the last one was cleared, succeeds.
    metrics.rollout_state("fraud", None, {}, {})
    for phase in ("pending", "validating", "progressing", "paused", "progressing", "promoting"):
        metrics.rollout_state("fraud", phase, CANARY, {"error_ratio": "pass"})
    assert counts() == (1, 0)
    metrics.rollout_state("fraud", "succeeded", {"2": 1.0}, {"error_ratio": "pass"})
    metrics.rollout_state("fraud", "succeeded", {"2": 1.0}, {"error_ratio": "pass"})
    assert counts() == (1, 1)

    # A third one rolls back: the counter goes on from where it was.
    for phase in ("pending", "validating", "rolling_back", "rolled_back"):
        metrics.rollout_state("fraud", phase, CANARY, {})
    assert counts() == (2, 1)


def test_a_first_final_state_is_not_a_change() -> None:
    """A restarted server, or the replica that takes the controller's lease over, first sees
    a rollout that already ended: the rollback was counted where it happened."""
    metrics = Metrics(lambda: [])
    metrics.rollout_state("fraud", "rolled_back", {"1": 1.0}, {})
    metrics.rollout_state("churn", "succeeded", {"2": 1.0}, {})
    page = rendered(metrics)
    assert page.value("shipyard_rollouts_rolled_back_total", model="fraud") == 0
    assert page.value("shipyard_rollouts_promoted_total", model="churn") == 0
    assert page.value("shipyard_rollout_phase", model="fraud", phase="rolled_back") == 1


@pytest.mark.parametrize(
    ("phase", "weights", "checks", "message"),
    [
        ("canarying", {}, {}, "unknown rollout phase 'canarying'"),
        ("progressing", {"2": 1.5}, {}, "weight of version 2 must be in [0, 1]"),
        ("progressing", {"2": -0.1}, {}, "weight of version 2 must be in [0, 1]"),
        ("progressing", {"2": float("nan")}, {}, "weight of version 2 must be in [0, 1]"),
        ("progressing", {}, {"error_ratio": "ok"}, "unknown result 'ok' of check 'error_ratio'"),
    ],
)
def test_bad_rollout_state_is_refused_and_changes_nothing(
    phase: str, weights: dict[str, float], checks: dict[str, str], message: str
) -> None:
    metrics = Metrics(lambda: [])
    metrics.rollout_state("fraud", "progressing", CANARY, CHECKS)
    before = metrics.render()
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        metrics.rollout_state("fraud", phase, weights, checks)
    assert metrics.render() == before
