"""/metrics: Prometheus text that prometheus_client's parser reads, with the documented names."""

from __future__ import annotations

from typing import Any

from server_helpers import scrape, v2_tiny

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
