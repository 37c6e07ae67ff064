"""The live monitor in a real server: windows and drift in the database and on /metrics,
replicas, shutdown, sampling, failures, feedback, payload logging, retention, text models.

Every server here is real (in-process, loopback, a free port) on a real SQLite file in a tmp
home. Flushes are made deterministic: a long flush interval and ``monitor.flush_now()``
once /metrics has counted every request (the server observes a request before it counts it).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import numpy as np
import pytest

import shipyard
from helpers import MINILM_REFERENCE
from server_helpers import client, running_server, scrape, server_settings, wait_for
from shipyard import Registry, Settings
from shipyard.monitor import api
from shipyard.monitor.privacy import salted_hash
from shipyard.registry import ModelVersion
from shipyard.registry.monitoring import MonitorStore, StoredPrediction, StoredWindow
from shipyard.server import Server

DATABASES = ("sqlite", "postgresql")  # each test on both (tests/conftest.py)
ARTIFACT_STORES = ("folder", "s3")  # and with its artifacts in each

LONG = 3600.0  # a flush interval that never comes during a test: flushes are explicit
SHIFTED = (0, 3)  # the features moved far away in the drift scenario


# Data and registration ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feature_names() -> list[str]:
    from sklearn.datasets import load_breast_cancer

    return [str(n).replace(" ", "_") for n in load_breast_cancer().feature_names]


@pytest.fixture(scope="module")
def reference_csv(
    tmp_path_factory: pytest.TempPathFactory,
    breast_cancer: tuple[np.ndarray, np.ndarray],
    feature_names: list[str],
) -> Path:
    """The first 200 rows of the breast cancer features, with a header naming them."""
    x, _ = breast_cancer
    path = tmp_path_factory.mktemp("reference") / "cancer.csv"
    np.savetxt(path, x[:200], delimiter=",", header=",".join(feature_names), comments="")
    return path


def register_cancer(home: Path, classifier: Any, reference: Path) -> ModelVersion:
    with Registry(Settings(home=home)) as registry:
        return shipyard.register(classifier, "cancer", reference_data=reference, registry=registry)


@pytest.fixture
def home(tmp_path: Path, cancer_classifier: Any, reference_csv: Path) -> Path:
    """A fresh home with the cancer classifier registered with its reference CSV."""
    path = tmp_path / "home"
    register_cancer(path, cancer_classifier, reference_csv)
    return path


# Requests and flushes ---------------------------------------------------------------------


def v2_rows(rows: Any) -> dict[str, Any]:
    data = np.asarray(rows, dtype=np.float32).reshape(-1, 30)
    return {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(data.shape),
                "data": data.ravel().tolist(),
            }
        ]
    }


def infer(http: httpx2.Client, rows: Any, model: str = "cancer") -> httpx2.Response:
    response = http.post(f"/v2/models/{model}/infer", json=v2_rows(rows))
    assert response.status_code == 200, response.text
    return response


def labels_of(response: httpx2.Response) -> list[int]:
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    return [int(v) for v in outputs["label"]["data"]]


def served(http: httpx2.Client, requests: int, model: str = "cancer") -> None:
    """Wait until /metrics counts ``requests`` answered requests (each observed by then)."""
    wait_for(
        lambda: (
            scrape(http).value("shipyard_requests_total", model=model, status="200") >= requests
        ),
        f"{requests} requests of {model} to be counted",
    )


def flush(server: Server) -> None:
    server.app.monitor.flush_now()


def stored_windows(home: Path, ref: str = "cancer") -> list[StoredWindow]:
    with Registry(Settings(home=home)) as registry:
        return MonitorStore(registry.database).windows(registry.get_version(ref))


def stored_predictions(home: Path, ref: str = "cancer") -> list[StoredPrediction]:
    with Registry(Settings(home=home)) as registry:
        return MonitorStore(registry.database).predictions(registry.get_version(ref))


def settings_for(home: Path, **update: Any) -> Settings:
    return server_settings(home, monitor_flush_seconds=LONG, **update)


@pytest.fixture
def cancer_server(home: Path) -> Iterator[Server]:
    with running_server(settings_for(home, monitor={"replica": "solo"}), ["cancer"]) as server:
        yield server


# 1. The reference profile ---------------------------------------------------------------------


def test_registration_stores_a_profile_named_by_the_csv_header(
    tmp_path: Path, cancer_classifier: Any, reference_csv: Path, feature_names: list[str]
) -> None:
    with Registry(Settings(home=tmp_path / "home")) as registry:
        version = shipyard.register(
            cancer_classifier, "cancer", reference_data=reference_csv, registry=registry
        )
        profile = MonitorStore(registry.database).get_profile(version)
    assert profile is not None
    assert profile["rows"] == 200
    inputs = [c["name"] for c in profile["columns"] if c["role"] == "input"]
    outputs = [c["name"] for c in profile["columns"] if c["role"] == "output"]
    assert inputs == feature_names
    assert "label" in outputs
    assert set(profile["sketches"]) == {c["name"] for c in profile["columns"]}
    assert profile["sketches"]["mean_radius"]["count"] == 200


# 2. Windows, drift and /metrics ---------------------------------------------------------------


def drift_metrics(http: httpx2.Client) -> tuple[dict[str, float], dict[str, float], float]:
    """(drifted per feature, wasserstein score per feature, dataset drift share) of cancer."""
    page = scrape(http)
    drifted = {
        s.labels["feature"]: s.value
        for s in page.families["shipyard_feature_drifted"].samples
        if s.labels["model"] == "cancer"
    }
    scores = {
        s.labels["feature"]: s.value
        for s in page.families["shipyard_feature_drift_score"].samples
        if s.labels["model"] == "cancer" and s.labels["method"] == "wasserstein"
    }
    share = page.value("shipyard_dataset_drift_share", model="cancer", version="1")
    return drifted, scores, share


def test_windows_and_drift_metrics_follow_the_traffic(
    home: Path, breast_cancer: tuple[np.ndarray, np.ndarray], feature_names: list[str]
) -> None:
    x, _ = breast_cancer
    reference = x[:200].astype(np.float32)
    window_seconds = 1.0
    settings = settings_for(home, monitor={"replica": "solo", "window_seconds": window_seconds})
    with running_server(settings, ["cancer"]) as server, client(server) as http:
        assert scrape(http).labels("shipyard_monitor_last_evaluation_timestamp_seconds") == []

        # The reference distribution itself: nothing drifts.
        for start in range(0, 200, 25):
            infer(http, reference[start : start + 25])
        served(http, 8)
        flush(server)
        windows = stored_windows(home)
        assert [(w.replica, w.rows, w.stats["requests"]) for w in windows] == [("solo", 200, 8)]
        page = scrape(http)
        evaluated = page.value(
            "shipyard_monitor_last_evaluation_timestamp_seconds", model="cancer", version="1"
        )
        assert evaluated > 0
        assert page.value("shipyard_monitor_window_rows", model="cancer", version="1") == 200
        drifted, calm_scores, share = drift_metrics(http)
        assert set(drifted) == set(feature_names)
        assert share == 0.0
        assert all(v == 0.0 for v in drifted.values()), drifted

        # Wait until the first window falls out of the evaluated period, then shift two features.
        flushed_at = time.time()
        wait_for(lambda: time.time() > flushed_at + window_seconds + 0.1, "the window to pass")
        shifted = reference.copy()
        for i in SHIFTED:
            shifted[:, i] += 10 * reference[:, i].std() + reference[:, i].max()
        for start in range(0, 200, 25):
            infer(http, shifted[start : start + 25])
        served(http, 16)
        flush(server)
        assert [w.rows for w in stored_windows(home)] == [200, 200]
        drifted, scores, share = drift_metrics(http)
        moved = {feature_names[i] for i in SHIFTED}
        assert {f for f, v in drifted.items() if v == 1.0} == moved
        for feature in moved:
            assert scores[feature] > calm_scores[feature]
        assert share == pytest.approx(len(SHIFTED) / len(feature_names))
        later = scrape(http).value(
            "shipyard_monitor_last_evaluation_timestamp_seconds", model="cancer", version="1"
        )
        assert later >= evaluated


# 3. Two replicas on one database --------------------------------------------------------------


def test_replicas_windows_merge_in_status(
    home: Path, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = breast_cancer
    with (
        running_server(settings_for(home, monitor={"replica": "a"}), ["cancer"]) as a,
        running_server(settings_for(home, monitor={"replica": "b"}), ["cancer"]) as b,
        client(a) as http_a,
        client(b) as http_b,
    ):
        for i in range(3):
            infer(http_a, x[i * 10 : i * 10 + 10])
        for i in range(2):
            infer(http_b, x[100 + i * 7 : 100 + i * 7 + 7])
        served(http_a, 3)
        served(http_b, 2)
        flush(a)
        flush(b)
    windows = stored_windows(home)
    assert sorted((w.replica, w.rows) for w in windows) == [("a", 30), ("b", 14)]
    with Registry(Settings(home=home)) as registry:
        current = api.status(registry, "cancer")
    assert current.evaluation.rows == 44
    assert current.evaluation.requests == 5
    assert current.evaluation.drift is not None
    assert current.evaluation.drift.columns[0].current_rows == 44


# 4. A clean shutdown flushes ---------------------------------------------------------------


def test_a_clean_shutdown_writes_what_is_pending(
    home: Path, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = breast_cancer
    ids = []
    with running_server(settings_for(home), ["cancer"]) as server, client(server) as http:
        for i in range(4):
            ids.append(infer(http, x[i * 5 : i * 5 + 5]).headers["x-request-id"])
        served(http, 4)
        assert stored_windows(home) == []  # nothing flushed before the shutdown
    assert [w.rows for w in stored_windows(home)] == [20]
    assert sorted(p.request_id for p in stored_predictions(home)) == sorted(ids)

    # A restart starts a new window; the two runs' traffic adds up.
    with running_server(settings_for(home), ["cancer"]) as server, client(server) as http:
        ids.append(infer(http, x[50:53]).headers["x-request-id"])
        served(http, 1)
    assert [w.rows for w in stored_windows(home)] == [20, 3]
    assert sorted(p.request_id for p in stored_predictions(home)) == sorted(ids)
    with Registry(Settings(home=home)) as registry:
        assert api.status(registry, "cancer").evaluation.rows == 23


# 5. Sampling -------------------------------------------------------------------------------


def test_requests_sharing_a_batch_are_logged_one_by_one(
    home: Path, breast_cancer: tuple[np.ndarray, np.ndarray], feature_names: list[str]
) -> None:
    """The log is taken a batch at a time: each request of a batch gets its own record,
    with its own rows of the inputs and outputs."""
    x, _ = breast_cancer
    sizes = [1 + i % 3 for i in range(12)]
    starts = np.cumsum([0, *sizes[:-1]])
    base = settings_for(home, model_monitoring={"cancer": {"log_inputs": True}})
    batching = base.batching.model_copy(update={"max_batch_delay_ms": 200, "inline_below_ms": 0})
    settings = base.model_copy(update={"batching": batching})
    with running_server(settings, ["cancer"]) as server, client(server) as http:
        before = scrape(http).value("shipyard_batch_size_rows_count", model="cancer", version="1")
        answers = asyncio.run(
            _burst(server.url, [x[s : s + n] for s, n in zip(starts, sizes, strict=True)])
        )
        served(http, len(sizes))
        batches = (
            scrape(http).value("shipyard_batch_size_rows_count", model="cancer", version="1")
            - before
        )
        flush(server)
    assert batches < len(sizes)  # some requests shared a batch
    logged = {p.request_id: p for p in stored_predictions(home)}
    assert len(logged) == len(sizes)
    for (request_id, document), start, size in zip(answers, starts, sizes, strict=True):
        record = logged[request_id]
        answered = {o["name"]: o["data"] for o in document["outputs"]}
        assert np.ravel(record.outputs["label"]).tolist() == answered["label"]
        assert len(record.inputs) == size
        for row, sent in zip(record.inputs, x[start : start + size], strict=True):
            assert row[feature_names[0]] == pytest.approx(sent[0], rel=1e-6)


def test_the_log_is_written_a_few_batches_per_insert(
    home: Path, breast_cancer: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.monitor import predictionlog

    monkeypatch.setattr(predictionlog, "LOG_BATCHES_PER_WRITE", 2)
    x, _ = breast_cancer
    with running_server(settings_for(home), ["cancer"]) as server, client(server) as http:
        ids = [infer(http, x[i : i + 1]).headers["x-request-id"] for i in range(7)]
        served(http, 7)
        flush(server)
    assert sorted(p.request_id for p in stored_predictions(home)) == sorted(ids)


async def _burst(url: str, batches: list[np.ndarray]) -> list[tuple[str, dict[str, Any]]]:
    """Every request at once; each answer's request id and document, in order."""
    async with aiohttp.ClientSession(url) as session:

        async def one(rows: np.ndarray) -> tuple[str, dict[str, Any]]:
            async with session.post("/v2/models/cancer/infer", json=v2_rows(rows)) as answer:
                assert answer.status == 200, await answer.text()
                return answer.headers["x-request-id"], await answer.json()

        return list(await asyncio.gather(*(one(rows) for rows in batches)))


