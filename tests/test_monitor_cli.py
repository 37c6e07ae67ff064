"""``shipyard monitor status | report | export`` on a home a real server has written to."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
from typer.testing import CliRunner

import shipyard
from server_helpers import client, running_server, scrape, server_settings, wait_for
from shipyard import Registry, Settings
from shipyard.cli import app
from shipyard.errors import InvalidInputError, NotFoundError

ROWS_PER_REQUEST = 4
REQUESTS = 5


def run(home: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--home", str(home), "monitor", *args])


def flat(text: str) -> str:
    """Rich wraps long lines at the terminal's width: compare with whitespace collapsed."""
    return " ".join(text.split())


def v2_rows(rows: Any, width: int) -> dict[str, Any]:
    data = np.asarray(rows, dtype=np.float32).reshape(-1, width)
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


def serve(home: Path, model: str, batches: list[np.ndarray]) -> list[httpx2.Response]:
    """Serve ``batches`` (one request each) and stop the server, which flushes the monitor."""
    settings = server_settings(home, monitor_flush_seconds=3600.0)
    with running_server(settings, [model]) as server, client(server) as http:
        answers = []
        for batch in batches:
            response = http.post(f"/v2/models/{model}/infer", json=v2_rows(batch, batch.shape[1]))
            assert response.status_code == 200, response.text
            answers.append(response)
        wait_for(
            lambda: (
                scrape(http).value("shipyard_requests_total", model=model, status="200")
                >= len(batches)
            ),
            "every request to be counted",
        )
    return answers


@pytest.fixture(scope="module")
def feature_names() -> list[str]:
    from sklearn.datasets import load_breast_cancer

    return [str(n).replace(" ", "_") for n in load_breast_cancer().feature_names]


@pytest.fixture(scope="module")
def monitored(
    tmp_path_factory: pytest.TempPathFactory,
    cancer_classifier: Any,
    breast_cancer: tuple[np.ndarray, np.ndarray],
    feature_names: list[str],
) -> dict[str, Any]:
    """cancer served 5 requests of 4 rows, 2 of them labelled; quiet registered, never served."""
    x, y = breast_cancer
    root = tmp_path_factory.mktemp("monitor-cli")
    reference = root / "cancer.csv"
    np.savetxt(reference, x[:200], delimiter=",", header=",".join(feature_names), comments="")
    home = root / "home"
    with Registry(Settings(home=home)) as registry:
        for name in ("cancer", "quiet"):
            shipyard.register(cancer_classifier, name, reference_data=reference, registry=registry)
    batches = [x[i : i + ROWS_PER_REQUEST] for i in range(0, REQUESTS * 4, ROWS_PER_REQUEST)]
    answers = serve(home, "cancer", batches)
    ids = [a.headers["x-request-id"] for a in answers]
    labels = {ids[0]: [int(v) for v in y[0:4]], ids[2]: [int(v) for v in y[8:12]]}
    with Registry(Settings(home=home)) as registry:
        from shipyard.registry.monitoring import MonitorStore

        outcome = MonitorStore(registry.database).set_labels("cancer", labels)
    assert outcome.unknown == []
    return {"home": home, "ids": ids, "labels": labels, "root": root}


# status --------------------------------------------------------------------------------------


def test_status_after_traffic(monitored: dict[str, Any], feature_names: list[str]) -> None:
    result = run(monitored["home"], "status", "cancer")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"cancer:1: {REQUESTS * ROWS_PER_REQUEST} rows in {REQUESTS} requests" in out
    for name in feature_names:  # Rich shortens long names to the terminal's width
        assert name[:12] in out, (name, out)
    assert "label" in out
    assert re.search(r"^dataset: ", out, re.MULTILINE), out
    assert "performance from feedback: rows 8, accuracy" in out
    assert "nan" not in out.lower()


def test_status_as_json(monitored: dict[str, Any], feature_names: list[str]) -> None:
    result = run(monitored["home"], "status", "cancer", "--json", "--period", "2h")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"drift", "quality", "performance"} <= set(data)
    assert data["rows"] == REQUESTS * ROWS_PER_REQUEST
    assert [c["column"] for c in data["drift"]["columns"]] == feature_names
    assert data["performance"]["rows"] == 8
    assert set(data["quality"]) >= set(feature_names)


