"""``shipyard monitor report`` tells each version's story: a real registry with three
versions of a classifier, a canary the real controller promoted step by step and a second
one it rolled back, labelled feedback evaluated by the real monitor; the report read back
holds every version, every decision with its figures and every step with its weight."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from rollout_models import register_classifier
from shipyard import Registry, Settings
from shipyard.cli import app
from shipyard.monitor import api
from shipyard.registry import ModelVersion
from shipyard.registry.rollouts import Rollout
from shipyard.registry.store import utcnow
from shipyard.rollout import service
from shipyard.rollout.controller import RolloutController
from shipyard.rollout.evidence import StepEvidence

HOSTILE = "<script>alert('x')</script>"
DECISION_CELLS = 13  # a decision's at, step, weight, next and why; a check's 8 figures
PER_INTERVAL = 1000  # requests both versions serve between two analyses
CANARY = {
    "strategy": "canary",
    "steps": [0.1, 0.5],
    "interval_s": 60,
    "deadline_s": 3600,
    "min_samples": 50,
}


def _drive(
    registry: Registry, rollout: Rollout, candidate_class: int | None, now: list[Any]
) -> tuple[Rollout, dict[int, dict[str, int]]]:
    """Serve each step as replicas would (the evidence they write) and let the controller
    analyse it every interval until the rollout ends; the requests written per step.
    ``candidate_class``: the class the candidate always answers, else the baseline's mix."""
    signature = registry.get_version(f"clf:{rollout.baseline}").signature
    controller = RolloutController(registry, "report-test", clock=lambda: now[0])
    (rollout,) = controller.tick()  # the pre-flight passes: the first step starts
    assert (rollout.state, rollout.step) == ("progressing", 1)
    written: dict[int, dict[str, int]] = {}
    served: dict[int, int] = {}
    for _ in range(40):
        if rollout.finished_at is not None:
            return rollout, written
        step, weight = rollout.step, rollout.weight
        served[step] = served.get(step, 0) + PER_INTERVAL
        evidence = StepEvidence()
        for side, share, fixed in (
            (evidence.baseline, 1.0 - weight, None),
            (evidence.candidate, weight, candidate_class),
        ):
            for i in range(round(served[step] * share)):
                label = fixed if fixed is not None else i % 4
                side.record(200, 0.001, {"label": np.asarray([label]), "scores": np.zeros((1, 4))})
            side.digest(signature, "classification")
        registry.rollouts.write_evidence(rollout.id, step, "replica-a", evidence.document())
        written[step] = {
            "baseline": evidence.baseline.requests,
            "candidate": evidence.candidate.requests,
        }
        now[0] += timedelta(seconds=61)
        moved = controller.tick()
        rollout = moved[0] if moved else registry.rollouts.get(rollout.id)
    raise AssertionError(f"rollout {rollout.id} did not finish: {rollout.analysis}")


def _label_feedback(registry: Registry, version: ModelVersion) -> None:
    """Logged predictions of ``version`` with labels, 3 of 4 right, and the evaluation the
    live monitor stores of them."""
    now = utcnow()
    registry.monitoring.add_predictions(
        version, [(f"r{i}", now, {"label": [i % 4]}, None) for i in range(40)]
    )
    registry.monitoring.set_labels(
        version.name, {f"r{i}": [i % 4 if i % 4 else 1] for i in range(40)}
    )
    current = api.status(registry, version.ref, "1h")
    assert current.evaluation.performance["accuracy"] == pytest.approx(0.75)
    registry.monitoring.add_evaluation(
        version, current.evaluation.evaluated_at, current.evaluation.to_dict()
    )


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("report-story")
    home = root / "home"
    now = [utcnow()]
    with Registry(Settings(home=home)) as registry:
        register_classifier(
            registry,
            root / "src",
            "good",
            alias="production",
            run_id="run-first",
            tags={"owner": HOSTILE},
        )
        register_classifier(
            registry,
            root / "src",
            "good",
            run_id="run-retrained",
            parent_version=1,
            metrics={"accuracy": 0.91},
        )
        register_classifier(registry, root / "src", "different", run_id="run-bad", parent_version=2)
        promoted, promoted_steps = _drive(
            registry, service.start(registry, "clf", 2, CANARY, actor="alice"), None, now
        )
        failing = dict(CANARY, failure_threshold=1)
        rolled_back, rolled_back_steps = _drive(
            registry, service.start(registry, "clf", 3, failing, actor="bob"), 2, now
        )
        _label_feedback(registry, registry.get_version("clf:2"))
        events = list(reversed(registry.events("clf", limit=1000)))
    assert (promoted.state, rolled_back.state) == ("succeeded", "rolled_back")
    out = root / "report.html"
    result = CliRunner().invoke(
        app, ["--home", str(home), "monitor", "report", "clf", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return {
        "page": out.read_text(encoding="utf-8"),
        "events": events,
        "rollouts": {
            promoted.id: (promoted, promoted_steps),
            rolled_back.id: (rolled_back, rolled_back_steps),
        },
    }


def _section(page: str, start: str) -> str:
    """From the heading that opens with ``start`` to the next heading."""
    begin = page.index(start)
    following = re.search(r"<h[23][ >]", page[begin + len(start) :])
    return page[begin : begin + len(start) + (following.start() if following else len(page))]


def _rows(fragment: str) -> list[list[str]]:
    """Each table row of ``fragment`` as its cells' text (tags dropped, entities read)."""
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", fragment, re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        if cells:
            rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)) for c in cells])
    return rows


