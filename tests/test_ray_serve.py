"""Shipyard on Ray Serve: models served through a real local Ray cluster answer the V2 routes
as Shipyard's own in-process server does, follow alias moves from the registry, and the
``--engine ray`` CLI runs in the foreground until SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from server_helpers import (
    HANG_GUARD_S,
    SHIPYARD,
    ServeProcess,
    clean_environment,
    client,
    free_port,
    register_tiny,
    running_server,
    server_settings,
    tiny_variant_expected,
    v2_tiny,
    wait_for,
)
from shipyard import Registry, Settings
from shipyard.errors import InvalidInputError
from shipyard.server import ray_engine
from shipyard.server.ray_engine import RayOptions, parse_autoscale

ray = pytest.importorskip("ray", reason="the ray extra (pip install 'shipyard[ray]')")

CANCER_ROWS = 5

# Ray Serve's own modules use pydantic's V1-style Field arguments on import
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """One local Ray for the test session: 2 CPUs, no dashboard, no usage reporting."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_registry(
    tmp_path_factory: pytest.TempPathFactory, cancer_classifier: Any, cancer_csv: Path
) -> Iterator[Registry]:
    """tiny (x @ W + b), cancer and mover (a tiny whose alias the tests move), all production."""
    root = tmp_path_factory.mktemp("ray")
    registry = Registry(Settings(home=root / "home"))
    try:
        register_tiny(registry, root / "src", 1.0, alias="production")
        shipyard.register(
            cancer_classifier,
            "cancer",
            reference_data=cancer_csv,
            alias="production",
            registry=registry,
        )
        register_tiny(registry, root / "src", 1.0, name="mover", alias="production")
        yield registry
    finally:
        registry.close()


@pytest.fixture(scope="module")
def ray_url(ray_registry: Registry, ray_cluster: Any) -> Iterator[str]:
    """tiny, cancer and mover on Ray Serve (one replica each), Ray's proxy on a free port."""
    port = free_port()
    settings = server_settings(ray_registry.settings.home, port=port, reload_interval_s=0.2)
    # a quarter CPU a replica: three models and the front fit in the session's two CPUs
    applications = ray_engine.deploy(
        settings, ["tiny", "cancer", "mover"], RayOptions(replica_cpus=0.25)
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        ray_engine.undeploy(applications)


@pytest.fixture(scope="module")
def local_url(ray_registry: Registry) -> Iterator[str]:
    """The same models on Shipyard's in-process server: the reference for every answer."""
    with running_server(
        server_settings(ray_registry.settings.home), models=["tiny", "cancer"]
    ) as server:
        yield server.url


def cancer_body(x: np.ndarray) -> dict[str, Any]:
    rows = x[:CANCER_ROWS].astype(np.float32)
    return {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(rows.shape),
                "data": rows.ravel().tolist(),
            }
        ]
    }


def outputs(answer: dict[str, Any]) -> dict[str, np.ndarray]:
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in answer["outputs"]}


def test_v2_infer_answers_as_the_in_process_server(
    ray_url: str, local_url: str, breast_cancer: tuple[np.ndarray, np.ndarray]
) -> None:
    bodies = {"tiny": v2_tiny([[1.0, 2.0, 3.0], [-0.5, 0.0, 4.0]]), "cancer": None}
    bodies["cancer"] = cancer_body(breast_cancer[0])
    with client(ray_url) as on_ray, client(local_url) as local:
        for name, body in bodies.items():
            path = f"/v2/models/{name}/infer"
            ray_answer, local_answer = on_ray.post(path, json=body), local.post(path, json=body)
            assert ray_answer.status_code == local_answer.status_code == 200, ray_answer.text
            assert ray_answer.headers["x-model-version"] == local_answer.headers["x-model-version"]
            got, want = outputs(ray_answer.json()), outputs(local_answer.json())
            assert got.keys() == want.keys()
            for key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-7)
            assert ray_answer.json()["model_name"] == name
    labels = outputs(ray_answer.json())["label"]
    assert labels.tolist() == breast_cancer[1][:CANCER_ROWS].tolist()


def test_concurrent_requests_are_batched_and_each_gets_its_rows(ray_url: str) -> None:
    rows = np.arange(96, dtype=np.float32).reshape(32, 3) / 10

    def one(i: int) -> np.ndarray:
        with client(ray_url) as http:
            answer = http.post("/v2/models/tiny/infer", json=v2_tiny(rows[i : i + 1]))
            assert answer.status_code == 200, answer.text
            return outputs(answer.json())["y"]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(len(rows))))
    np.testing.assert_allclose(np.vstack(results), tiny_variant_expected(rows, 1.0), rtol=1e-6)