def test_a_zero_sample_rate_still_logs_predictions(
    home: Path, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = breast_cancer
    settings = settings_for(home, model_monitoring={"cancer": {"sample_rate": 0.0}})
    with running_server(settings, ["cancer"]) as server, client(server) as http:
        ids = [infer(http, x[i : i + 2]).headers["x-request-id"] for i in range(0, 10, 2)]
        served(http, 5)
        flush(server)
        windows = stored_windows(home)
        assert [(w.rows, w.stats["requests"]) for w in windows] == [(0, 5)]
        assert sorted(p.request_id for p in stored_predictions(home)) == sorted(ids)
        answer = http.post(
            "/v2/models/cancer/feedback",
            json={"request_id": ids[0], "label": [int(y[0]), int(y[1])]},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"model": "cancer", "matched": 1, "unknown": []}
    labelled = [p for p in stored_predictions(home) if p.label is not None]
    assert [(p.request_id, p.label) for p in labelled] == [(ids[0], [int(y[0]), int(y[1])])]


def test_the_prediction_log_takes_at_most_its_rate(
    home: Path, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    """A burst beyond log_rate is sketched in full, logged up to the rate; feedback for the
    unlogged requests comes back as unknown, and the metric counts them."""
    x, y = breast_cancer
    settings = settings_for(home, monitor={"log_rate": 3})
    with running_server(settings, ["cancer"]) as server, client(server) as http:
        ids = [infer(http, x[i : i + 1]).headers["x-request-id"] for i in range(12)]
        served(http, 12)
        flush(server)
        logged = {p.request_id for p in stored_predictions(home)}
        assert 3 <= len(logged) < 12  # the bucket starts full and refills at 3 a second
        assert logged <= set(ids)
        (window,) = stored_windows(home)
        assert (window.rows, window.stats["requests"]) == (12, 12)
        unlogged = scrape(http).value(
            "shipyard_monitor_unlogged_predictions_total", model="cancer", version="1"
        )
        assert unlogged == 12 - len(logged)
        answer = http.post(
            "/v2/models/cancer/feedback",
            json={"labels": [{"request_id": i, "label": int(y[n])} for n, i in enumerate(ids)]},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["matched"] == len(logged)
        assert set(answer.json()["unknown"]) == set(ids) - logged


def test_sketches_take_at_most_their_rate(
    home: Path, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    """Rows beyond sketch_rate are left out of the window (and counted), the rest sketched."""
    x, _ = breast_cancer
    settings = settings_for(home, monitor={"sketch_rate": 10})
    with running_server(settings, ["cancer"]) as server, client(server) as http:
        for i in range(0, 40, 4):
            infer(http, x[i : i + 4])
        served(http, 10)
        flush(server)
        (window,) = stored_windows(home)
        unsketched = scrape(http).value(
            "shipyard_monitor_unsketched_rows_total", model="cancer", version="1"
        )
    assert 8 <= window.rows < 40  # the bucket starts full (10 rows) and refills at 10 a second
    assert window.rows % 4 == 0  # whole batches
    assert window.rows + unsketched == 40
    assert window.stats["requests"] == 10  # every request still counts


class Clock:
    """The monitor's clock, moved by hand: the tap's pace depends on time, not a test's speed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        pass


@pytest.mark.parametrize("batches_per_second", [200, 20_000])
def test_the_tap_lets_batches_go_by_only_at_high_traffic(
    home: Path,
    breast_cancer: tuple[np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
    batches_per_second: int,
) -> None:
    """Below SKIP_ABOVE batches a second the runner shows the tap every batch; above, a few
    times what the rates need, the skipped ones counted as unsketched and unlogged. The
    rates hold either way."""
    from shipyard.monitor import live
    from shipyard.monitor import tap as batch_tap
    from shipyard.runtime.batcher import Pending
    from shipyard.runtime.predictor import Predictor
    from shipyard.runtime.runner import ModelRunner

    clock = Clock()
    monkeypatch.setattr(batch_tap, "time", clock)
    x, _ = breast_cancer
    seconds, sketch_rate, log_rate = 3, 100, 20
    batches = seconds * batches_per_second
    settings = settings_for(home, monitor={"sketch_rate": sketch_rate, "log_rate": log_rate})
    with Registry(settings) as registry:
        version = registry.get_version("cancer")
        answered = 0  # the server's request count, as the monitor reads it
        monitor = live.LiveMonitor(registry, settings, traffic=lambda v: (answered, 1.0))
        monitor.watch(version)
        tap = monitor.tap(version)
        assert tap is not None
        calls = 0

        def counted(batch: list[Pending], inputs: Any, outputs: dict[str, Any]) -> int:
            nonlocal calls
            calls += 1
            return tap(batch, inputs, outputs)

        async def serve() -> None:  # the runner's batcher lives on an event loop
            runner = ModelRunner(
                version,
                Predictor.from_version(version, registry.read_files(version)),
                settings.batching,
            )
            runner.tap = counted
            for i in range(batches):
                clock.now += 1 / batches_per_second
                rows = {"input": x[i % len(x)][None, :].astype(np.float32)}
                request = Pending(rows, 1, None, 0.0, None, request_id=b"%d" % i)  # type: ignore[arg-type]
                runner._run_batch([request])
            await runner.drain()

        asyncio.run(serve())
        answered = batches
        (watched,) = monitor.watched.values()
        logged = watched.logged_requests
        monitor.flush_now()
        (window,) = MonitorStore(registry.database).windows(version)
    if batches_per_second < batch_tap.SKIP_ABOVE:
        assert calls == batches
        assert window.rows + watched.unsketched == batches
        assert logged + watched.unlogged == batches
    else:
        # every batch of the first second (the pace is set once a second), then a few
        assert calls - batches_per_second < (seconds - 1) * batches_per_second / 10
        # the batches let go by after the tap's last call are counted at its next
        assert batches - calls <= window.rows + watched.unsketched <= batches
        assert batches - calls <= logged + watched.unlogged <= batches
    # each bucket starts full: a second's worth, then its rate
    assert sketch_rate * seconds <= window.rows <= sketch_rate * (seconds + 1)
    assert log_rate * seconds <= logged <= log_rate * (seconds + 1)


# 6. A failing monitor never fails a request -----------------------------------------------


def test_broken_monitor_storage_never_fails_a_request(
    home: Path, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = breast_cancer
    settings = server_settings(home, monitor_flush_seconds=0.2)
    with running_server(settings, ["cancer"]) as server, client(server) as http:
        infer(http, x[:3])
        assert scrape(http).value("shipyard_monitor_failures_total") == 0
        with sqlite3.connect(home / "shipyard.db", timeout=30) as db:
            db.execute("DROP TABLE monitor_windows")
        for i in range(20):
            response = http.post("/v2/models/cancer/infer", json=v2_rows(x[i : i + 2]))
            assert response.status_code == 200, response.text
        wait_for(
            lambda: scrape(http).value("shipyard_monitor_failures_total") > 0,
            "the monitor to count its failures",
        )
        for i in range(5):  # and still serving after the failed flushes
            assert http.post("/v2/models/cancer/infer", json=v2_rows(x[i])).status_code == 200
        assert scrape(http).value("shipyard_requests_total", model="cancer", status="200") == 26
        # The prediction log is another table: feedback still joins.
        request_id = infer(http, x[0]).headers["x-request-id"]
        answer = http.post(
            "/v2/models/cancer/feedback", json={"request_id": request_id, "label": 1}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"model": "cancer", "matched": 1, "unknown": []}


def test_a_version_deleted_while_served_does_not_stop_the_others(
    home: Path, tiny_onnx_path: Path, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    """Its windows and log can no longer be written; every other version's still are."""
    x, _ = breast_cancer
    with Registry(Settings(home=home)) as registry:
        shipyard.register(tiny_onnx_path, "tiny", registry=registry)
        with (
            running_server(settings_for(home), ["tiny:1", "cancer"]) as server,
            client(server) as http,
        ):
            registry.delete_version("tiny:1")
            tiny = http.post(
                "/v2/models/tiny/infer",
                json={
                    "inputs": [
                        {"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}
                    ]
                },
            )
            assert tiny.status_code == 200, tiny.text
            request_id = infer(http, x[:2]).headers["x-request-id"]
            served(http, 1)
            served(http, 1, model="tiny")
            answer = http.post(
                "/v2/models/cancer/feedback", json={"request_id": request_id, "label": [1, 0]}
            )
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"model": "cancer", "matched": 1, "unknown": []}
            flush(server)
            page = scrape(http)
            assert page.value("shipyard_monitor_failures_total") > 0
            assert page.value("shipyard_monitor_window_rows", model="cancer") == 2
        assert [w.rows for w in stored_windows(home)] == [2]


# 7. Feedback -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feedback_home(
    tmp_path_factory: pytest.TempPathFactory,
    cancer_classifier: Any,
    reference_csv: Path,
) -> Path:
    """cancer (a classifier) and house (a regressor), registered in one home."""
    from sklearn.linear_model import LinearRegression

    home = tmp_path_factory.mktemp("feedback") / "home"
    register_cancer(home, cancer_classifier, reference_csv)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    regressor = LinearRegression().fit(x, x @ np.array([1.0, 2.0, -1.0]) + 0.5)
    with Registry(Settings(home=home)) as registry:
        shipyard.register(regressor, "house", example_input=x[:5], registry=registry)
    return home


@pytest.fixture(scope="module")
def feedback_server(feedback_home: Path) -> Iterator[Server]:
    with running_server(settings_for(feedback_home), ["cancer", "house"]) as server:
        yield server


@pytest.fixture(scope="module")
def feedback_http(feedback_server: Server) -> Iterator[httpx2.Client]:
    with client(feedback_server) as http:
        yield http


def test_feedback_joins_labels_and_performance_follows(
    feedback_server: Server,
    feedback_http: httpx2.Client,
    breast_cancer: tuple[np.ndarray, np.ndarray],
) -> None:
    http = feedback_http
    x, _ = breast_cancer
    one = infer(http, x[0:1])
    four = infer(http, x[1:5])
    other = infer(http, x[5:6])
    unlabelled = infer(http, x[6:8])
    predicted = labels_of(one) + labels_of(four) + labels_of(other)
    assert len(predicted) == 6
    assert labels_of(unlabelled)
    # The truth given back: right for the first three rows, wrong for the last three.
    truth = predicted[:3] + [1 - p for p in predicted[3:]]

    single = http.post(
        "/v2/models/cancer/feedback",
        json={"request_id": one.headers["x-request-id"], "label": truth[0]},
    )
    assert single.status_code == 200, single.text
    assert single.json() == {"model": "cancer", "matched": 1, "unknown": []}

    batch = http.post(
        "/v2/models/cancer/feedback",
        json={
            "labels": [
                {"request_id": four.headers["x-request-id"], "label": truth[1:5]},
                {"request_id": other.headers["x-request-id"], "label": float(truth[5])},
                {"request_id": "never-served", "label": 1},
            ]
        },
    )
    assert batch.status_code == 200, batch.text
    assert batch.json() == {"model": "cancer", "matched": 2, "unknown": ["never-served"]}

    served(http, 4)
    flush(feedback_server)
    expected = float(np.mean(np.asarray(predicted) == np.asarray(truth)))
    assert expected == 0.5
    page = scrape(http)
    assert page.value(
        "shipyard_model_performance", model="cancer", version="1", metric="accuracy"
    ) == pytest.approx(expected)
    assert page.labels("shipyard_model_performance")  # f1 and accuracy, no "rows"
    assert {lab["metric"] for lab in page.labels("shipyard_model_performance")} == {
        "accuracy",
        "f1",
    }

    # Labels coming after an evaluation count at the next flush, not a minute later.
    wrong = [1 - p for p in labels_of(unlabelled)]
    late = http.post(
        "/v2/models/cancer/feedback",
        json={"request_id": unlabelled.headers["x-request-id"], "label": wrong},
    )
    assert late.status_code == 200, late.text
    served(http, 4)
    flush(feedback_server)
    assert scrape(http).value(
        "shipyard_model_performance", model="cancer", version="1", metric="accuracy"
    ) == pytest.approx(3 / 8)


@pytest.fixture(scope="module")
def served_ids(
    feedback_http: httpx2.Client, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> dict[str, str]:
    """A request id served by each model of the feedback server."""
    x, _ = breast_cancer
    cancer = infer(feedback_http, x[10:11]).headers["x-request-id"]
    house = feedback_http.post(
        "/v2/models/house/infer",
        json={
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]
        },
    )
    assert house.status_code == 200, house.text
    return {"cancer": cancer, "house": house.headers["x-request-id"]}


@pytest.mark.parametrize(
    ("model", "body", "status", "message"),
    [
        ("cancer", b"{not json", 400, "the request body is not valid JSON"),
        ("cancer", b"[1, 2]", 400, "the request body must be a JSON object"),
        ("cancer", {"label": 1}, 400, 'feedback needs "request_id" and "label"'),
        ("cancer", {"labels": []}, 400, '"labels" must be a non-empty list'),
        ("cancer", {"labels": [{"request_id": "ID"}]}, 400, "labels[0] needs a request_id"),
        ("cancer", {"request_id": "ID"}, 400, "labels[0] needs a request_id and a label"),
        ("cancer", {"request_id": "ID", "label": None}, 400, "labels[0].label must not be null"),
        (
            "cancer",
            {"request_id": "ID", "label": 0.5},
            400,
            "label for request 'ID': labels of a classifier are class ids (integers) or class "
            "names (strings), got 0.5",
        ),
        (
            "cancer",
            {"labels": [{"request_id": "ID", "label": {"class": 1}}]},
            400,
            "label for request 'ID': labels of a classifier are class ids (integers) or class "
            "names (strings), got dict",
        ),
        (
            "cancer",
            {"request_id": "ID", "label": [1, 0.5]},
            400,
            "label for request 'ID': labels of a classifier",
        ),
        (
            "house",
            {"request_id": "ID", "label": "expensive"},
            400,
            "label for request 'ID': labels of a regression model are numbers, got str",
        ),
        ("nope", {"request_id": "ID", "label": 1}, 404, "no model named 'nope'"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "no-request-id",
        "empty-labels",
        "item-without-label",
        "single-without-label",
        "null-label",
        "float-class",
        "dict-class",
        "float-in-list",
        "string-for-regressor",
        "unknown-model",
    ],
)
def test_bad_feedback_is_refused_whole(
    feedback_http: httpx2.Client,
    feedback_home: Path,
    served_ids: dict[str, str],
    model: str,
    body: Any,
    status: int,
    message: str,
) -> None:
    request_id = served_ids.get(model, "ID")
    if isinstance(body, dict):
        text = json.dumps(body).replace('"ID"', json.dumps(request_id))
        message = message.replace("'ID'", repr(request_id))
        content = text.encode()
    else:
        content = body
    response = feedback_http.post(
        f"/v2/models/{model}/feedback",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    if model in served_ids:  # nothing half-applied
        labelled = [p for p in stored_predictions(feedback_home, model) if p.label is not None]
        assert request_id not in {p.request_id for p in labelled}


def test_a_regressor_gets_mae_from_feedback(
    feedback_server: Server, feedback_http: httpx2.Client
) -> None:
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 3], "data": [0] * 6}]}
    response = feedback_http.post("/v2/models/house/infer", json=body)
    assert response.status_code == 200, response.text
    predicted = response.json()["outputs"][0]["data"]
    answer = feedback_http.post(
        "/v2/models/house/feedback",
        json={"request_id": response.headers["x-request-id"], "label": [1.5, 0.5]},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["matched"] == 1
    flush(feedback_server)
    expected = np.mean(np.abs(np.asarray(predicted, dtype=np.float64) - [1.5, 0.5]))
    value = scrape(feedback_http).value(
        "shipyard_model_performance", model="house", version="1", metric="mae"
    )
    assert value == pytest.approx(expected, rel=1e-5)


# 8. Payload logging and privacy -----------------------------------------------------------


def serve_and_export(
    home: Path, rows: np.ndarray, out: Path, **monitoring: Any
) -> tuple[list[str], Any]:
    """Serve ``rows`` one request per 3 rows under ``monitoring``, stop, export as Parquet."""
    import pyarrow.parquet as pq

    settings = settings_for(home, model_monitoring={"cancer": monitoring} if monitoring else {})
    with running_server(settings, ["cancer"]) as server, client(server) as http:
        ids = [infer(http, rows[i : i + 3]).headers["x-request-id"] for i in range(0, len(rows), 3)]
        served(http, len(ids))
    with Registry(Settings(home=home)) as registry:
        assert api.export(registry, "cancer", out) == len(rows)
    return ids, pq.read_table(out).to_pylist()


def test_exports_carry_no_inputs_by_default(
    home: Path, tmp_path: Path, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = breast_cancer
    _, rows = serve_and_export(home, x[:6], tmp_path / "log.parquet")
    assert len(rows) == 6
    assert not [c for c in rows[0] if c.startswith("input.")]
    assert {"request_id", "row", "output.label", "output.probabilities", "label"} <= set(rows[0])


def test_logged_inputs_leave_the_redacted_feature_out(
    home: Path,
    tmp_path: Path,
    breast_cancer: tuple[np.ndarray, np.ndarray],
    feature_names: list[str],
) -> None:
    x, _ = breast_cancer
    secret = feature_names[2]
    ids, rows = serve_and_export(
        home,
        x[:6],
        tmp_path / "log.parquet",
        log_inputs=True,
        redact=[secret],
        redaction="drop",
    )
    columns = {c for c in rows[0] if c.startswith("input.")}
    assert columns == {f"input.{n}" for n in feature_names if n != secret}
    by_row = {(r["request_id"], r["row"]): r for r in rows}
    for i in range(6):
        row = by_row[(ids[i // 3], i % 3)]
        assert row["input.mean_radius"] == pytest.approx(x[i, 0], rel=1e-6)


def test_redacted_features_keep_bin_counts_only_in_the_windows(
    home: Path,
    tmp_path: Path,
    breast_cancer: tuple[np.ndarray, np.ndarray],
    feature_names: list[str],
) -> None:
    """A window keeps no single request's raw value: no extremes for any column, and for a
    redacted feature not even the per-bin sums."""
    x, _ = breast_cancer
    secret = feature_names[2]
    serve_and_export(home, x[:6], tmp_path / "log.parquet", redact=[secret])
    (window,) = stored_windows(home)
    sketches = window.profile["sketches"]
    assert sketches[secret]["detail"] == "counts"
    assert sum(sketches[secret]["counts"]) == 6
    assert not any(sketches[secret]["sums"])
    assert sketches[secret]["total"] == 0.0
    for name in feature_names:
        assert sketches[name]["minimum"] == "inf"  # JSON holds the empty extremes as text
        assert sketches[name]["maximum"] == "-inf"
    assert sketches[feature_names[0]]["detail"] == "window"
    assert sum(sketches[feature_names[0]]["sums"]) == pytest.approx(float(x[:6, 0].sum()), 1e-5)


def test_hashed_redaction_writes_the_salted_hash(
    home: Path,
    tmp_path: Path,
    breast_cancer: tuple[np.ndarray, np.ndarray],
    feature_names: list[str],
) -> None:
    x, _ = breast_cancer
    secret = feature_names[0]
    rows_in = x[:6]
    ids, rows = serve_and_export(
        home,
        rows_in,
        tmp_path / "log.parquet",
        log_inputs=True,
        redact=[secret],
        redaction="hash",
        salt="s3cret",
    )
    assert {c for c in rows[0] if c.startswith("input.")} == {f"input.{n}" for n in feature_names}
    by_row = {(r["request_id"], r["row"]): r for r in rows}
    for i in range(6):
        row = by_row[(ids[i // 3], i % 3)]
        value = float(np.float32(rows_in[i, 0]))  # the server takes FP32
        assert row[f"input.{secret}"] == salted_hash("s3cret", value)
        assert row[f"input.{secret}"] != salted_hash("", value)
        assert row[f"input.{feature_names[1]}"] == pytest.approx(rows_in[i, 1], rel=1e-6)


def numbers_in(value: Any) -> int:
    if isinstance(value, dict):
        return sum(numbers_in(v) for v in value.values())
    if isinstance(value, list):
        return sum(numbers_in(v) for v in value)
    return 1 if isinstance(value, int | float) and not isinstance(value, bool) else 0


def test_window_profiles_do_not_grow_with_the_rows_served(
    cancer_server: Server, home: Path, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = breast_cancer
    with client(cancer_server) as http:
        infer(http, x[:4])
        served(http, 1)
        flush(cancer_server)
        for start in range(0, 200, 50):  # within the default sketch rate
            infer(http, x[start : start + 50])
        served(http, 5)
        flush(cancer_server)
    small, large = stored_windows(home)
    assert (small.rows, large.rows) == (4, 200)
    assert numbers_in(small.profile) == numbers_in(large.profile)
    assert numbers_in(large.profile) < large.rows * 30  # fewer than the values served


# 9. Retention ------------------------------------------------------------------------------


def test_retention_keeps_the_newest_rows(
    home: Path, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = breast_cancer
    settings = settings_for(home, monitor={"retention_rows": 10})
    with running_server(settings, ["cancer"]) as server, client(server) as http:
        ids = [infer(http, x[i]).headers["x-request-id"] for i in range(15)]
        served(http, 15)
        flush(server)
        kept = stored_predictions(home)
    assert len(kept) == 10
    assert [p.request_id for p in kept] == ids[-10:]


def test_retention_by_age_drops_everything_old(
    home: Path, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = breast_cancer
    settings = settings_for(home, monitor={"retention_days": 1e-9})
    with running_server(settings, ["cancer"]) as server, client(server) as http:
        for i in range(5):
            infer(http, x[i])
        served(http, 5)
        flush(server)
        assert stored_predictions(home) == []
        assert [w.rows for w in stored_windows(home)] == [5]  # the window is not a log


# 10. A text-embedding model -----------------------------------------------------------------


def test_text_model_windows_watch_length_norm_and_projections(
    minilm_server: Server, minilm_registry: Registry, minilm_version: ModelVersion
) -> None:
    store = MonitorStore(minilm_registry.database)
    name = minilm_version.name
    with client(minilm_server) as http:
        flush(minilm_server)  # whatever other tests sent is written before ours
        since = (
            store.windows(minilm_version)[-1].ended_at if store.windows(minilm_version) else None
        )
        before = scrape(http).value("shipyard_requests_total", model=name, status="200")
        v2 = http.post(
            f"/v2/models/{name}/infer",
            json={
                "inputs": [
                    {
                        "name": "text",
                        "datatype": "BYTES",
                        "shape": [3],
                        "data": MINILM_REFERENCE[:3],
                    }
                ]
            },
        )
        assert v2.status_code == 200, v2.text
        openai = http.post("/v1/embeddings", json={"model": name, "input": MINILM_REFERENCE})
        assert openai.status_code == 200, openai.text
        served(http, int(before) + 2, model=name)
        flush(minilm_server)
    windows = store.windows(minilm_version, since=since)
    assert sum(w.rows for w in windows) == 3 + len(MINILM_REFERENCE)
    for window in windows:
        assert [c["name"] for c in window.profile["columns"]] == [
            "text.length",
            "embedding.norm",
            *[f"embedding.projection[{i}]" for i in range(4)],
        ]
    lengths = [w.profile["sketches"]["text.length"] for w in windows]
    assert sum(s["count"] for s in lengths) == 3 + len(MINILM_REFERENCE)
    expected_total = sum(len(t) for t in MINILM_REFERENCE[:3]) + sum(
        len(t) for t in MINILM_REFERENCE
    )
    # moments are kept about the reference's median: each window's raw sum is total + n * shift
    assert sum(s["total"] + s["count"] * s["shift"] for s in lengths) == expected_total
    for window in windows:
        norms = window.profile["sketches"]["embedding.norm"]
        mean = norms["shift"] + norms["total"] / norms["count"]
        assert mean == pytest.approx(1.0, abs=1e-4)  # unit vectors
        projection = window.profile["sketches"]["embedding.projection[0]"]
        assert projection["count"] == window.rows
