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
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (version, status)
    wrong: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = np.random.default_rng(7)
        with client(self.url) as http:
            while not self.stop.is_set():
                rows = rng.normal(size=(ROWS, 3)).astype(np.float32)
                if rng.random() < self.bad_share:
                    rows[0, 0] = BAD_FIRST_FEATURE
                response = http.post("/v2/models/clf/infer", content=json.dumps(body(rows)))
                version = response.headers.get("x-model-version", "?")
                self.statuses[(version, response.status_code)] += 1
                if response.status_code == 200:
                    label = next(o for o in response.json()["outputs"] if o["name"] == "label")
                    if version == "1" and label["data"] != expected_labels(rows).tolist():
                        self.wrong.append(response.text)

    def failures(self) -> dict[tuple[str, int], int]:
        return {key: n for key, n in self.statuses.items() if key[1] != 200}


@contextlib.contextmanager
def serving(
    tmp_path: Path, candidate: str, bad_share: float = 0.0
) -> Iterator[tuple[Registry, Load]]:
    settings = server_settings(
        tmp_path / "home", reload_interval_s=0.2, rollout_bake_s=1.0, monitor={"enabled": False}
    )
    with Registry(settings) as registry:
        register_classifier(registry, tmp_path / "src", "good", alias="production")
        register_classifier(registry, tmp_path / "src", candidate)
        with running_server(settings, models=["clf"]) as server:
            load = Load(server.url, bad_share=bad_share)
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
        _debug(registry)
        assert done.state == "succeeded", done.analysis
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
    assert load.failures() == {}
    assert load.wrong == []


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


def _debug(registry: Registry) -> None:
    for e in reversed(registry.events("clf")):
        print(e.kind, e.reason, json.dumps(e.details, default=str)[:1500])
