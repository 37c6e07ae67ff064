"""Reference data files: read, checked against the model's signature, stored as the baseline."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from helpers import blob_files, version_rows
from shipyard import Registry, Settings
from shipyard.errors import InvalidInputError, SignatureMismatchError

ROWS = np.random.default_rng(3).normal(size=(25, 3))


def _stored_reference(registry: Registry, version: Any) -> np.ndarray:
    data = registry.read_file(version, "reference.npy")
    return np.load(io.BytesIO(data), allow_pickle=False)


def _write_csv(path: Path, rows: np.ndarray, header: str = "") -> Path:
    np.savetxt(path, rows, delimiter=",", header=header, comments="")
    return path


def test_npy(registry: Registry, tiny_onnx_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "ref.npy"
    np.save(path, ROWS)
    version = shipyard.register(tiny_onnx_path, "tiny", reference_data=path, registry=registry)
    stored = _stored_reference(registry, version)
    assert stored.shape == (25, 3)
    assert stored.dtype == np.float32
    np.testing.assert_allclose(stored, ROWS.astype(np.float32))
    assert version.conversion["reference_data"] == {
        "file": "reference.npy",
        "rows": 25,
        "source": "ref.npy",
        "columns": None,
    }
    np.testing.assert_allclose(np.asarray(version.input_example), ROWS[:3], rtol=1e-6)


def test_csv_without_header(registry: Registry, tiny_onnx_path: Path, tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "ref.csv", ROWS)
    assert path.read_text().splitlines()[0][0] in "-0123456789"
    version = shipyard.register(tiny_onnx_path, "tiny", reference_data=path, registry=registry)
    stored = _stored_reference(registry, version)
    assert stored.shape == (25, 3)
    np.testing.assert_allclose(stored, ROWS.astype(np.float32), rtol=1e-6)
    assert version.conversion["reference_data"]["columns"] is None


def test_csv_with_header(registry: Registry, tiny_onnx_path: Path, tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "ref.csv", ROWS, header="age,income,score")
    version = shipyard.register(tiny_onnx_path, "tiny", reference_data=path, registry=registry)
    stored = _stored_reference(registry, version)
    assert stored.shape == (25, 3)
    np.testing.assert_allclose(stored, ROWS.astype(np.float32), rtol=1e-6)
    assert version.conversion["reference_data"]["columns"] == ["age", "income", "score"]


def test_parquet(registry: Registry, tiny_onnx_path: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "ref.parquet"
    table = pa.table({"a": ROWS[:, 0], "b": ROWS[:, 1], "c": ROWS[:, 2].astype(np.float32)})
    pq.write_table(table, path)
    version = shipyard.register(tiny_onnx_path, "tiny", reference_data=path, registry=registry)
    stored = _stored_reference(registry, version)
    assert stored.shape == (25, 3)
    np.testing.assert_allclose(stored, ROWS.astype(np.float32), rtol=1e-6)
    assert version.conversion["reference_data"]["columns"] == ["a", "b", "c"]


def test_sklearn_reference_csv(
    registry: Registry, cancer_classifier: Any, cancer_csv: Path
) -> None:
    version = shipyard.register(
        cancer_classifier, "cancer", reference_data=cancer_csv, registry=registry
    )
    assert _stored_reference(registry, version).shape == (200, 30)


# Refused -----------------------------------------------------------------------------------


def _refused(settings: Settings) -> None:
    assert version_rows(settings) == 0
    assert blob_files(settings) == []


def test_csv_with_wrong_number_of_columns(
    settings: Settings, tiny_onnx_path: Path, tmp_path: Path
) -> None:
    path = _write_csv(tmp_path / "wide.csv", np.ones((5, 4)))
    with pytest.raises(SignatureMismatchError, match=r"expects shape \[-1, 3\], got \[5, 4\]"):
        shipyard.register(tiny_onnx_path, "tiny", reference_data=path, settings=settings)
    _refused(settings)


def test_csv_with_wrong_number_of_columns_for_sklearn(
    settings: Settings, cancer_classifier: Any, tmp_path: Path
) -> None:
    path = _write_csv(tmp_path / "narrow.csv", np.ones((5, 29)))
    with pytest.raises(SignatureMismatchError, match=r"expects \[n, 30\]"):
        shipyard.register(cancer_classifier, "cancer", reference_data=path, settings=settings)
    _refused(settings)


def test_csv_with_a_text_column(settings: Settings, tiny_onnx_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "text.csv"
    path.write_text("a,b,city\n1,2,paris\n3,4,lyon\n5,6,nice\n")
    with pytest.raises(SignatureMismatchError, match=r"column 'city' holds string values"):
        shipyard.register(tiny_onnx_path, "tiny", reference_data=path, settings=settings)
    _refused(settings)


def test_parquet_with_a_text_column(
    settings: Settings, tiny_onnx_path: Path, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "text.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "b": [1, 2], "label": ["x", "y"]}), path)
    with pytest.raises(SignatureMismatchError, match=r"column 'label'"):
        shipyard.register(tiny_onnx_path, "tiny", reference_data=path, settings=settings)
    _refused(settings)


def test_text_file_for_a_tabular_model(
    settings: Settings, tiny_onnx_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("first line\nsecond line\n")
    with pytest.raises(SignatureMismatchError, match=r"input 'x' expects FP32"):
        shipyard.register(tiny_onnx_path, "tiny", reference_data=path, settings=settings)
    _refused(settings)


def test_text_file_for_a_sklearn_model(
    settings: Settings, cancer_classifier: Any, tmp_path: Path
) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("first line\nsecond line\n")
    with pytest.raises(SignatureMismatchError, match="takes rows of numbers"):
        shipyard.register(cancer_classifier, "cancer", reference_data=path, settings=settings)
    _refused(settings)


def test_single_row(settings: Settings, tiny_onnx_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "one.npy"
    np.save(path, np.ones(3))
    with pytest.raises(SignatureMismatchError, match="holds a single row"):
        shipyard.register(tiny_onnx_path, "tiny", reference_data=path, settings=settings)
    _refused(settings)


@pytest.mark.slow
def test_npy_for_the_text_model(settings: Settings, minilm_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "numbers.npy"
    np.save(path, np.ones((4, 3)))
    with pytest.raises(SignatureMismatchError, match=r"a text model takes a \.txt file"):
        shipyard.register(minilm_dir, "minilm", reference_data=path, settings=settings)
    _refused(settings)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("ref.xlsx", b"PK\x03\x04", r"use one of \.npy, \.csv, \.parquet, \.txt"),
        ("ref.json", b"[[1, 2, 3]]", r"use one of"),
        ("empty.csv", b"", r"is empty"),
        ("header.csv", b"a,b,c\n", r"has a header but no rows"),
        ("ragged.csv", b"1,2,3\n4,5\n", r"cannot read .* as CSV"),
        ("garbage.npy", b"not numpy", r"cannot read .* as a numpy array"),
        ("empty.npy", b"", r"cannot read .* as a numpy array"),
        ("garbage.parquet", b"not parquet", r"cannot read .* as Parquet"),
        ("blank.txt", b"\n  \n", r"has no non-empty lines"),
        ("latin1.txt", "caf\xe9\n".encode("latin-1"), r"is not UTF-8 text"),
        ("latin1.csv", "caf\xe9,1\n1,2\n".encode("latin-1"), r"is not UTF-8 text"),
    ],
)
def test_unreadable_files(
    settings: Settings, tiny_onnx_path: Path, tmp_path: Path, name: str, content: bytes, match: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=match):
        shipyard.register(tiny_onnx_path, "tiny", reference_data=path, settings=settings)
    assert not settings.home.exists()  # refused before the registry was opened


def test_object_npy_is_not_unpickled(
    settings: Settings, tiny_onnx_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInputError, match=r"cannot read .* as a numpy array"):
        shipyard.register(tiny_onnx_path, "tiny", reference_data=path, settings=settings)


def test_missing_file(settings: Settings, tiny_onnx_path: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"reference data file .*nope\.csv does not exist"):
        shipyard.register(
            tiny_onnx_path, "tiny", reference_data=tmp_path / "nope.csv", settings=settings
        )
    assert not settings.home.exists()


def test_example_file_that_does_not_exist(
    settings: Settings, tiny_onnx_path: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match=r"input example file .*ex\.json does not exist"):
        shipyard.register(
            tiny_onnx_path, "tiny", example_input=tmp_path / "ex.json", settings=settings
        )


def test_example_from_files(registry: Registry, tiny_onnx_path: Path, tmp_path: Path) -> None:
    as_json = tmp_path / "ex.json"
    as_json.write_text("[[1, 2, 3]]")
    version = shipyard.register(tiny_onnx_path, "tiny", example_input=as_json, registry=registry)
    assert version.input_example == [[1, 2, 3]]
    as_npy = tmp_path / "ex.npy"
    np.save(as_npy, np.ones((2, 3), dtype=np.float32))
    version = shipyard.register(tiny_onnx_path, "tiny", example_input=as_npy, registry=registry)
    assert version.input_example == [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
