"""CLI tables as people see them: as wide as their content where the output goes to no
terminal (a pipe, a CI log), within the terminal's width where it goes to one, and a name
never split over two lines in either.

The drift table comes from a real home: the breast-cancer classifier registered with its
reference data and served shifted traffic by a real server, so ``shipyard monitor status``
prints its 30 long feature names.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

import shipyard
from server_helpers import (
    SHIPYARD,
    clean_environment,
    client,
    running_server,
    scrape,
    server_settings,
    wait_for,
)
from shipyard import Registry, Settings
from shipyard.cli import app

NARROW = 60
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Rich honours these: a terminal is forced, COLUMNS gives its width, and TERM is not "dumb"
# (a dumb terminal is 80 wide whatever COLUMNS says).
FORCED_TERMINAL = {"COLUMNS": str(NARROW), "TTY_COMPATIBLE": "1", "TERM": "xterm-256color"}


@pytest.fixture(scope="module")
def drifted(
    tmp_path_factory: pytest.TempPathFactory,
    cancer_classifier: Any,
    breast_cancer: tuple[np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """A home where cancer:1 served 40 rows, its first features moved far from the
    reference; the names of the columns of the drift table."""
    from sklearn.datasets import load_breast_cancer

    features = [str(n).replace(" ", "_") for n in load_breast_cancer().feature_names]
    x, _ = breast_cancer
    root = tmp_path_factory.mktemp("cli-tables")
    reference = root / "cancer.csv"
    np.savetxt(reference, x[:200], delimiter=",", header=",".join(features), comments="")
    home = root / "home"
    with Registry(Settings(home=home)) as registry:
        shipyard.register(
            cancer_classifier,
            "cancer",
            reference_data=reference,
            alias="production",
            registry=registry,
        )
    served = x[200:240].astype(np.float32)
    served[:, :3] *= 3.0  # mean radius, texture and perimeter drift
    settings = server_settings(home, monitor_flush_seconds=3600.0)
    with running_server(settings, ["cancer"]) as server, client(server) as http:
        for start in range(0, len(served), 10):
            batch = served[start : start + 10]
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP32",
                        "shape": list(batch.shape),
                        "data": batch.ravel().tolist(),
                    }
                ]
            }
            response = http.post("/v2/models/cancer/infer", json=body)
            assert response.status_code == 200, response.text
        wait_for(
            lambda: (
                scrape(http).value("shipyard_requests_total", model="cancer", status="200") >= 4
            ),
            "every request to be counted",
        )
    # stopping the server flushed the monitor: the table's rows, as the JSON names them
    result = CliRunner().invoke(app, ["--home", str(home), "monitor", "status", "cancer", "--json"])
    assert result.exit_code == 0, result.output
    drift = json.loads(result.stdout)["drift"]
    names = [c["column"] for c in [*drift["columns"], *drift["predictions"]]]
    assert names[:30] == features
    assert any(c["drifted"] for c in drift["columns"])
    return {"home": home, "names": names}


def _invoke(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner(env=env).invoke(app, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return ANSI.sub("", result.stdout)


def _piped(home: Path, *args: str, **env: str) -> str:
    """The command in a child process, its stdout a pipe (as in CI or `| tee log`)."""
    done = subprocess.run(
        [SHIPYARD, *args],
        env=clean_environment(home, **env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return ANSI.sub("", done.stdout)


def _first_cells(out: str) -> list[str]:
    """The first cell of each line of the drift table's body, blank where a row goes on
    over more lines."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┡"))
    cells = []
    for line in lines[start + 1 :]:
        if not line.startswith("│"):
            break
        cells.append(line.split("│")[1].strip())
    return cells


def _assert_one_line_per_name(out: str, names: list[str]) -> None:
    cells = _first_cells(out)
    assert [c for c in cells if c] == names, out  # no name split, none left out


def _environment_without_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # the tests may run under a terminal that exported its width or forced colours
    for key in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(key, raising=False)


def test_a_drift_table_piped_keeps_each_name_whole_on_one_line(
    drifted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _environment_without_columns(monkeypatch)
    for out in (
        _invoke(drifted["home"], "monitor", "status", "cancer"),
        _piped(drifted["home"], "monitor", "status", "cancer"),
    ):
        _assert_one_line_per_name(out, drifted["names"])
        table = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
        assert len(table) == 3 + len(drifted["names"]) + 1  # each row one line, no wrap
        assert max(cell_len(line) for line in table) > 80, out  # not squeezed to 80
        assert len({cell_len(line) for line in table}) == 1  # one table, its own width
        assert re.search(r"^│ mean_radius +│ input +│ \w+ +│", out, re.MULTILINE), out
        assert re.search(r"^dataset: (no drift|drifted) ", out, re.MULTILINE), out


def test_a_drift_table_on_a_narrow_terminal_fits_it(
    drifted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _environment_without_columns(monkeypatch)
    for out in (
        _invoke(drifted["home"], "monitor", "status", "cancer", env=FORCED_TERMINAL),
        _piped(drifted["home"], "monitor", "status", "cancer", **FORCED_TERMINAL),
    ):
        lines = out.splitlines()
        assert max(cell_len(line) for line in lines) <= NARROW, out
        cells = [c for c in _first_cells(out) if c]
        # each row starts on one line with its whole name (or, too long for the terminal,
        # the name's start and an ellipsis); a line that goes on with a row has a blank first
        # cell: no name is ever folded onto a second line
        assert len(cells) == len(drifted["names"]), out
        for cell, full in zip(cells, drifted["names"], strict=True):
            assert cell == full or (cell.endswith("…") and full.startswith(cell[:-1])), cell
        assert "mean_radius" in cells


def test_columns_alone_sets_the_width_of_output_to_no_terminal(
    drifted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _environment_without_columns(monkeypatch)
    out = _invoke(drifted["home"], "monitor", "status", "cancer", env={"COLUMNS": "100"})
    assert max(cell_len(line) for line in out.splitlines()) <= 100
    assert [c for c in _first_cells(out) if c] == drifted["names"]


def test_models_show_piped_keeps_long_values_on_their_line(
    drifted: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _environment_without_columns(monkeypatch)
    with Registry(Settings(home=drifted["home"])) as registry:
        digest = registry.get_version("cancer:1").artifact_digest
    out = _invoke(drifted["home"], "models", "show", "cancer:1")
    assert re.search(rf"^artifact digest +{digest}$", out, re.MULTILINE), out
    listed = _invoke(drifted["home"], "models", "show", "cancer")
    assert re.search(r"^│ 1 +│ production +│ sklearn", listed, re.MULTILINE), listed
    narrow = _invoke(drifted["home"], "models", "show", "cancer:1", env=FORCED_TERMINAL)
    assert max(cell_len(line) for line in narrow.splitlines()) <= NARROW, narrow
    assert digest[:20] in narrow  # folded over lines, never cut
    assert digest[-20:] in narrow