def test_the_page_stays_one_self_contained_file(story: dict[str, Any]) -> None:
    page = story["page"]
    assert page.startswith("<!doctype html>")
    assert "<script" not in page.lower()
    assert "http://" not in page
    assert "https://" not in page
    assert "<svg" in page


def test_the_timeline_holds_every_version_with_its_lineage(story: dict[str, Any]) -> None:
    page = story["page"]
    versions = _section(page, "<h2>Versions of clf</h2>")
    for number, run in ((1, "run-first"), (2, "run-retrained"), (3, "run-bad")):
        assert re.search(rf"<title>clf:{number}: registered [^<]* from run {run}", versions)
    assert versions.count("<circle ") == 3  # a mark for each on the timeline
    # each named on the timeline, alone or in a run of versions registered close together
    named = set()
    for first, last in re.findall(r">v(\d+)(?:-v(\d+))?</text>", versions):
        named.update(range(int(first), int(last or first) + 1))
    assert named == {1, 2, 3}
    table = {row[0]: row for row in _rows(versions)}
    assert table["1"][3:5] == ["run-first", "-"]
    assert table["2"][3:5] == ["run-retrained", "1"]
    assert table["3"][3:5] == ["run-bad", "2"]
    assert table["2"][6] == "@production"  # where the promotion left the alias
    # the alias lane: production on 1, then on 2 from the promotion on
    assert re.search(r"<title>@production → clf:1, [^<]* \(set at registration\)", versions)
    assert re.search(
        r"<title>@production → clf:2, [^<]* to now \(promoted by rollout 1\)", versions
    )
    assert versions.count("<title>rollout ") == 2


def test_every_decision_is_shown_with_its_figures(story: dict[str, Any]) -> None:
    page = story["page"]
    decided = 0
    for rollout_id in story["rollouts"]:
        section = _section(page, f"<h3 id='rollout-{rollout_id}'>")
        shown = [row for row in _rows(section) if len(row) == DECISION_CELLS]
        for event in story["events"]:
            evidence = event.details.get("evidence") or {}
            if event.details.get("rollout") != rollout_id or "checks" not in evidence:
                continue
            for name, check in evidence["checks"].items():
                p_value = "-" if check["p_value"] is None else f"{check['p_value']:.3g}"
                figures = [
                    name,
                    check["outcome"],
                    p_value,
                    str(check["n_candidate"]),
                    str(check["n_baseline"]),
                ]
                assert any(
                    [row[5], row[6], row[9], row[10], row[11]] == figures for row in shown
                ), (figures, shown)
                decided += 1
    assert decided >= 8  # two analyses of the first rollout at least, one of the second
    section = _section(page, f"<h3 id='rollout-{max(story['rollouts'])}'>")
    failed = [row for row in _rows(section) if len(row) == DECISION_CELLS]
    assert any(row[5:7] == ["prediction_drift", "fail"] for row in failed), failed
    assert any(row[3] == "roll_back" and "rolling back" in row[4] for row in failed), failed


