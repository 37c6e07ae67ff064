"""Paired answers compared by the model's task, and the checks that judge them."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.registry import Signature, TensorSpec
from shipyard.rollout.checks import analyse, paired_check
from shipyard.rollout.evidence import Paired, StepEvidence
from shipyard.rollout.spec import RolloutSpec

SPEC = RolloutSpec(strategy="shadow", min_samples=30)  # type: ignore[arg-type]


def _signature(datatype: str, width: int) -> Signature:
    return Signature(
        inputs=(TensorSpec("x", "FP32", (-1, 3)),),
        outputs=(TensorSpec("y", datatype, (-1, width)),),
    )


def _paired(task: str, signature: Signature, baseline: np.ndarray, candidate: np.ndarray) -> Paired:
    paired = Paired()
    for first, second in zip(baseline, candidate, strict=True):
        paired.compare(signature, task, {"y": first[None]}, {"y": second[None]})
    return paired


@pytest.mark.parametrize(("noise", "outcome"), [(0.0, "pass"), (3.0, "fail")])
def test_embeddings_are_compared_by_cosine(noise: float, outcome: str) -> None:
    rng = np.random.default_rng(0)
    ours = rng.normal(size=(200, 8))
    theirs = ours + noise * rng.normal(size=ours.shape)
    paired = _paired("embedding", _signature("FP32", 8), ours, theirs)
    assert paired.measure == "cosine"
    check = paired_check(paired.measure, paired.overall, paired.slices, SPEC)
    assert check.decision.outcome.value == outcome
    if noise == 0:
        assert check.decision.estimate == pytest.approx(1.0)
    else:
        assert check.decision.estimate < SPEC.min_cosine


@pytest.mark.parametrize(("scale", "outcome"), [(1.01, "pass"), (1.5, "fail")])
def test_regressors_are_compared_by_relative_error(scale: float, outcome: str) -> None:
    rng = np.random.default_rng(1)
    ours = rng.uniform(1, 10, size=(200, 1))
    paired = _paired("regression", _signature("FP32", 1), ours, ours * scale)
    assert paired.measure == "relative_error"
    check = paired_check(paired.measure, paired.overall, paired.slices, SPEC)
    assert check.decision.estimate == pytest.approx(scale - 1)
    assert check.decision.outcome.value == outcome


def test_pairs_merge_across_replicas_by_addition() -> None:
    rng = np.random.default_rng(2)
    ours = rng.uniform(1, 10, size=(100, 1))
    signature = _signature("FP32", 1)
    whole = _paired("regression", signature, ours, ours * 1.1)
    halves = [_paired("regression", signature, ours[:50], ours[:50] * 1.1),
              _paired("regression", signature, ours[50:], ours[50:] * 1.1)]  # fmt: skip
    documents = [StepEvidence(paired=half).document() for half in halves]
    merged = StepEvidence.merge(documents).paired
    assert merged.overall.n == whole.overall.n == 100
    assert merged.overall.mean == pytest.approx(whole.overall.mean)
    assert merged.overall.variance == pytest.approx(whole.overall.variance)


@pytest.mark.parametrize(("switch", "judged"), [(True, "fail"), (False, None)])
def test_prediction_drift_can_be_left_out_for_a_candidate_meant_to_answer_differently(
    switch: bool, judged: str | None
) -> None:
    signature = Signature(
        inputs=(TensorSpec("x", "FP32", (-1, 3)),),
        outputs=(TensorSpec("label", "INT64", (-1,)),),
    )
    rng = np.random.default_rng(5)
    evidence = StepEvidence()
    for _ in range(400):
        evidence.baseline.record(200, 0.001, {"label": np.asarray([rng.integers(0, 4)])})
        evidence.candidate.record(200, 0.001, {"label": np.asarray([2])})
    for side in (evidence.baseline, evidence.candidate):
        side.digest(signature, "classification")
    spec = RolloutSpec(min_samples=30, prediction_drift=switch)
    checks = {c.name: c for c in analyse(evidence, spec, "classification", 0.5)}
    drift = checks.get("prediction_drift")
    assert (drift.decision.outcome.value if drift else None) == judged
    assert "error_ratio" in checks
