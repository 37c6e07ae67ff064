"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from shipyard import Settings

# The tiny ONNX model: y = x @ W + b, input "x" FP32 [-1, 3], output "y" FP32 [-1, 2].
TINY_W = np.array([[1.0, -2.0], [0.5, 0.25], [3.0, 1.0]], dtype=np.float32)
TINY_B = np.array([0.1, -0.2], dtype=np.float32)


def tiny_expected(x: np.ndarray) -> np.ndarray:
    """What the tiny ONNX model computes."""
    return np.asarray(x, dtype=np.float32) @ TINY_W + TINY_B


def tiny_onnx_bytes(weights: np.ndarray = TINY_W, bias: np.ndarray = TINY_B) -> bytes:
    """y = x @ weights + bias, input "x" FP32 [-1, 3], output "y" FP32 [-1, 2]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[
            numpy_helper.from_array(weights, name="W"),
            numpy_helper.from_array(bias, name="b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def blob_files(settings: Settings) -> list[Path]:
    """Every blob in the artifact store of ``settings`` (empty when the store does not exist)."""
    root = settings.artifacts_dir / "sha256"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def stored_digests(settings: Settings) -> list[str]:
    """The digest of every blob in the artifact store ``settings`` chooses (folder or bucket)."""
    from shipyard.registry.backends import open_artifacts

    return sorted(blob.digest for blob in open_artifacts(settings).list_blobs())


def tmp_files(settings: Settings) -> list[Path]:
    """Everything left in the artifact store's tmp/ folder."""
    root = settings.artifacts_dir / "tmp"
    return sorted(root.iterdir()) if root.exists() else []


def version_rows(settings: Settings) -> int:
    """How many version rows the SQLite database of ``settings`` holds, read with plain sqlite3."""
    db = settings.home / "shipyard.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute("SELECT count(*) FROM model_versions").fetchone()
    conn.close()
    return int(count)


# Reference sentences of the session's MiniLM registration.
MINILM_REFERENCE = [
    "A man is playing a guitar.",
    "The new movie is awesome.",
    "Der Zug nach Hamburg hat zehn Minuten Verspätung.",
    "SELECT name FROM users WHERE id = 42;",
    "Revenue grew 12% to $4.2 billion in Q3.",
]


def release_together(tmp_path: Path, script: str, args: list[str], workers: int) -> list[Any]:
    """Run ``script`` in ``workers`` real processes released at the same moment.

    Each process gets ``args`` plus two paths: a "go" file to wait for and its own "ready"
    file to create first. Returns each process's stdout parsed as JSON.
    """
    import json
    import subprocess
    import sys
    import time

    source = tmp_path / "worker.py"
    source.write_text(script)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(source), *args, str(go), str(r)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in ready):
            assert time.monotonic() < deadline, "the workers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        go.touch()  # release them all at once
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    return [json.loads(out) for out, _ in results]
