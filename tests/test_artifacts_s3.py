"""Artifacts in an S3 bucket (moto's server, a real S3 API over HTTP): uploads only what the
bucket lacks, multipart for large files, a local cache re-hashed on every read, tampering
refused by name, `models verify` on the bucket, and the errors of a bucket that cannot be
used (exit 9, no traceback, naming what was tried)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import shipyard
from shipyard import Registry, Settings
from shipyard.cli import app
from shipyard.errors import IntegrityError, StorageError
from shipyard.registry.backends import open_artifacts
from shipyard.registry.s3_store import S3ArtifactStore

MIB = 1024 * 1024


@pytest.fixture
def s3_settings(tmp_path: Path, s3_url: str) -> Settings:
    return Settings(home=tmp_path / "home", artifact_url=s3_url)


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, ["--home", str(home), *args], env=env)


def bucket_keys(s3_server: Any, url: str) -> dict[str, Any]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    listing = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {entry["Key"]: entry for entry in listing.get("Contents", [])}


def test_the_settings_choose_the_bucket(s3_settings: Settings) -> None:
    store = open_artifacts(s3_settings)
    assert isinstance(store, S3ArtifactStore)
    assert f"s3://{store.bucket}/{store.prefix}" == s3_settings.artifact_url
    assert store.prefix == "artifacts"
    assert store.cache.root == s3_settings.artifact_cache_dir


def test_a_version_round_trips_through_the_bucket(
    s3_settings: Settings, s3_server: Any, tiny_onnx_path: Path
) -> None:
    with Registry(s3_settings) as registry:
        version = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
        entry = version.file("model.onnx")
        assert entry is not None
        keys = bucket_keys(s3_server, s3_settings.artifact_url or "")
        store = registry.artifacts
        assert isinstance(store, S3ArtifactStore)
        # the model file and the manifest, each under its sha256
        assert set(keys) == {store.key(entry.digest), store.key(version.artifact_digest)}
        assert registry.read_files(version)["model.onnx"] == tiny_onnx_path.read_bytes()
        assert store.cache.exists(entry.digest)  # downloaded once, kept
        model = shipyard.load("tiny:1", registry=registry)
        x = np.ones((2, 3), dtype=np.float32)
        assert model.predict({"x": x})["y"].shape == (2, 2)


def test_content_the_bucket_has_is_not_uploaded_again(
    s3_settings: Settings, tiny_onnx_path: Path
) -> None:
    with Registry(s3_settings) as registry:
        store = registry.artifacts
        first = store.put_file(tiny_onnx_path)
        again = store.put_file(tiny_onnx_path)
        assert first.created
        assert not again.created
        assert again.digest == first.digest
        two = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
        three = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
        assert two.artifact_digest == three.artifact_digest


def test_a_large_file_is_uploaded_in_parts(
    s3_settings: Settings, s3_server: Any, tmp_path: Path
) -> None:
    big = tmp_path / "weights.bin"
    big.write_bytes(np.random.default_rng(0).bytes(11 * MIB))
    store = S3ArtifactStore(
        s3_settings.artifact_url or "", tmp_path / "cache", multipart_threshold=5 * MIB
    )
    blob = store.put_file(big)
    head = s3_server.client().head_object(Bucket=store.bucket, Key=store.key(blob.digest))
    assert head["ContentLength"] == 11 * MIB
    assert head["ETag"].strip('"').endswith("-3")  # S3's ETag of a three-part upload
    assert store.read_verified(blob.digest, "weights.bin") == big.read_bytes()


def test_a_tampered_object_is_refused_by_name(
    s3_settings: Settings, s3_server: Any, tiny_onnx_path: Path
) -> None:
    with Registry(s3_settings) as registry:
        version = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
        entry = version.file("model.onnx")
        assert entry is not None
        store = registry.artifacts
        assert isinstance(store, S3ArtifactStore)
        s3_server.client().put_object(
            Bucket=store.bucket, Key=store.key(entry.digest), Body=b"not the model"
        )
        with pytest.raises(IntegrityError, match=r"'model\.onnx' is corrupt.*s3://"):
            registry.read_files(version)
        assert not store.cache.exists(entry.digest)  # a bad download never enters the cache
        result = cli(s3_settings.home, "models", "verify", "tiny:1", env=_env(s3_settings))
        assert result.exit_code == IntegrityError.exit_code
        assert "model.onnx" in result.output
        assert store.location(entry.digest) in result.output.replace("\n", "")


def test_a_tampered_cache_file_is_refused_by_name(
    s3_settings: Settings, tiny_onnx_path: Path
) -> None:
    with Registry(s3_settings) as registry:
        version = shipyard.register(tiny_onnx_path, "tiny", registry=registry)
        registry.read_files(version)  # fills the cache
        entry = version.file("model.onnx")
        assert entry is not None
        store = registry.artifacts
        assert isinstance(store, S3ArtifactStore)
        cached = store.cache.blob_path(entry.digest)
        cached.chmod(0o644)
        cached.write_bytes(b"changed on this disk")
        with pytest.raises(IntegrityError, match=r"'model\.onnx' is corrupt") as caught:
            registry.read_files(version)
        assert str(cached) in caught.value.message
        # the bucket itself is intact: verify re-hashes the object there, not the cache
        assert registry.verify("tiny:1").ref == "tiny:1"


def test_models_verify_reads_the_bucket(s3_settings: Settings, tiny_onnx_path: Path) -> None:
    with Registry(s3_settings) as registry:
        shipyard.register(tiny_onnx_path, "tiny", registry=registry)
    result = cli(s3_settings.home, "models", "verify", "tiny:1", env=_env(s3_settings))
    assert result.exit_code == 0, result.output
    assert "all digests match" in result.output


def _env(settings: Settings) -> dict[str, str]:
    return {"SHIPYARD_ARTIFACT_URL": settings.artifact_url or ""}


# Buckets that cannot be used: exit 9, the message naming what was tried -------------------


def register_cli(home: Path, model: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`shipyard models register` in a process of its own, with exactly this AWS setting."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SHIPYARD_"))}
    clean["HOME"] = str(home.parent)  # no ~/.aws of the machine's
    shipyard_cli = str(Path(sys.executable).with_name("shipyard"))
    return subprocess.run(
        [shipyard_cli, "--home", str(home), "models", "register", str(model), "--name", "tiny"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == StorageError.exit_code, result.stderr
    message = " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in message, message


def test_an_unreachable_endpoint(tmp_path: Path, tiny_onnx_path: Path, s3_server: Any) -> None:
    env = {**s3_server.environment(), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    env["SHIPYARD_ARTIFACT_URL"] = "s3://some-bucket/artifacts"
    result = register_cli(tmp_path / "home", tiny_onnx_path, env)
    assert_refused(result, "s3://some-bucket/", "http://127.0.0.1:9", "cannot be reached")
    assert_nothing_recorded(tmp_path / "home")


def test_a_missing_bucket(tmp_path: Path, tiny_onnx_path: Path, s3_server: Any) -> None:
    env = {**s3_server.environment(), "SHIPYARD_ARTIFACT_URL": "s3://no-such-bucket/x"}
    result = register_cli(tmp_path / "home", tiny_onnx_path, env)
    assert_refused(result, "s3://no-such-bucket/", s3_server.endpoint, "bucket does not exist")
    assert_nothing_recorded(tmp_path / "home")


def test_wrong_credentials(tmp_path: Path, tiny_onnx_path: Path, s3_server: Any) -> None:
    bucket = s3_server.new_bucket()
    env = {**s3_server.environment(), "SHIPYARD_ARTIFACT_URL": f"s3://{bucket}/x"}
    s3_server.require_credentials(True)
    try:
        result = register_cli(tmp_path / "home", tiny_onnx_path, env)
    finally:
        s3_server.require_credentials(False)
    assert_refused(result, f"s3://{bucket}/", "credentials were refused")
    assert_nothing_recorded(tmp_path / "home")


def test_no_credentials_at_all(tmp_path: Path, tiny_onnx_path: Path, s3_server: Any) -> None:
    env = {
        "AWS_ENDPOINT_URL": s3_server.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance role to look for on a laptop
        "SHIPYARD_ARTIFACT_URL": f"s3://{s3_server.new_bucket()}/x",
    }
    result = register_cli(tmp_path / "home", tiny_onnx_path, env)
    assert_refused(result, "no AWS credentials found")


def test_an_unknown_scheme(tmp_path: Path, tiny_onnx_path: Path) -> None:
    result = register_cli(tmp_path / "home", tiny_onnx_path, {"SHIPYARD_ARTIFACT_URL": "gs://b/x"})
    assert_refused(result, "gs://b/x", "unknown scheme 'gs'", "s3://bucket/prefix")


def test_a_failure_mid_registration_records_nothing(
    tmp_path: Path, s3_url: str, s3_server: Any, tiny_onnx_path: Path
) -> None:
    """The endpoint goes away while a version's files are being uploaded: the registration
    fails with the endpoint named, no row is written, and what did arrive is garbage."""
    from s3_server import S3Server

    doomed = S3Server()  # a second endpoint onto the same (in-process) buckets
    doomed.start()
    stopped: list[bool] = []

    def stop_the_endpoint(description: str, _total: int) -> Any:
        def on_bytes(_n: int) -> None:
            if description.startswith("store ") and not stopped:
                stopped.append(True)
                doomed.stop()

        return on_bytes

    settings = Settings(home=tmp_path / "home", artifact_url=s3_url)
    os.environ["AWS_ENDPOINT_URL"] = doomed.endpoint  # s3_url's monkeypatch restores it
    with Registry(settings) as registry, pytest.raises(StorageError) as caught:
        shipyard.register(tiny_onnx_path, "tiny", registry=registry, progress=stop_the_endpoint)
    assert stopped
    assert doomed.endpoint in caught.value.message
    os.environ["AWS_ENDPOINT_URL"] = s3_server.endpoint
    with Registry(settings) as registry:
        assert registry.list_models() == []
        registry.collect_garbage(min_age=timedelta(0))
        assert list(registry.artifacts.list_blobs()) == []


def assert_nothing_recorded(home: Path) -> None:
    with Registry(Settings(home=home)) as registry:
        assert registry.list_models() == []
