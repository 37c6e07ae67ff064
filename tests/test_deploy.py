"""``shipyard deploy``: rule files and a dashboard that the real promtool and Prometheus accept.

promtool checks the syntax and unit-tests every alert (it fires on a bad series, stays quiet
on a healthy one); a real Prometheus scrapes a real Shipyard server and evaluates the rules.
Both binaries come from scripts/install-prometheus.sh (``make test`` runs it first; the
fixture runs it too), and the tests skip only when it cannot install them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from typer.testing import CliRunner

from server_helpers import client, free_port, running_server, server_settings, v2_tiny, wait_for
from shipyard.cli import app
from shipyard.errors import InvalidInputError
from shipyard.server.metrics import Metrics

INSTALL_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install-prometheus.sh"
ALERTS = {
    "ShipyardHighErrorRatio",
    "ShipyardHighP99Latency",
    "ShipyardFeatureDrift",
    "ShipyardDatasetDrift",
    "ShipyardMonitorStale",
    "ShipyardPerformanceDrop",
    "ShipyardRolloutRolledBack",
    "ShipyardRolloutPaused",
}
# Alerts about a model's rollout, not one version: their labels and texts name the model only.
ROLLOUT_ALERTS = {"ShipyardRolloutRolledBack", "ShipyardRolloutPaused"}
# Panel title -> a metric its query must read.
PANELS = {
    "Request rate by status": "shipyard_requests_total",
    "Latency p50 / p99": "shipyard_request_duration_seconds_bucket",
    "Batch size": "shipyard_batch_size_rows",
    "Queue depth": "shipyard_queue_depth_rows",
    "Feature drift scores": "shipyard_feature_drift_score",
    "Dataset drift share": "shipyard_dataset_drift_share",
    "Prediction drift": "shipyard_prediction_drift_score",
    "Data quality violations": "shipyard_data_quality_violations_total",
    "Model performance": "shipyard_model_performance",
    "Monitor last evaluation age": "shipyard_monitor_last_evaluation_timestamp_seconds",
    "Rollout traffic weight": "shipyard_rollout_weight",
    "Rollout phase": "shipyard_rollout_phase",
    "Rollout checks": "shipyard_rollout_check",
}
ROWS = {"Rollouts": ["Rollout traffic weight", "Rollout phase", "Rollout checks"]}


# Helpers ---------------------------------------------------------------------------------


def deploy(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "deploy", *args])


def write_rules(tmp_path: Path, *args: str, name: str = "rules.yml") -> Path:
    path = tmp_path / name
    result = deploy(tmp_path, "prometheus-rules", "--out", str(path), *args)
    assert result.exit_code == 0, result.output
    assert f"wrote Prometheus rules to {path}" in result.stdout
    return path


def load_yaml(path: Path) -> Any:
    yaml = pytest.importorskip("yaml")  # the hf extra brings it; Shipyard itself does not
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules_of(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def promtool(tools: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tools["promtool"], *args], capture_output=True, text=True, timeout=120, check=False
    )


def _find_tools() -> dict[str, str] | None:
    found = {name: shutil.which(name) for name in ("promtool", "prometheus")}
    return {k: v for k, v in found.items() if v} if all(found.values()) else None


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    """Paths of promtool and prometheus, installed by the project's script when missing."""
    found = _find_tools()
    if found is None:
        result = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False
        )
        found = _find_tools()
        if found is None:
            pytest.skip(
                f"promtool/prometheus are not on PATH and {INSTALL_SCRIPT.name} could not "
                f"install them (exit {result.returncode}): {result.stderr.strip()}"
            )
    return found


# The rule file ---------------------------------------------------------------------------


def test_rules_pass_promtool_check(tmp_path: Path, tools: dict[str, str]) -> None:
    path = write_rules(tmp_path)
    checked = promtool(tools, "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr

    rules = rules_of(path)
    alerts = {rule["alert"]: rule for rule in rules if "alert" in rule}
    assert set(alerts) == ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}
        for text in rule["annotations"]["summary"], rule["annotations"]["description"]:
            assert "{{ $labels.model }}" in text
            assert ("{{ $labels.version }}" in text) == (name not in ROLLOUT_ALERTS), name
    assert "{{ $labels.feature }}" in alerts["ShipyardFeatureDrift"]["annotations"]["summary"]


