"""``shipyard serve`` as a process: graceful shutdown on SIGTERM, and the JSON access log."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np

from helpers import tiny_expected
from server_helpers import (
    HANG_GUARD_S,
    ServeProcess,
    client,
    storage_environment,
    v2_tiny,
    wait_for,
)
from shipyard import Registry


def _v2_text(texts: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}


def test_sigterm_lets_queued_requests_finish_then_exits_0(
    minilm_registry: Registry, minilm_version: Any, minilm_reference: Any, tmp_path: Path
) -> None:
    """After a 6-row batch, 1-row requests wait up to 1.5 s for company: SIGTERM arrives while
    two of them are queued, and both still get their answers before the process exits."""
    server = ServeProcess(
        minilm_registry.settings.home,
        tmp_path,
        "--model",
        "minilm",
        "--max-batch-delay-ms",
        "1500",
        "--no-access-log",
    )
    try:
        server.wait_ready()
        with client(server.url) as http:
            first = http.post(
                "/v2/models/minilm/infer", json=_v2_text([f"warm {i}" for i in range(6)])
            )
            assert first.status_code == 200, first.text

            texts = ["The queue is drained first.", "Then the process exits."]
            answers: dict[int, Any] = {}

            def send(i: int) -> None:
                with client(server.url) as own:
                    answers[i] = own.post("/v2/models/minilm/infer", json=_v2_text([texts[i]]))

            senders = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(2)]
            for sender in senders:
                sender.start()

            def queued() -> bool:
                assert not answers, "the batch ran before the test saw it queued"
                (deployment,) = http.get("/api/deployments").json()
                return bool(deployment["versions"][0]["queued_rows"] == 2)

            wait_for(queued, "two queued requests")

        server.terminate()
        for sender in senders:
            sender.join(HANG_GUARD_S)
        returncode = server.process.wait(timeout=30)
    finally:
        server.stop()

    assert returncode == 0, server.stderr()
    expected = minilm_reference.predict(texts)["embedding"]
    for i in range(2):
        response = answers[i]
        assert response.status_code == 200, response.text
        (output,) = response.json()["outputs"]
        np.testing.assert_allclose(output["data"], expected[i], atol=1e-4)


def test_access_log_has_one_json_line_per_request(
    tensor_registry: Registry, tmp_path: Path
) -> None:
    server = ServeProcess(
        tensor_registry.settings.home,
        tmp_path,
        "--model",
        "tiny",
        "--access-log",
        env=storage_environment(tensor_registry.settings),
    )
    try:
        server.wait_ready()
        with client(server.url) as http:
            ok = http.post(
                "/v2/models/tiny/infer",
                json=v2_tiny([[1, 2, 3], [4, 5, 6]]),
                headers={"X-Request-Id": "log-me-200"},
            )
            assert ok.status_code == 200
            np.testing.assert_allclose(
                ok.json()["outputs"][0]["data"],
                tiny_expected(np.array([[1, 2, 3], [4, 5, 6]])).ravel(),
                rtol=1e-6,
            )
            bad = http.post(
                "/v1/models/tiny:predict",
                json={"instances": []},
                headers={"X-Request-Id": "log-me-400"},
            )
            assert bad.status_code == 400

        def logged() -> dict[str, list[dict[str, Any]]] | None:
            entries: dict[str, list[dict[str, Any]]] = {}
            for line in server.stderr().splitlines():
                if line.startswith("{"):
                    entry = json.loads(line)
                    entries.setdefault(entry["request_id"], []).append(entry)
            return entries if {"log-me-200", "log-me-400"} <= set(entries) else None

        entries = wait_for(logged, "the access log lines")
    finally:
        server.stop()

    (ok_entry,) = entries["log-me-200"]
    assert ok_entry["status"] == 200
    assert ok_entry["method"] == "POST"
    assert ok_entry["path"] == "/v2/models/tiny/infer"
    assert ok_entry["model"] == "tiny"
    assert ok_entry["version"] == "1"
    assert ok_entry["rows"] == 2
    assert ok_entry["client"] == "127.0.0.1"
    assert ok_entry["ms"] >= 0
    (bad_entry,) = entries["log-me-400"]
    assert bad_entry["status"] == 400
    assert bad_entry["path"] == "/v1/models/tiny:predict"
    assert bad_entry["model"] == "tiny"


def test_no_access_log_when_disabled(tensor_registry: Registry, tmp_path: Path) -> None:
    server = ServeProcess(
        tensor_registry.settings.home,
        tmp_path,
        "--model",
        "tiny",
        "--no-access-log",
        env=storage_environment(tensor_registry.settings),
    )
    try:
        server.wait_ready()
        with client(server.url) as http:
            assert http.post("/v2/models/tiny/infer", json=v2_tiny([[1, 2, 3]])).status_code == 200
        server.terminate()
        assert server.process.wait(timeout=30) == 0
    finally:
        server.stop()
    assert not [line for line in server.stderr().splitlines() if line.startswith("{")]


def test_sigterm_on_an_idle_server_exits_0_quickly(
    tensor_registry: Registry, tmp_path: Path
) -> None:
    server = ServeProcess(
        tensor_registry.settings.home,
        tmp_path,
        "--model",
        "tiny",
        env=storage_environment(tensor_registry.settings),
    )
    try:
        server.wait_ready()
        server.terminate()
        try:
            returncode = server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            returncode = None
    finally:
        server.stop()
    assert returncode == 0, server.stderr()