def test_every_step_is_shown_with_its_weight_and_requests(story: dict[str, Any]) -> None:
    page = story["page"]
    for rollout_id, (rollout, written) in story["rollouts"].items():
        section = _section(page, f"<h3 id='rollout-{rollout_id}'>")
        assert f"{rollout.state}</span></h3>" in section
        steps = [row for row in _rows(section) if len(row) == 10]
        weights = {1: "10%", 2: "50%"}
        assert [row[:2] for row in steps] == [[str(n), weights[n]] for n in sorted(written)]
        for row in steps:
            served = written[int(row[0])]
            assert row[5:7] == [str(served["baseline"]), str(served["candidate"])]
        # the weight over time, drawn: the candidate's line climbs through each step's weight
        assert "<b>candidate's weight (%)</b><svg" in section
    promoted = _section(page, "<h3 id='rollout-1'>")
    moves = [row for row in _rows(promoted) if len(row) == 6]
    assert [row[1] for row in moves] == [
        "pending",
        "pending → validating",
        "validating → progressing",
        "progressing → progressing",
        "progressing → promoting",
        "promoting → succeeded",
    ]
    assert [row[2] for row in moves][-1] == "100%"
    assert moves[0][5] == "alice"


def test_health_over_time_and_the_audit_log(story: dict[str, Any]) -> None:
    page = story["page"]
    health = _section(page, "<h2>Every version over time</h2>")
    assert "<b>accuracy from feedback</b>" in health
    assert "clf:2: 0.75 at" in health  # the stored evaluation's point
    log = _rows(_section(page, "<h2>Audit log</h2>"))
    assert len(log) == len(story["events"])
    assert ["alias.set", "1 → 2", "@production", "promoted by rollout 1"] in [
        row[1:5] for row in log
    ]


def test_hostile_text_is_escaped(story: dict[str, Any]) -> None:
    page = story["page"]
    assert html.escape(HOSTILE, quote=True) in page
    assert HOSTILE not in page
    rows = _rows(_section(page, "<h2>Versions of clf</h2>"))
    assert rows[0][9] == f"owner={HOSTILE}"  # read back as the text it was


def test_a_model_without_rollouts_or_feedback_still_tells_its_versions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Registry(Settings(home=home)) as registry:
        register_classifier(registry, tmp_path / "src", "good", name="solo")
    out = tmp_path / "solo.html"
    result = CliRunner().invoke(
        app, ["--home", str(home), "monitor", "report", "solo", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "<title>solo:1: registered" in page
    assert "solo has had no rollout" in page
    assert "no evaluations stored yet" in page
    assert "nan" not in re.sub(r"<style>.*?</style>", "", page, flags=re.S).lower()


def test_a_held_analysis_is_shown_beside_the_recorded_ones(tmp_path: Path) -> None:
    """An analysis that moved nothing leaves no event, only the rollout's latest analysis:
    the report shows it as held, with its figures."""
    home = tmp_path / "home"
    now = [utcnow()]
    with Registry(Settings(home=home)) as registry:
        register_classifier(registry, tmp_path / "src", "good", alias="production")
        register_classifier(registry, tmp_path / "src", "good")
        rollout = service.start(registry, "clf", 2, CANARY)
        controller = RolloutController(registry, "report-test", clock=lambda: now[0])
        (rollout,) = controller.tick()
        evidence = StepEvidence()
        for side, count in ((evidence.baseline, 9), (evidence.candidate, 1)):
            for _ in range(count):  # far too few to decide anything
                side.record(200, 0.001, None)
        registry.rollouts.write_evidence(rollout.id, 1, "replica-a", evidence.document())
        now[0] += timedelta(seconds=61)
        (rollout,) = controller.tick()
        assert rollout.analysis is not None
        assert rollout.analysis["next"] == "hold"
        held = rollout.analysis
    out = tmp_path / "held.html"
    result = CliRunner().invoke(
        app, ["--home", str(home), "monitor", "report", "clf@production", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    section = _section(out.read_text(encoding="utf-8"), "<h3 id='rollout-1'>")
    assert "still running (as last read)" in section
    decisions = [row for row in _rows(section) if len(row) == DECISION_CELLS]
    assert [row[3:5] for row in decisions if row[0]] == [["hold", held["reason"]]]
    shown = {row[5]: row for row in decisions}
    assert shown["error_ratio"][6] == "inconclusive"
    for name, check in held["checks"].items():
        assert shown[name][6] == check["outcome"]
        assert shown[name][10:12] == [str(check["n_candidate"]), str(check["n_baseline"])]
