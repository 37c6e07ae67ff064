"""A registration that fails part-way leaves nothing behind: no version row, no stray blob."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from helpers import blob_files, tmp_files, version_rows
from shipyard import Registry, Settings
from shipyard.errors import ConversionError, ModelNotFoundError, ParityError, StorageError


def _assert_clean(settings: Settings, name: str) -> None:
    with Registry(settings) as registry, pytest.raises(ModelNotFoundError, match=repr(name)):
        registry.get_model(name)
    assert version_rows(settings) == 0
    assert blob_files(settings) == []
    assert tmp_files(settings) == []


def _fail_fsync_on(monkeypatch: pytest.MonkeyPatch, call: int) -> list[int]:
    """Make the ``call``-th os.fsync fail as a full disk would; returns the call counter."""
    real_fsync = os.fsync
    calls = [0]

    def fsync(fd: int) -> None:
        calls[0] += 1
        if calls[0] == call:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_conversion_error(settings: Settings, breast_cancer: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x, _ = breast_cancer
    with pytest.raises(ConversionError, match="does not look fitted"):
        shipyard.register(LogisticRegression(), "unfitted", example_input=x[:5], settings=settings)
    _assert_clean(settings, "unfitted")


def test_parity_refused(settings: Settings, cancer_logistic: Any, cancer_csv: Path) -> None:
    with pytest.raises(ParityError, match="does not match the source model"):
        shipyard.register(
            cancer_logistic, "strict", reference_data=cancer_csv, tolerance=1e-12, settings=settings
        )
    _assert_clean(settings, "strict")


def test_disk_full_on_the_second_fsync(
    settings: Settings, tiny_onnx_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Registry(settings).close()  # the database exists before the disk fills up
    _fail_fsync_on(monkeypatch, 2)
    with pytest.raises(StorageError, match="No space left on device"):
        shipyard.register(tiny_onnx_path, "tiny", settings=settings)
    monkeypatch.undo()
    _assert_clean(settings, "tiny")


@pytest.mark.parametrize("call", [1, 2, 3, 4, 5, 6])
def test_disk_full_at_every_step(
    settings: Settings,
    tiny_onnx_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    call: int,
) -> None:
    """model.onnx, reference.npy and the manifest each take a file and a folder fsync."""
    reference = tmp_path / "ref.npy"
    np.save(reference, np.ones((5, 3)))
    Registry(settings).close()
    calls = _fail_fsync_on(monkeypatch, call)
    with pytest.raises(StorageError, match="could not write an artifact"):
        shipyard.register(tiny_onnx_path, "tiny", reference_data=reference, settings=settings)
    assert calls[0] == call  # it stopped at the failure
    monkeypatch.undo()
    _assert_clean(settings, "tiny")
    # and the same registration then goes through
    version = shipyard.register(tiny_onnx_path, "tiny", reference_data=reference, settings=settings)
    assert version.version == 1
    with Registry(settings) as registry:
        registry.verify("tiny:1")


def test_failure_keeps_blobs_of_earlier_versions(
    settings: Settings, tiny_onnx_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipyard.register(tiny_onnx_path, "tiny", settings=settings)
    before = blob_files(settings)
    reference = tmp_path / "ref.npy"
    np.save(reference, np.ones((5, 3)))
    # model.onnx is already stored (no fsync); the 1st fsync is reference.npy's
    _fail_fsync_on(monkeypatch, 1)
    with pytest.raises(StorageError, match="No space left on device"):
        shipyard.register(tiny_onnx_path, "tiny", reference_data=reference, settings=settings)
    monkeypatch.undo()
    assert blob_files(settings) == before
    assert tmp_files(settings) == []
    with Registry(settings) as registry:
        assert [v.version for v in registry.list_versions("tiny")] == [1]
        registry.verify("tiny:1")


def _drop_table(settings: Settings, table: str) -> None:
    conn = sqlite3.connect(settings.home / "shipyard.db")
    try:
        conn.execute(f"DROP TABLE {table}")
        conn.commit()
    finally:
        conn.close()


def test_database_failure_after_blobs_were_written(
    settings: Settings, tiny_onnx_path: Path, tmp_path: Path
) -> None:
    """The version row goes in, then its event cannot: the transaction and the blobs go."""
    reference = tmp_path / "ref.npy"
    np.save(reference, np.ones((5, 3)))
    with Registry(settings) as registry:
        shipyard.register(tiny_onnx_path, "kept", registry=registry)
        kept = blob_files(settings)
        _drop_table(settings, "events")
        with pytest.raises(StorageError, match="no such table: events"):
            shipyard.register(tiny_onnx_path, "tiny", reference_data=reference, registry=registry)
        with pytest.raises(ModelNotFoundError, match="'tiny'"):
            registry.get_model("tiny")
        assert [m.name for m in registry.list_models()] == ["kept"]
        assert blob_files(settings) == kept  # the new reference and manifest were removed
        assert tmp_files(settings) == []
        registry.verify("kept")


def test_database_failure_where_sharing_cannot_be_checked(
    settings: Settings, tiny_onnx_path: Path
) -> None:
    """With version_files gone the registry cannot tell which blobs are shared: it keeps them."""
    with Registry(settings) as registry:
        _drop_table(settings, "version_files")
        with pytest.raises(StorageError, match="no such table: version_files"):
            shipyard.register(tiny_onnx_path, "tiny", registry=registry)
        with pytest.raises(ModelNotFoundError, match="'tiny'"):
            registry.get_model("tiny")
    assert version_rows(settings) == 0
    assert tmp_files(settings) == []
