"""Health, readiness and metadata: plain HTTP and tritonclient against real servers."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

import shipyard
from server_helpers import (
    HANG_GUARD_S,
    SHIPYARD,
    blob_of,
    clean_environment,
    client,
    free_port,
    register_tiny,
    running_server,
    server_settings,
    triton_url,
    v2_tiny,
    wait_for,
)
from shipyard import Registry
from shipyard.errors import ModelNotFoundError, StorageError
from shipyard.server import Server


@pytest.fixture
def triton_client(tensor_server: Server) -> Any:
    tc = triton.InferenceServerClient(triton_url(tensor_server))
    try:
        yield tc
    finally:
        tc.close()


def test_live_ready_and_server_metadata(tensor_server: Server) -> None:
    with client(tensor_server) as http:
        live = http.get("/v2/health/live")
        assert live.status_code == 200
        assert live.json() == {"live": True}
        ready = http.get("/v2/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True}
        meta = http.get("/v2")
        assert meta.status_code == 200
        assert meta.json() == {
            "name": "shipyard",
            "version": shipyard.__version__,
            "extensions": ["binary_tensor_data", "model_repository"],
        }


def test_triton_health_and_metadata(triton_client: Any) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready("tiny")
    assert triton_client.is_model_ready("tiny", model_version="1")
    assert triton_client.is_model_ready("cancer")
    assert not triton_client.is_model_ready("ghost")
    assert not triton_client.is_model_ready("tiny", model_version="7")
    assert triton_client.get_server_metadata()["name"] == "shipyard"


def test_triton_model_metadata(triton_client: Any) -> None:
    cancer = triton_client.get_model_metadata("cancer")
    assert cancer["name"] == "cancer"
    assert cancer["versions"] == ["1"]
    assert cancer["platform"] == "onnxruntime_onnx"
    assert cancer["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]
    assert cancer["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ]
    assert cancer["parameters"]["flavor"] == "sklearn"
    assert cancer["parameters"]["kind"] == "tensor"

    tiny = triton_client.get_model_metadata("tiny", model_version="1")
    assert tiny["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    assert tiny["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]
    assert tiny["parameters"]["version"] == "1"


def test_metadata_of_unknown_model_and_version(triton_client: Any, tensor_server: Server) -> None:
    with pytest.raises(InferenceServerException) as info:
        triton_client.get_model_metadata("ghost")
    assert info.value.status() == "404"
    assert info.value.message() == "model 'ghost' is not served here"

    with pytest.raises(InferenceServerException) as info:
        triton_client.get_model_metadata("tiny", model_version="7")
    assert info.value.status() == "404"
    assert "version 7 of 'tiny' is not loaded here" in info.value.message()

    with client(tensor_server) as http:
        ready = http.get("/v2/models/ghost/ready")
        assert ready.status_code == 404
        assert ready.json() == {"error": "model 'ghost' is not served here"}
        bad = http.get("/v2/models/tiny/versions/one")
        assert bad.status_code == 400
        assert bad.json() == {"error": "version 'one' is not a number"}
        nowhere = http.get("/v2/nowhere")
        assert nowhere.status_code == 404
        assert nowhere.json() == {"error": "no route for /v2/nowhere"}
        post = http.post("/v2/health/ready")
        assert post.status_code == 405
        assert post.json() == {"error": "POST is not allowed on /v2/health/ready"}


def test_not_ready_while_loading_then_ready(tmp_path: Path) -> None:
    """Readiness is 503 while a model loads: its blob is a FIFO that the test feeds late."""
    settings = server_settings(tmp_path / "home")
    with Registry(settings) as registry:
        version = register_tiny(registry, tmp_path, 1.0, alias="production")
        blob = blob_of(registry, version)
    original = blob.read_bytes()
    blob.chmod(0o644)
    blob.unlink()
    os.mkfifo(blob)

    def feed() -> None:
        with blob.open("wb") as fifo:  # blocks until the server's loader opens the FIFO
            fifo.write(original)

    feeder = threading.Thread(target=feed, daemon=True)
    with (
        running_server(settings, models=["tiny"], ready=False) as server,
        client(server) as http,
    ):
        try:
            ready = http.get("/v2/health/ready")
            assert ready.status_code == 503
            assert ready.json() == {"ready": False}
            model = http.get("/v2/models/tiny/ready")
            assert model.status_code == 503
            assert model.json() == {"name": "tiny", "ready": False}
            infer = http.post("/v2/models/tiny/infer", json=v2_tiny([[1, 2, 3]]))
            assert infer.status_code == 503
            assert infer.json() == {"error": "model 'tiny' is still loading"}
            assert http.get("/v2/health/live").status_code == 200
        finally:
            feeder.start()  # even after a failure: never leave the loader blocked on the FIFO
        server.wait_ready(timeout_s=HANG_GUARD_S)
        ready = http.get("/v2/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True}
        assert http.post("/v2/models/tiny/infer", json=v2_tiny([[1, 2, 3]])).status_code == 200
    feeder.join(HANG_GUARD_S)


# uvicorn ends its thread with SystemExit on a failed startup; threads ignore that exit, but
# pytest reports every exception that ends a thread.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_unknown_model_fails_fast_in_process(tmp_path: Path) -> None:
    settings = server_settings(tmp_path / "home")
    server = Server(settings, models=["ghost"])
    try:
        with pytest.raises(StorageError, match="stopped during startup"):
            server.start(timeout_s=HANG_GUARD_S)
    finally:
        server.stop(timeout_s=HANG_GUARD_S)


def test_unknown_model_fails_fast_from_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Registry(server_settings(home)).close()
    result = subprocess.run(
        [SHIPYARD, "serve", "--port", str(free_port()), "--model", "ghost", "--no-access-log"],
        env=clean_environment(home),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )
    assert result.returncode == ModelNotFoundError.exit_code
    assert "error: no model named 'ghost'" in result.stderr


def test_wait_ready_answers_with_models_loaded(tensor_server: Server) -> None:
    tensor_server.wait_ready(timeout_s=HANG_GUARD_S)
    assert tensor_server.app.is_ready()
    with client(tensor_server) as http:
        deployments = wait_for(lambda: http.get("/api/deployments").json(), "deployments")
    assert {d["name"]: d["current_version"] for d in deployments} == {"cancer": 1, "tiny": 1}
