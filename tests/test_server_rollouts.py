"""Rollouts driven by a real server on real traffic: a good candidate promoted through every
step, bad ones rolled back on the evidence that shows them bad, and no request failing
because of a weight change, a promotion or a rollback."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rollout_models import body, expected_labels, register_classifier
from server_helpers import client, running_server, server_settings, wait_for
from shipyard import Registry
from shipyard.rollout import service

FAST = {
    "interval_s": 1, "deadline_s": 30, "min_samples": 40, "failure_threshold": 2,
    "steps": [0.25, 0.5],
}  # fmt: skip
ROWS = 4
BAD_FIRST_FEATURE = 12.0  # the failing candidate's lookup is out of bounds from 10 on


@dataclass
class Load:
    """A bounded load loop: requests until stopped, every answer checked and counted."""

    url: str
    bad_share: float = 0.0  # requests the failing candidate cannot answer
    feedback: bool = False  # send each answered request's true labels
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (version, status)
    wrong: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = np.random.default_rng(7)
        labels: list[dict[str, Any]] = []
        with client(self.url) as http:
            while not self.stop.is_set():
                if len(labels) >= 50:
                    sent = http.post("/v2/models/clf/feedback", json={"labels": labels})
                    assert sent.status_code == 200, sent.text
                    labels = []
                rows = rng.normal(size=(ROWS, 3)).astype(np.float32)
                if rng.random() < self.bad_share:
                    rows[0, 0] = BAD_FIRST_FEATURE
                response = http.post("/v2/models/clf/infer", content=json.dumps(body(rows)))
                version = response.headers.get("x-model-version", "?")
                self.statuses[(version, response.status_code)] += 1
                if self.feedback and response.status_code == 200:
                    truth = expected_labels(rows).tolist()
                    labels.append({"request_id": response.headers["x-request-id"], "label": truth})
                if response.status_code == 200:
                    label = next(o for o in response.json()["outputs"] if o["name"] == "label")
                    if version == "1" and label["data"] != expected_labels(rows).tolist():
                        self.wrong.append(response.text)

    def failures(self) -> dict[tuple[str, int], int]:
        return {key: n for key, n in self.statuses.items() if key[1] != 200}


@contextlib.contextmanager
def serving(
    tmp_path: Path,
    candidate: str,
    bad_share: float = 0.0,
    baseline: str = "good",
    feedback: bool = False,
    bake_s: float = 1.0,
) -> Iterator[tuple[Registry, Load]]:
    monitor = {"enabled": feedback, "log_rate": 10_000.0, "flush_seconds": 1.0}
    settings = server_settings(
        tmp_path / "home", reload_interval_s=0.2, rollout_bake_s=bake_s, monitor=monitor
    )
    with Registry(settings) as registry:
        register_classifier(registry, tmp_path / "src", baseline, alias="production")
        register_classifier(registry, tmp_path / "src", candidate)
        with running_server(settings, models=["clf"]) as server:
            load = Load(server.url, bad_share=bad_share, feedback=feedback)
            thread = threading.Thread(target=load.run, daemon=True)
            thread.start()
            try:
                yield registry, load
            finally:
                load.stop.set()
                thread.join(30)


def finished(registry: Registry, rollout_id: int) -> Any:
    rollout = registry.rollouts.get(rollout_id)
    return rollout if rollout.finished_at is not None else None


def states(registry: Registry) -> list[str]:
    return [e.kind for e in reversed(registry.events("clf")) if e.kind.startswith("rollout.")]


def test_a_good_candidate_is_promoted_through_every_step(tmp_path: Path) -> None:
    with serving(tmp_path, "good") as (registry, load):
        rollout = service.start(registry, "clf", 2, FAST)
        done = wait_for(lambda: finished(registry, rollout.id), "the rollout to finish", 90)
        assert done.state == "succeeded", json.dumps(done.analysis)
        assert registry.get_version("clf@production").version == 2
        wait_for(lambda: load.statuses[("2", 200)] > 0 and sum(load.statuses.values()) > 0, "v2")
        assert states(registry) == [
            "rollout.pending", "rollout.validating", "rollout.progressing", "rollout.progressing",
            "rollout.promoting", "rollout.succeeded",
        ]  # fmt: skip
        weights = [
            e.details["weight"]
            for e in reversed(registry.events("clf"))
            if e.kind == "rollout.progressing"
        ]
        assert weights == [0.25, 0.5]
        with client(load.url) as http:
            page = wait_for(
                lambda: _metrics_once(http, 'phase="succeeded"} 1.0'), "the metrics to follow"
            )
        assert 'shipyard_rollouts_promoted_total{model="clf"} 1.0' in page
        assert 'shipyard_rollout_weight{model="clf",version="2"} 1.0' in page
        assert 'shipyard_rollout_check{check="error_ratio",model="clf",result="pass"} 1.0' in page
    assert load.failures() == {}
    assert load.wrong == []


def test_the_old_version_bakes_loaded_and_an_undo_switches_back_at_once(tmp_path: Path) -> None:
    with serving(tmp_path, "good", bake_s=120.0) as (registry, load):
        rollout = service.start(registry, "clf", 2, FAST | {"steps": [0.5]})
        done = wait_for(lambda: finished(registry, rollout.id), "the rollout to finish", 90)
        assert done.state == "succeeded", json.dumps(done.analysis)
        with client(load.url) as http:

            def versions() -> tuple[int | None, list[int]]:
                (deployment,) = http.get("/api/deployments").json()
                return deployment["current_version"], [v["version"] for v in deployment["versions"]]

            wait_for(lambda: versions()[0] == 2, "the promotion to be followed")
            assert versions() == (2, [1, 2])  # the old version bakes, loaded and watched
            undone = service.undo(registry, "clf")
            assert (undone.from_version, undone.to_version) == (2, 1)
            wait_for(lambda: versions()[0] == 1, "the undo to be followed")
            loads = [e for e in registry.events("clf") if e.kind == "deployment.load_failed"]
            assert loads == []

        def switches() -> list[tuple[int | None, int | None]] | None:
            # The server records a switch just after making it: the event may trail the
            # answer that showed the undo.
            events = reversed(registry.events("clf"))
            moves = [
                (e.from_version, e.to_version) for e in events if e.kind == "deployment.switched"
            ]
            return moves if len(moves) >= 2 else None

        assert wait_for(switches, "both switches to be recorded") == [(1, 2), (2, 1)]
        counted = sum(load.statuses.values())
        wait_for(lambda: sum(load.statuses.values()) > counted + 20, "traffic after the undo")
    assert load.failures() == {}


def _metrics_once(http: Any, wanted: str) -> str | None:
    page = http.get("/metrics").text
    return page if wanted in page else None


def test_a_candidate_that_errors_on_some_inputs_is_rolled_back(tmp_path: Path) -> None:
    with serving(tmp_path, "failing", bad_share=0.2) as (registry, load):
        rollout = service.start(registry, "clf", 2, FAST)
        done = wait_for(lambda: finished(registry, rollout.id), "the rollout to finish", 90)
        assert done.state == "rolled_back"
        assert "error_ratio" in done.analysis["reason"]
        assert done.analysis["checks"]["error_ratio"]["outcome"] == "fail"
        assert registry.get_version("clf@production").version == 1
    failures = load.failures()
    assert set(failures) <= {("2", 500)}  # the candidate's own errors, nothing else
    assert failures


def test_a_candidate_that_answers_one_class_is_rolled_back_on_prediction_drift(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, "constant") as (registry, load):
        rollout = service.start(registry, "clf", 2, FAST)
        done = wait_for(lambda: finished(registry, rollout.id), "the rollout to finish", 90)
        assert done.state == "rolled_back"
        drift = done.analysis["checks"]["prediction_drift"]
        assert drift["outcome"] == "fail"
        assert set(drift["candidate_classes"]) == {"2"}
        assert registry.get_version("clf@production").version == 1
    assert load.failures() == {}


def test_a_slow_candidate_is_rolled_back_on_its_p99(tmp_path: Path) -> None:
    with serving(tmp_path, "slow") as (registry, load):
        rollout = service.start(registry, "clf", 2, FAST | {"max_p99_increase": 0.5})
        done = wait_for(lambda: finished(registry, rollout.id), "the rollout to finish", 90)
        assert done.state == "rolled_back"
        latency = done.analysis["checks"]["p99_latency"]
        assert latency["outcome"] == "fail"
        assert latency["candidate_p99_ms"] > latency["baseline_p99_ms"]
        assert registry.get_version("clf@production").version == 1
    assert load.failures() == {}


SHADOW = FAST | {"strategy": "shadow", "mirror": 1.0, "min_samples": 100}


def test_shadow_reports_the_disagreement_of_a_different_model(tmp_path: Path) -> None:
    with serving(tmp_path, "different") as (registry, load):
        rollout = service.start(registry, "clf", 2, SHADOW)
        done = wait_for(lambda: finished(registry, rollout.id), "the rollout to finish", 90)
        assert done.state == "rolled_back"
        agreement = done.analysis["checks"]["agreement"]
        assert (agreement["outcome"], agreement["measure"]) == ("fail", "agreement")
        assert agreement["estimate"] < 0.5
        assert agreement["n_candidate"] >= 100
    assert set(load.statuses) == {("1", 200)}  # the shadow answered nobody
    assert load.wrong == []


def test_shadow_reports_no_disagreement_for_an_identical_model(tmp_path: Path) -> None:
    with serving(tmp_path, "good") as (registry, load):
        rollout = service.start(registry, "clf", 2, SHADOW | {"slice_feature": "x[0]"})
        done = wait_for(lambda: finished(registry, rollout.id), "the rollout to finish", 90)
        assert done.state == "succeeded"
        agreement = done.analysis["checks"]["agreement"]
        assert (agreement["outcome"], agreement["estimate"]) == ("pass", 1.0)
        assert agreement["slices"]  # broken down by the first feature's values
        assert all(part["mean"] == 1.0 for part in agreement["slices"].values())
        assert registry.get_version("clf@production").version == 1  # a shadow only reports
    assert set(load.statuses) == {("1", 200)}


def test_shadow_with_labels_runs_mcnemars_test_on_the_mirrored_requests(tmp_path: Path) -> None:
    # agreement and the class mix set aside: the labels alone must show the candidate worse
    lenient = {"min_agreement": 0.01, "max_prediction_drift": 1.0, "failure_threshold": 1}
    shadow = SHADOW | lenient | {"goal": "accuracy", "min_samples": 60}
    with serving(tmp_path, "different", feedback=True) as (registry, load):
        rollout = service.start(registry, "clf", 2, shadow)
        done = wait_for(lambda: finished(registry, rollout.id), "the rollout to finish", 90)
        assert done.state == "rolled_back", json.dumps(done.analysis)
        mcnemar = done.analysis["checks"]["mcnemar"]
        assert mcnemar["outcome"] == "fail"
        assert mcnemar["baseline_only_right"] > mcnemar["candidate_only_right"]
        assert mcnemar["exact_p_value"] < 0.001
        assert "mcnemar" in done.analysis["reason"]
    assert set(load.statuses) == {("1", 200)}


def test_blue_green_takes_all_traffic_at_once_after_its_mirrored_checks(tmp_path: Path) -> None:
    with serving(tmp_path, "good") as (registry, load):
        rollout = service.start(registry, "clf", 2, SHADOW | {"strategy": "blue-green"})
        done = wait_for(lambda: finished(registry, rollout.id), "the rollout to finish", 90)
        assert done.state == "succeeded", json.dumps(done.analysis)
        assert registry.get_version("clf@production").version == 2
        weights = [e.details["weight"] for e in registry.events("clf") if "weight" in e.details]
        assert set(weights) == {0.0, 1.0}  # never a share in between
        wait_for(lambda: load.statuses[("2", 200)] > 20, "the candidate to take the traffic")
    assert load.failures() == {}


def test_an_ab_test_with_labels_picks_the_better_model(tmp_path: Path) -> None:
    ab = FAST | {"strategy": "ab", "split": 0.5, "goal": "accuracy", "deadline_s": 60}
    with serving(tmp_path, "good", baseline="different", feedback=True) as (registry, load):
        rollout = service.start(registry, "clf", 2, ab)
        done = wait_for(lambda: finished(registry, rollout.id), "the rollout to finish", 120)
        assert done.state == "succeeded", json.dumps(done.analysis)
        feedback = done.analysis["checks"]["feedback"]
        assert (feedback["outcome"], feedback["goal"], feedback["metric"]) == (
            "pass",
            True,
            "accuracy",
        )
        assert feedback["candidate"] == 1.0
        assert feedback["baseline"] < 0.5
        assert registry.get_version("clf@production").version == 2
    assert load.failures() == {}