def test_status_without_traffic(monitored: dict[str, Any]) -> None:
    result = run(monitored["home"], "status", "quiet")
    assert result.exit_code == 0, result.output
    assert "quiet:1: 0 rows in 0 requests" in result.stdout
    assert "no traffic" in result.stdout
    quiet = json.loads(run(monitored["home"], "status", "quiet", "--json").stdout)
    assert quiet["rows"] == 0
    assert quiet["drift"] is None


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["status", "ghost"], NotFoundError.exit_code, "no model named 'ghost'"),
        (["status", "cancer:7"], NotFoundError.exit_code, "model 'cancer' has no version 7"),
        (
            ["status", "cancer", "--period", "xyz"],
            InvalidInputError.exit_code,
            "cannot read 'xyz' as a time",
        ),
        (
            ["status", "cancer", "--period", "2999-01-01"],
            InvalidInputError.exit_code,
            "the period '2999-01-01' must reach into the past",
        ),
        (["report", "ghost", "--out", "{root}/r.html"], NotFoundError.exit_code, "no model named"),
        (
            ["report", "cancer", "--out", "{root}/missing/r.html"],
            InvalidInputError.exit_code,
            "does not exist",
        ),
        (
            ["report", "cancer", "--out", "{root}/r.html", "--period", "soon"],
            InvalidInputError.exit_code,
            "cannot read 'soon' as a time",
        ),
        (
            ["export", "cancer", "--out", "{root}/x.xlsx"],
            InvalidInputError.exit_code,
            "export to .parquet, .csv, not 'x.xlsx'",
        ),
        (
            ["export", "cancer", "--out", "{root}/x.csv", "--since", "last tuesday"],
            InvalidInputError.exit_code,
            "cannot read 'last tuesday' as a time",
        ),
        (
            ["export", "cancer", "--out", "{root}/missing/x.csv"],
            InvalidInputError.exit_code,
            "does not exist",
        ),
        (["export", "ghost", "--out", "{root}/x.csv"], NotFoundError.exit_code, "ghost"),
    ],
    ids=[
        "status-unknown-model",
        "status-unknown-version",
        "status-bad-period",
        "status-future-period",
        "report-unknown-model",
        "report-missing-folder",
        "report-bad-period",
        "export-bad-suffix",
        "export-bad-since",
        "export-missing-folder",
        "export-unknown-model",
    ],
)
def test_bad_arguments_are_clear_errors(
    monitored: dict[str, Any], args: list[str], code: int, message: str
) -> None:
    root = monitored["root"]
    result = run(monitored["home"], *[a.replace("{root}", str(root)) for a in args])
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (root / "x.xlsx").exists()
    assert not (root / "missing").exists()


# report --------------------------------------------------------------------------------------


def assert_self_contained(page: str) -> None:
    assert page.startswith("<!doctype html>")
    assert "<script" not in page.lower()
    assert "http://" not in page
    assert "https://" not in page
    assert "<svg" in page


