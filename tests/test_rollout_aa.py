"""An A/A simulation: two identical versions, synthetic samples, an analysis every interval.
The sequential checks may look at every interval and still raise false alarms at or below
their alpha, where a fixed-sample test checked as often raises them far more often; and a
controller on a fake clock analyses once per interval and never rolls back an A/A."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from rollout_models import register_classifier
from shipyard import Registry, Settings
from shipyard.rollout import service
from shipyard.rollout.checks import Feedback, analyse
from shipyard.rollout.controller import RolloutController
from shipyard.rollout.evidence import Side, StepEvidence
from shipyard.rollout.sequential import ALPHA, Outcome, Summary
from shipyard.rollout.spec import RolloutSpec

RUNS = 300
LOOKS = 30
PER_LOOK = 40  # requests per version per interval
ACCURACY = 0.8
SPEC = RolloutSpec(strategy="ab", split=0.5, goal="accuracy", min_samples=30)  # type: ignore[arg-type]


def _slack(rate: float, runs: int) -> float:
    """Three standard errors of a rate estimated from ``runs`` runs."""
    return 3 * math.sqrt(rate * (1 - rate) / runs)


def _look(rng: np.random.Generator, side: Side, right: list[float]) -> None:
    for _ in range(PER_LOOK):
        outputs = {"label": np.asarray([rng.integers(0, 4)])}
        side.record(500 if rng.random() < 0.01 else 200, float(rng.lognormal(-7, 0.5)), outputs)
        right.append(float(rng.random() < ACCURACY))


def test_identical_versions_raise_false_alarms_at_most_alpha_while_looked_at_every_interval() -> (
    None
):
    from shipyard.registry import Signature, TensorSpec

    signature = Signature(
        inputs=(TensorSpec("x", "FP32", (-1, 3)),),
        outputs=(TensorSpec("label", "INT64", (-1,)),),
    )
    rng = np.random.default_rng(2026)
    ever: dict[str, int] = {}
    naive = 0
    for _ in range(RUNS):
        evidence = StepEvidence()
        right: tuple[list[float], list[float]] = ([], [])
        alarmed: set[str] = set()
        naive_alarm = False
        for _look_index in range(LOOKS):
            _look(rng, evidence.baseline, right[0])
            _look(rng, evidence.candidate, right[1])
            for side in (evidence.baseline, evidence.candidate):
                side.digest(signature, "classification")
            feedback = Feedback(Summary.of(right[0]), Summary.of(right[1]), "accuracy")
            for check in analyse(evidence, SPEC, "classification", 0.5, feedback):
                goal = check.details.get("goal")
                if check.decision.outcome is Outcome.FAIL or (
                    goal and check.decision.outcome is Outcome.PASS
                ):
                    alarmed.add(check.name)
            # the fixed-sample z-test of the same difference, checked at every look
            a, b = np.mean(right[0]), np.mean(right[1])
            pooled = (a + b) / 2
            z = (b - a) / math.sqrt(max(pooled * (1 - pooled), 1e-9) * 2 / len(right[0]))
            naive_alarm |= abs(z) > 1.96
        for name in alarmed:
            ever[name] = ever.get(name, 0) + 1
        naive += naive_alarm
    goal_rate = ever.get("feedback", 0) / RUNS
    assert goal_rate <= ALPHA + _slack(ALPHA, RUNS), ever
    for name in ("error_ratio", "p99_latency", "sample_ratio"):
        assert ever.get(name, 0) / RUNS <= ALPHA + _slack(ALPHA, RUNS), ever
    # the same data, a fixed-sample test at every look: far above its 5%
    assert naive / RUNS > 3 * ALPHA, naive / RUNS


def test_a_controller_on_a_fake_clock_analyses_each_interval_and_keeps_an_aa_running(
    tmp_path: Path,
) -> None:
    now = [datetime(2026, 12, 2, tzinfo=UTC)]
    settings = Settings(home=tmp_path / "home")
    rng = np.random.default_rng(3)
    with Registry(settings) as registry:
        register_classifier(registry, tmp_path / "src", "good", alias="production")
        register_classifier(registry, tmp_path / "src", "good")
        spec = {"strategy": "canary", "steps": [0.5], "interval_s": 60, "deadline_s": 3600,
                "min_samples": 50, "max_error_ratio_increase": 0.05}  # fmt: skip
        rollout = service.start(registry, "clf", 2, spec)
        controller = RolloutController(registry, "fake-clock", clock=lambda: now[0])
        (rollout,) = controller.tick()
        assert (rollout.state, rollout.weight) == ("progressing", 0.5)
        now[0] = rollout.step_started_at or now[0]
        evidence = StepEvidence()
        analysed = []
        for minute in range(1, 21):
            for side in (evidence.baseline, evidence.candidate):
                for _ in range(5):  # too few for the p99 check to decide: the step holds
                    side.record(500 if rng.random() < 0.02 else 200, 0.001, None)
            registry.rollouts.write_evidence(
                rollout.id, rollout.step, "replica-a", evidence.document()
            )
            now[0] += timedelta(seconds=30)
            controller.tick()  # half an interval: no analysis
            assert registry.rollouts.get(rollout.id).analysis == (
                analysed[-1] if analysed else None
            )
            now[0] += timedelta(seconds=30)
            (rollout,) = controller.tick()
            assert rollout.state == "progressing", rollout.analysis
            assert rollout.analysis is not None
            analysed.append(rollout.analysis)
            assert rollout.analysis["requests"]["candidate"] == 5 * minute
        assert len({a["at"] for a in analysed}) == 20  # one analysis per interval, no more
        assert rollout.failures == 0