def test_rules_print_to_stdout_without_out(tmp_path: Path) -> None:
    result = deploy(tmp_path, "prometheus-rules")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Prometheus rules for Shipyard")
    assert 'rate(shipyard_requests_total{status=~"5.."}[5m])' in result.stdout


# Each alert: the series that makes it fire (model "tiny") next to a healthy one ("good");
# the expected value of ``{{ $value | ... }}`` in its summary; when to look; and a time before
# its ``for`` has passed, when it must not fire yet.
ALERT_CASES: dict[str, dict[str, Any]] = {
    "ShipyardHighErrorRatio": {
        "series": {
            'shipyard_requests_total{model="tiny",version="1",status="200"}': "0+30x30",
            'shipyard_requests_total{model="tiny",version="1",status="500"}': "0+10x30",
            'shipyard_requests_total{model="good",version="1",status="200"}': "0+100x30",
            'shipyard_requests_total{model="good",version="1",status="503"}': "0+1x30",
        },
        "labels": {"severity": "critical"},
        "value": "25%",
        "at": "20m",
        "too_early": "3m",
    },
    "ShipyardHighP99Latency": {
        "series": {
            **{
                f'shipyard_request_duration_seconds_bucket{{model="tiny",version="1",le="{le}"}}': (
                    "0+0x30" if le in ("0.1", "0.5") else "0+10x30"
                )
                for le in ("0.1", "0.5", "1", "+Inf")
            },
            **{
                f'shipyard_request_duration_seconds_bucket{{model="good",version="1",le="{le}"}}': (
                    "0+10x30"
                )
                for le in ("0.1", "0.5", "1", "+Inf")
            },
        },
        "labels": {"severity": "warning"},
        "value": "995ms",
        "at": "25m",
        "too_early": "8m",
    },
    "ShipyardFeatureDrift": {
        "series": {
            'shipyard_feature_drifted{model="tiny",version="1",feature="age"}': "1x30",
            'shipyard_feature_drifted{model="tiny",version="1",feature="income"}': "0x30",
            'shipyard_feature_drifted{model="good",version="1",feature="age"}': "0x30",
        },
        "labels": {"severity": "warning", "feature": "age"},
        "value": None,
        "at": "20m",
        "too_early": "10m",
    },
    "ShipyardDatasetDrift": {
        "series": {
            'shipyard_dataset_drift_share{model="tiny",version="1"}': "0.75x30",
            'shipyard_dataset_drift_share{model="good",version="1"}': "0.25x30",
        },
        "labels": {"severity": "critical"},
        "value": "75%",
        "at": "20m",
        "too_early": "10m",
    },
    "ShipyardMonitorStale": {
        # tiny's monitor last ran at t=0; good's runs every minute (value = its timestamp).
        "series": {
            'shipyard_monitor_last_evaluation_timestamp_seconds{model="tiny",version="1"}': (
                "0x30"
            ),
            'shipyard_monitor_last_evaluation_timestamp_seconds{model="good",version="1"}': (
                "0+60x30"
            ),
        },
        "labels": {"severity": "warning"},
        "value": "25m 0s",
        "at": "25m",
        "too_early": "8m",
    },
    "ShipyardPerformanceDrop": {
        # 0.9 for a day, then tiny falls to 0.8 (-11 %) and good to 0.88 (-2 %).
        "interval": "5m",
        "series": {
            'shipyard_model_performance{model="tiny",version="1",metric="accuracy"}': (
                "0.9x288 0.8x24"
            ),
            'shipyard_model_performance{model="good",version="1",metric="accuracy"}': (
                "0.9x288 0.88x24"
            ),
        },
        "labels": {"severity": "critical", "metric": "accuracy"},
        "value": "11.11%",
        "at": "1500m",
        "too_early": "1460m",
    },
    "ShipyardRolloutRolledBack": {
        # tiny's rollout rolls back at 11m; good's never does; restarted's server restarts
        # (its counter drops from 1 to 0), which is no new rollback.
        "series": {
            'shipyard_rollouts_rolled_back_total{model="tiny"}': "0x10 1x20",
            'shipyard_rollouts_rolled_back_total{model="good"}': "0x30",
            'shipyard_rollouts_rolled_back_total{model="restarted"}': "1x10 0x20",
            'shipyard_rollouts_promoted_total{model="good"}': "0x10 1x20",
        },
        "versioned": False,
        "labels": {"severity": "warning"},
        "value": None,
        "at": "12m",
        "too_early": "10m",
        "over": "30m",  # once the window no longer holds the step, the alert resolves
    },
    "ShipyardRolloutPaused": {
        # tiny's rollout pauses at 6m and stays paused; good's pauses 5 minutes and resumes.
        "series": {
            'shipyard_rollout_phase{model="tiny",phase="progressing"}': "1x5 0x25",
            'shipyard_rollout_phase{model="tiny",phase="paused"}': "0x5 1x25",
            'shipyard_rollout_phase{model="good",phase="progressing"}': "1x5 0x5 1x20",
            'shipyard_rollout_phase{model="good",phase="paused"}': "0x5 1x5 0x20",
        },
        "versioned": False,
        "labels": {"severity": "warning", "phase": "paused"},
        "value": None,
        "at": "25m",
        "too_early": "18m",
    },
}