def test_report_is_one_self_contained_file(tmp_path: Path, monitored: dict[str, Any]) -> None:
    out = tmp_path / "f.html"
    result = run(monitored["home"], "report", "cancer", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in flat(result.stdout)
    page = out.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert "<h2>Input drift</h2>" in page
    assert "<h2>Prediction drift</h2>" in page
    assert "mean_radius" in page
    assert "No traffic" not in page
    assert "<table" in page


def test_report_without_traffic_shows_the_reference(
    tmp_path: Path, monitored: dict[str, Any]
) -> None:
    out = tmp_path / "quiet.html"
    result = run(monitored["home"], "report", "quiet", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "no traffic yet" in result.stdout
    page = out.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert "No traffic" in page
    assert "<h2>Distributions</h2>" in page
    assert "mean_radius" in page
    assert "<h2>Input drift</h2>" not in page


# export --------------------------------------------------------------------------------------


def test_export_parquet_has_one_row_per_served_row(
    tmp_path: Path, monitored: dict[str, Any]
) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "x.parquet"
    result = run(monitored["home"], "export", "cancer", "--out", str(out), "--since", "1h")
    assert result.exit_code == 0, result.output
    total = REQUESTS * ROWS_PER_REQUEST
    assert f"wrote {total} rows to {out}" in flat(result.stdout)
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == total
    assert {r["request_id"] for r in rows} == set(monitored["ids"])
    assert sorted((r["request_id"], r["row"]) for r in rows) == sorted(
        (i, n) for i in monitored["ids"] for n in range(ROWS_PER_REQUEST)
    )
    for row in rows:
        expected = monitored["labels"].get(row["request_id"])
        assert row["label"] == (expected[row["row"]] if expected else None)
        assert (row["labelled_at"] is not None) == (expected is not None)
    assert not [c for c in rows[0] if c.startswith("input.")]


def test_export_csv_labelled_only(tmp_path: Path, monitored: dict[str, Any]) -> None:
    out = tmp_path / "x.csv"
    result = run(monitored["home"], "export", "cancer", "--out", str(out), "--labelled-only")
    assert result.exit_code == 0, result.output
    assert f"wrote 8 rows to {out}" in flat(result.stdout)
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    labels = monitored["labels"]
    assert {r["request_id"] for r in rows} == set(labels)
    for row in rows:
        assert int(row["label"]) == labels[row["request_id"]][int(row["row"])]
        assert json.loads(row["output.probabilities"])  # a list, as JSON text


def test_export_since_a_future_date_is_empty(tmp_path: Path, monitored: dict[str, Any]) -> None:
    out = tmp_path / "later.csv"
    result = run(monitored["home"], "export", "cancer", "--out", str(out), "--since", "2999-01-01")
    assert result.exit_code == 0, result.output
    assert f"wrote 0 rows to {out}" in flat(result.stdout)
    assert out.exists()


# Reference data with an empty column and a constant one ------------------------------------


@pytest.fixture(scope="module")
def sparse_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray, Path]:
    """Features a, b, empty (all cells blank in the reference CSV), const (always 1.0)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    x[:, 2] = 0.0
    x[:, 3] = 1.0
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    path = tmp_path_factory.mktemp("sparse") / "sparse.csv"
    lines = ["a,b,empty,const", *(f"{r[0]:.5f},{r[1]:.5f},,1.0" for r in x[:100])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return x, y, path


def test_an_empty_column_needs_a_model_that_takes_missing_values(
    tmp_path: Path, sparse_data: tuple[np.ndarray, np.ndarray, Path]
) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y, reference = sparse_data
    with (
        Registry(Settings(home=tmp_path / "home")) as registry,
        pytest.raises(InvalidInputError, match="cannot predict the samples: Input X contains NaN"),
    ):
        shipyard.register(
            LogisticRegression().fit(x, y),
            "sparse",
            reference_data=reference,
            registry=registry,
        )


def test_empty_and_constant_columns_report_no_nan(
    tmp_path: Path, sparse_data: tuple[np.ndarray, np.ndarray, Path]
) -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    x, y, reference = sparse_data
    model = make_pipeline(SimpleImputer(), LogisticRegression()).fit(x, y)
    home = tmp_path / "home"
    with Registry(Settings(home=home)) as registry:
        version = shipyard.register(model, "sparse", reference_data=reference, registry=registry)
        from shipyard.registry.monitoring import MonitorStore

        profile = MonitorStore(registry.database).get_profile(version)
    assert profile is not None
    assert profile["sketches"]["empty"]["missing"] == 100
    assert profile["sketches"]["const"]["minimum"] == profile["sketches"]["const"]["maximum"] == 1.0

    before = run(home, "status", "sparse")
    assert before.exit_code == 0, before.output
    assert "no traffic" in before.stdout

    served = x[100:140].copy()
    served[20:, 3] = 2.0  # the constant column moves for half the rows
    serve(home, "sparse", [served[i : i + 10] for i in range(0, 40, 10)])

    result = run(home, "status", "sparse")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "sparse:1: 40 rows in 4 requests" in out
    assert "nan" not in out.lower()
    assert "inf" not in out.lower()
    for column in ("a", "b", "empty", "const"):
        assert re.search(rf"^\W*{column}\s", out, re.MULTILINE), (column, out)

    data = json.loads(run(home, "status", "sparse", "--json").stdout)
    columns = {c["column"]: c for c in data["drift"]["columns"]}
    assert columns["empty"]["method"] == "none"
    assert columns["empty"]["note"] == "the reference has no values"
    assert columns["const"]["drifted"] is True
    assert "constant in the reference" in columns["const"]["note"]
    assert "NaN" not in json.dumps(data)
    assert data["quality"]["empty"]["out_of_range"] == 40
    assert data["quality"]["const"]["out_of_range"] == 20

    page = tmp_path / "sparse.html"
    report = run(home, "report", "sparse", "--out", str(page))
    assert report.exit_code == 0, report.output
    assert "nan" not in re.sub(r"<style>.*?</style>", "", page.read_text(), flags=re.S).lower()