def test_metadata_readiness_and_errors_answer_as_the_in_process_server(
    ray_url: str, local_url: str
) -> None:
    with client(ray_url) as on_ray, client(local_url) as local:
        for path in (
            "/v2/models/cancer",
            "/v2/models/tiny/versions/1",
            "/v2/models/tiny/ready",
            "/v2/health/ready",
            "/v2/health/live",
            "/v2",
            "/v2/models/absent",
            "/v2/models/tiny/versions/9",
        ):
            ray_answer, local_answer = on_ray.get(path), local.get(path)
            assert ray_answer.status_code == local_answer.status_code, path
            assert ray_answer.json() == local_answer.json(), path
        bad = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}
        ray_answer = on_ray.post("/v2/models/tiny/infer", json=bad)
        local_answer = local.post("/v2/models/tiny/infer", json=bad)
        assert ray_answer.status_code == local_answer.status_code == 400
        assert ray_answer.json() == local_answer.json()
        # Ray routes by path prefix: the V1 route names its model where no prefix can, so it
        # reaches the front, which serves no model (a documented limit of this engine)
        v1 = on_ray.post("/v1/models/tiny:predict", json={"instances": [[1.0, 2.0, 3.0]]})
        assert v1.status_code == 404


def test_replicas_follow_an_alias_move_in_the_registry(
    ray_url: str, ray_registry: Registry, tmp_path: Path
) -> None:
    version = register_tiny(ray_registry, tmp_path, 2.0, name="mover")
    ray_registry.set_alias("mover", "production", version.version)
    x = [[1.0, 2.0, 3.0]]
    with client(ray_url) as http:

        def moved() -> Any:
            answer = http.post("/v2/models/mover/infer", json=v2_tiny(x))
            return answer if answer.headers.get("x-model-version") == str(version.version) else None

        answer = wait_for(moved, "the Ray replica to serve the moved alias")
    np.testing.assert_allclose(outputs(answer.json())["y"], tiny_variant_expected(x, 2.0))


def test_cli_engine_ray_serves_until_sigterm(ray_registry: Registry, tmp_path: Path) -> None:
    # its own local cluster, so by default on Ray Serve's HAProxy ingress (the in-process
    # tests above go through Ray's HTTP proxy, the ingress of a cluster given by address)
    server = ServeProcess(
        ray_registry.settings.home,
        tmp_path,
        "--engine",
        "ray",
        "--model",
        "tiny",
        "--replica-cpus",
        "0.5",
        "--no-access-log",
        env={"RAY_USAGE_STATS_ENABLED": "0"},
    )
    try:
        server.wait_ready(timeout_s=120)
        with client(server.url) as http:
            answer = http.post("/v2/models/tiny/infer", json=v2_tiny([[1.0, 2.0, 3.0]]))
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(
                outputs(answer.json())["y"], tiny_variant_expected([[1.0, 2.0, 3.0]], 1.0)
            )
            assert http.get("/v2/models/cancer").status_code == 404  # only --model is served
        server.terminate()
        assert server.process.wait(timeout=HANG_GUARD_S) == 0, server.stderr()
    finally:
        server.stop()


def test_a_missing_model_fails_before_ray_starts(ray_registry: Registry) -> None:
    done = subprocess.run(
        [SHIPYARD, "serve", "--engine", "ray", "--model", "absent"],
        env=clean_environment(ray_registry.settings.home),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert done.returncode == 5, done.stderr
    assert "absent" in done.stderr


def test_without_the_ray_extra_the_engine_names_it(ray_registry: Registry, tmp_path: Path) -> None:
    # a sitecustomize that makes "import ray" fail as it does where the extra is not installed
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class NoRay:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ray' or name.startswith('ray.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoRay())\n"
    )
    done = subprocess.run(
        [SHIPYARD, "serve", "--engine", "ray", "--model", "tiny"],
        env=clean_environment(ray_registry.settings.home, PYTHONPATH=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert done.returncode == 10, done.stderr
    assert "pip install 'shipyard[ray]'" in done.stderr
    probe = "import ray"
    blocked = subprocess.run(
        [sys.executable, "-c", probe],
        env=clean_environment(ray_registry.settings.home, PYTHONPATH=str(tmp_path)),
        capture_output=True,
        timeout=HANG_GUARD_S,
    )
    assert blocked.returncode != 0  # the probe really hid Ray


def test_autoscale_bounds() -> None:
    assert parse_autoscale("1:4") == (1, 4)
    assert parse_autoscale("0:2") == (0, 2)
    for text in ("4", "3:1", "a:b", "0:0", "-1:2"):
        with pytest.raises(InvalidInputError):
            parse_autoscale(text)
    config = RayOptions(autoscale=(1, 4)).scaling(max_batch_size=32)
    assert config == {
        "autoscaling_config": {
            "min_replicas": 1,
            "max_replicas": 4,
            "target_ongoing_requests": 32.0,
        }
    }
    assert RayOptions(num_replicas=3).scaling(max_batch_size=32) == {"num_replicas": 3}


def test_haproxy_ingress_gets_its_own_files_and_ports(tmp_path: Path) -> None:
    assert ray_engine.ingress_environment("proxy", str(tmp_path)) == {}
    first = ray_engine.ingress_environment("haproxy", str(tmp_path / "a"))
    second = ray_engine.ingress_environment("haproxy", str(tmp_path / "b"))
    assert first["RAY_SERVE_ENABLE_HA_PROXY"] == first["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    assert first["RAY_SERVE_HAPROXY_SOCKET_PATH"].startswith(str(tmp_path / "a"))
    assert first["RAY_SERVE_HAPROXY_SOCKET_PATH"] != second["RAY_SERVE_HAPROXY_SOCKET_PATH"]
    with pytest.raises(InvalidInputError):
        ray_engine.ingress_environment("nginx", str(tmp_path))