def _expand(template: str, labels: dict[str, str], value: str | None) -> str:
    """What Prometheus makes of an annotation template, for the values of one test case."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)
    if value is not None:
        text = re.sub(r"\{\{ \$value \| \w+ \}\}", value, text)
    assert "{{" not in text, text
    return text


def unit_tests(rules: Path) -> dict[str, Any]:
    """promtool's unit-test file for ``rules``: every alert firing once, and not before."""
    templates = {rule["alert"]: rule for rule in rules_of(rules) if "alert" in rule}
    tests = []
    assert set(ALERT_CASES) == set(templates) == ALERTS
    for name, case in ALERT_CASES.items():
        versioned = case.get("versioned", True)
        labels = {"model": "tiny", **({"version": "1"} if versioned else {}), **case["labels"]}
        annotations = {
            key: _expand(template, labels, case["value"])
            for key, template in templates[name]["annotations"].items()
        }
        assert "tiny" in annotations["summary"]
        assert ("version 1" in annotations["summary"]) == versioned
        quiet = [case["too_early"], *([case["over"]] if "over" in case else [])]
        tests.append(
            {
                "name": name,
                "interval": case.get("interval", "1m"),
                "input_series": [
                    {"series": series, "values": values}
                    for series, values in case["series"].items()
                ],
                "alert_rule_test": [
                    *({"eval_time": at, "alertname": name, "exp_alerts": []} for at in quiet),
                    {
                        "eval_time": case["at"],
                        "alertname": name,
                        "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}],
                    },
                ],
            }
        )
    # JSON is YAML: promtool reads it as is.
    return {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": tests}


@pytest.mark.parametrize("model", [None, "tiny"], ids=["every-model", "model-tiny"])
def test_every_alert_fires_on_bad_series_only(
    tmp_path: Path, tools: dict[str, str], model: str | None
) -> None:
    rules = write_rules(tmp_path, *(["--model", model] if model else []))
    spec = tmp_path / "rules_test.yml"
    spec.write_text(json.dumps(unit_tests(rules), indent=2), encoding="utf-8")
    tested = promtool(tools, "test", "rules", str(spec))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr


def test_options_change_the_thresholds(tmp_path: Path) -> None:
    path = write_rules(
        tmp_path, "--drift-share", "0.3", "--stale-seconds", "600", "--performance-drop", "0.1"
    )
    exprs = {rule["alert"]: rule["expr"] for rule in rules_of(path) if "alert" in rule}
    assert exprs["ShipyardDatasetDrift"].endswith(">= 0.3")
    assert exprs["ShipyardMonitorStale"].endswith("> 600")
    assert exprs["ShipyardPerformanceDrop"].endswith("> 0.1")


def test_model_option_restricts_every_expression(tmp_path: Path, tools: dict[str, str]) -> None:
    path = write_rules(tmp_path, "--model", "fraud-v2")
    rules = rules_of(path)
    assert len(rules) == 10
    for rule in rules:
        selectors = re.findall(r"[a-z_:]+\{[^}]*\}", rule["expr"])
        assert selectors, rule["expr"]
        for selector in selectors:
            assert 'model="fraud-v2"' in selector, rule["expr"]
    checked = promtool(tools, "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "Bad Name"], "invalid model name 'Bad Name'"),
        (["--model", "../etc"], "invalid model name"),
        (["--drift-share", "0"], "--drift-share must be in (0, 1]"),
        (["--drift-share", "2"], "--drift-share must be in (0, 1]"),
        (["--stale-seconds", "-1"], "--stale-seconds must be a positive number"),
        (["--stale-seconds", "0"], "--stale-seconds must be a positive number"),
        (["--performance-drop", "1"], "--performance-drop must be in (0, 1)"),
    ],
)
def test_bad_options_are_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "rules.yml"
    result = deploy(tmp_path, "prometheus-rules", "--out", str(out), *args)
    assert result.exit_code == InvalidInputError.exit_code, result.output
    assert message in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("command", ["prometheus-rules", "grafana"])
def test_missing_output_folder_is_a_clear_error(tmp_path: Path, command: str) -> None:
    out = tmp_path / "nowhere" / "out.txt"
    result = deploy(tmp_path, command, "--out", str(out))
    assert result.exit_code == InvalidInputError.exit_code, result.output
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.output
    assert not out.parent.exists()


def test_an_existing_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text("old content that is longer than nothing\n" * 1000, encoding="utf-8")
    write_rules(tmp_path)
    assert "old content" not in path.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# The metrics the rules read -----------------------------------------------------------------


def test_rollout_metrics_pass_promtool_check_metrics(tools: dict[str, str]) -> None:
    """promtool's linter on the exposition: counter names end in _total, gauges' do not, every
    family has help; it exits 3 and names the metric on any problem."""
    metrics = Metrics(lambda: [])
    metrics.rollout_state("fraud", "rolling_back", {"1": 1.0, "2": 0.0}, {"error_ratio": "fail"})
    metrics.rollout_state("fraud", "rolled_back", {"1": 1.0}, {"error_ratio": "fail"})
    metrics.rollout_state("churn", "paused", {"1": 0.75, "2": 0.25}, {"sample_ratio": "fail"})
    text = metrics.render().decode("utf-8")
    assert 'shipyard_rollouts_rolled_back_total{model="fraud"} 1.0' in text
    checked = subprocess.run(
        [tools["promtool"], "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


# The dashboard ---------------------------------------------------------------------------


def write_dashboard(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "dashboard.json"
    result = deploy(tmp_path, "grafana", "--out", str(path))
    assert result.exit_code == 0, result.output
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def test_dashboard_has_the_panels_and_model_variable(tmp_path: Path) -> None:
    board = write_dashboard(tmp_path)
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["model"]["query"]["query"] == "label_values(shipyard_requests_total, model)"
    assert variables["datasource"]["query"] == "prometheus"

    rows = [panel for panel in board["panels"] if panel["type"] == "row"]
    panels = {panel["title"]: panel for panel in board["panels"] if panel["type"] != "row"}
    assert set(panels) == set(PANELS)
    assert [row["title"] for row in rows] == list(ROWS)
    assert len({panel["id"] for panel in board["panels"]}) == len(PANELS) + len(ROWS)
    for title, metric in PANELS.items():
        exprs = [target["expr"] for target in panels[title]["targets"]]
        assert exprs, title
        assert all(metric in expr and '{model=~"$model"' in expr for expr in exprs), exprs
    latency = [t["expr"] for t in panels["Latency p50 / p99"]["targets"]]
    assert [e.split(",")[0] for e in latency] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.99",
    ]


def test_dashboard_rollouts_row(tmp_path: Path) -> None:
    """The row's header, then its panels below it: weight over time, phase and checks now."""
    board = write_dashboard(tmp_path)
    order = [panel["title"] for panel in board["panels"]]
    row = next(panel for panel in board["panels"] if panel["type"] == "row")
    assert row["title"] == "Rollouts"
    assert row["collapsed"] is False
    assert row["gridPos"]["w"] == 24
    start = order.index("Rollouts")
    assert order[start + 1 :] == ROWS["Rollouts"]
    above = board["panels"][:start]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in above)
    assert row["gridPos"]["y"] == bottom  # below every panel above it, overlapping none
    by_title = {panel["title"]: panel for panel in board["panels"]}
    for title in ROWS["Rollouts"]:
        assert by_title[title]["gridPos"]["y"] > row["gridPos"]["y"]
        assert by_title[title]["gridPos"]["x"] + by_title[title]["gridPos"]["w"] <= 24

    weight = by_title["Rollout traffic weight"]
    assert weight["type"] == "timeseries"
    assert weight["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert [t["legendFormat"] for t in weight["targets"]] == ["{{model}}:{{version}}"]
    assert all(t["range"] and not t["instant"] for t in weight["targets"])
    for title, label in (("Rollout phase", "{{phase}}"), ("Rollout checks", "{{result}}")):
        stat = by_title[title]
        assert stat["type"] == "stat"
        assert stat["options"]["textMode"] == "name"  # shows the legend: the phase, the result
        (target,) = stat["targets"]
        assert target["instant"]  # what holds now, not what held over the range
        assert not target["range"]
        assert target["expr"].endswith("== 1")
        assert target["legendFormat"].endswith(label)
        assert any(
            o["properties"][0]["value"]["fixedColor"] == "red"
            for o in stat["fieldConfig"]["overrides"]
        )


def test_dashboard_prints_to_stdout_without_out(tmp_path: Path) -> None:
    result = deploy(tmp_path, "grafana")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["title"] == "Shipyard"


def test_every_dashboard_query_is_valid_promql(tmp_path: Path, tools: dict[str, str]) -> None:
    board = write_dashboard(tmp_path)
    exprs = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    for metric in ("shipyard_rollout_weight", "shipyard_rollout_phase", "shipyard_rollout_check"):
        assert any(metric in expr for expr in exprs), metric
    rules = [
        {
            "record": f"shipyard:panel_{i}",
            "expr": expr.replace("$model", "tiny").replace("$__rate_interval", "5m"),
        }
        for i, expr in enumerate(exprs)
    ]
    assert all("$" not in rule["expr"] for rule in rules)
    path = tmp_path / "panels.yml"
    path.write_text(json.dumps({"groups": [{"name": "panels", "rules": rules}]}), encoding="utf-8")
    checked = promtool(tools, "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in checked.stdout + checked.stderr


# A real Prometheus ---------------------------------------------------------------------------


def test_prometheus_scrapes_a_server_and_evaluates_the_rules(
    tmp_path: Path, tools: dict[str, str], registry: Any, tiny_onnx_path: Path
) -> None:
    import shipyard

    shipyard.register(tiny_onnx_path, "tiny", alias="production", registry=registry)
    rules = write_rules(tmp_path, "--model", "tiny")
    settings = server_settings(registry.settings.home)
    with running_server(settings, models=["tiny"]) as server, client(server) as http:
        for _ in range(3):
            assert http.post("/v2/models/tiny/infer", json=v2_tiny([[1, 2, 3]])).status_code == 200
        # What a rollout controller would publish; set before anything scrapes, as the test
        # thread is not the server's event loop.
        server.app.metrics.rollout_state(
            "tiny", "progressing", {"1": 0.9, "2": 0.1}, {"error_ratio": "pass"}
        )
        target = server.url.removeprefix("http://")
        with running_prometheus(tools, tmp_path, target, rules) as (prom, process, log):
            _check_prometheus(prom, process, log)


@contextlib.contextmanager
def running_prometheus(
    tools: dict[str, str], tmp_path: Path, target: str, rules: Path | None = None
) -> Iterator[tuple[httpx2.Client, subprocess.Popen[bytes], Path]]:
    """The real prometheus scraping ``target`` every second (and evaluating ``rules``), on a
    free port with its storage in ``tmp_path``; stopped by its PID on the way out."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)] if rules is not None else [],
                "scrape_configs": [
                    {
                        "job_name": "shipyard",
                        "metrics_path": "/metrics",
                        "static_configs": [{"targets": [target]}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                tools["prometheus"],
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as prom:
            yield prom, process, log
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def _check_prometheus(prom: httpx2.Client, process: subprocess.Popen[bytes], log: Path) -> None:
    def alive() -> None:
        if process.poll() is not None:
            raise AssertionError(
                f"prometheus exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )

    def get(path: str, **params: str) -> Any:
        alive()
        try:
            response = prom.get(path, params=params)
        except httpx2.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    def query(expr: str) -> list[dict[str, Any]]:
        answer = get("/api/v1/query", query=expr)
        return answer["data"]["result"] if answer else []

    wait_for(lambda: prom_ready(get), "prometheus to become ready")
    series = wait_for(
        lambda: [s for s in query("shipyard_requests_total") if s["metric"].get("model") == "tiny"],
        "prometheus to scrape shipyard_requests_total of tiny",
    )
    assert {(s["metric"]["version"], s["metric"]["status"]) for s in series} == {("1", "200")}
    assert float(series[0]["value"][1]) == 3
    up = wait_for(lambda: query('up{job="shipyard"} == 1'), "up == 1 for the shipyard job")
    assert len(up) == 1
    phase = wait_for(
        lambda: query('shipyard_rollout_phase{model="tiny"} == 1'),
        "prometheus to scrape the rollout phase of tiny",
    )
    assert [s["metric"]["phase"] for s in phase] == ["progressing"]
    weights = {
        s["metric"]["version"]: float(s["value"][1]) for s in query("shipyard_rollout_weight")
    }
    assert weights == {"1": 0.9, "2": 0.1}
    check = query('shipyard_rollout_check{model="tiny",check="error_ratio"} == 1')
    assert [s["metric"]["result"] for s in check] == ["pass"]
    rolled_back = query('shipyard_rollouts_rolled_back_total{model="tiny"}')
    assert [float(s["value"][1]) for s in rolled_back] == [0.0]  # there at 0 from the start

    def evaluated_rules() -> list[dict[str, Any]]:
        answer = get("/api/v1/rules")
        if not answer:
            return []
        rules = [rule for group in answer["data"]["groups"] for rule in group["rules"]]
        if any(rule["lastEvaluation"].startswith("0001-") for rule in rules):
            return []  # a group has not run yet
        return rules

    rules = wait_for(evaluated_rules, "every rule group to be evaluated once")
    assert {rule["name"] for rule in rules if rule["type"] == "alerting"} == ALERTS
    assert len(rules) == 10
    assert {rule["name"]: rule["health"] for rule in rules} == {
        rule["name"]: "ok" for rule in rules
    }
    assert all(rule.get("lastError", "") == "" for rule in rules)


def prom_ready(get: Any) -> bool:
    answer = get("/api/v1/status/runtimeinfo")
    return bool(answer and answer.get("status") == "success")


def test_prometheus_scrapes_the_monitor_metrics(
    tmp_path: Path,
    tools: dict[str, str],
    registry: Any,
    cancer_classifier: Any,
    cancer_csv: Path,
    breast_cancer: Any,
) -> None:
    import numpy as np

    import shipyard

    shipyard.register(cancer_classifier, "cancer", reference_data=cancer_csv, registry=registry)
    x = np.asarray(breast_cancer[0][:40], dtype=np.float32)
    settings = server_settings(registry.settings.home, monitor_flush_seconds=0.2)
    with running_server(settings, models=["cancer"]) as server, client(server) as http:
        for start in range(0, 40, 10):
            rows = x[start : start + 10]
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP32",
                        "shape": list(rows.shape),
                        "data": rows.ravel().tolist(),
                    }
                ]
            }
            response = http.post("/v2/models/cancer/infer", json=body)
            assert response.status_code == 200, response.text
        target = server.url.removeprefix("http://")
        with running_prometheus(tools, tmp_path, target) as (prom, process, log):

            def query(expr: str) -> list[dict[str, Any]]:
                if process.poll() is not None:
                    raise AssertionError(
                        f"prometheus exited with {process.returncode}:\n"
                        f"{log.read_text(errors='replace')}"
                    )
                try:
                    response = prom.get("/api/v1/query", params={"query": expr})
                except httpx2.TransportError:
                    return []
                if response.status_code != 200:
                    return []
                result: list[dict[str, Any]] = response.json()["data"]["result"]
                return result

            share = wait_for(
                lambda: query('shipyard_dataset_drift_share{model="cancer"}'),
                "prometheus to scrape shipyard_dataset_drift_share of cancer",
            )
            assert [s["metric"]["version"] for s in share] == ["1"]
            assert 0.0 <= float(share[0]["value"][1]) <= 1.0
            scores = wait_for(
                lambda: query('shipyard_feature_drift_score{model="cancer"}'),
                "prometheus to scrape shipyard_feature_drift_score of cancer",
            )
            features = {s["metric"]["feature"] for s in scores}
            assert features == {f"input[{i}]" for i in range(30)}
            assert {s["metric"]["method"] for s in scores} == {"wasserstein"}
            rows = wait_for(
                lambda: query('shipyard_monitor_window_rows{model="cancer"} == 40'),
                "the evaluated window to hold the 40 rows served",
            )
            assert len(rows) == 1
