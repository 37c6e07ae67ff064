"""The optimizer's choice of recipes on each kind of CPU, and how accuracy is judged.

The recipe choice runs under every CPU profile through ``SHIPYARD_CPU_FEATURES``
(``Settings.cpu_features``), whatever this machine is: an AVX2-only CPU, AVX-512 VNNI, AMX and
ARM with the dot-product extension. Accuracy is judged on held-out rows, a mean on its
one-sided confidence bound.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import shipyard
from shipyard import Registry, Settings
from shipyard.cli import app
from shipyard.errors import InvalidInputError
from shipyard.optimize import CandidateResult, gates, optimize
from shipyard.optimize.cpu import INTERESTING, PROFILES, CpuFeatures, detected_flags, features
from shipyard.optimize.recipes import Recipe, candidates
from shipyard.optimize.report import verdict

torch = pytest.importorskip("torch")

ROWS = 150
FORCE_FAIL = 1000.0
VNNI = {"avx2": False, "avx512-vnni": True, "amx": True, "arm-dotprod": True}
MLP_OPS = {"Gemm", "Relu"}
CNN_OPS = {"Conv", "Relu", "Flatten", "Gemm"}
ENCODER_OPS = {"MatMul", "Add", "Softmax", "Gather", "LayerNormalization"}


# Features: detected or pinned -------------------------------------------------------------


def test_detected_features_are_this_cpus() -> None:
    found = features()
    assert found.pinned is None
    assert found.flags == detected_flags()
    assert set(found.flags) <= set(INTERESTING)
    assert found.vnni == any(f in found.flags for f in ("avx512_vnni", "avx_vnni", "amx_int8",
                                                        "asimddp"))  # fmt: skip
    assert found.to_dict() == {"machine": found.machine, "flags": list(found.flags),
                               "vnni": found.vnni}  # fmt: skip


@pytest.mark.parametrize("profile", list(PROFILES))
def test_each_profile_pins_its_flags(profile: str) -> None:
    pinned = features(profile)
    assert pinned.flags == PROFILES[profile]
    assert pinned.vnni is VNNI[profile]
    assert pinned.pinned == profile
    assert pinned.to_dict()["pinned"] == profile
    assert ("no VNNI" in pinned.summary()) is not VNNI[profile]
    assert f"SHIPYARD_CPU_FEATURES={profile}" in pinned.summary()


def test_flags_can_be_listed_instead_of_a_profile() -> None:
    assert features(" AVX512_VNNI, avx2 ").flags == ("avx2", "avx512_vnni")
    assert features("avx2,avx512_vnni").vnni is True
    assert features("none").flags == ()
    assert features("none").vnni is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("avx9", "unknown 'avx9'"),
        ("avx2,sse9", "unknown 'sse9'"),
        (" , ", "empty"),
    ],
)
def test_a_bad_override_is_refused(value: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        features(value)
    assert f"SHIPYARD_CPU_FEATURES={value!r} is not a CPU profile or a list of flags" in (
        refused.value.message
    )
    assert message in refused.value.message
    assert "profiles are avx2, avx512-vnni, amx, arm-dotprod (or none)" in refused.value.message


# The recipe choice under each profile ------------------------------------------------------


@pytest.mark.parametrize("profile", list(PROFILES))
def test_recipes_for_an_mlp(profile: str) -> None:
    reduce_range = not VNNI[profile]
    assert candidates(MLP_OPS, False, features(profile)) == [
        Recipe("graph"),
        Recipe("dynamic-int8", per_channel=False, reduce_range=reduce_range),
        Recipe("dynamic-int8", per_channel=True, reduce_range=reduce_range),
    ]


@pytest.mark.parametrize("profile", list(PROFILES))
def test_recipes_for_a_cnn(profile: str) -> None:
    assert candidates(CNN_OPS, False, features(profile)) == [
        Recipe("graph"),
        Recipe("static-int8", per_channel=True, reduce_range=not VNNI[profile]),
    ]


@pytest.mark.parametrize("profile", list(PROFILES))
def test_recipes_for_a_text_encoder(profile: str) -> None:
    chosen = candidates(ENCODER_OPS, True, features(profile))
    assert chosen[0] == Recipe("graph", transformer_fusion=True)
    assert [r.reduce_range for r in chosen[1:]] == [not VNNI[profile]] * 2
    assert all(r.kind != "fp16" for r in chosen)  # no GPU provider: never a candidate


def test_no_int8_for_a_graph_without_matmuls_or_convolutions() -> None:
    assert candidates({"Add", "Relu"}, False, features("amx")) == [Recipe("graph")]


# Through optimize() and the CLI, pinned ----------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, digits_mlp: Any, digits: tuple[np.ndarray, np.ndarray]) -> Path:
    """A registry home with mlp:1 and ROWS rows of reference data."""
    x, _ = digits
    np.save(tmp_path / "reference.npy", x[:ROWS])
    with Registry(Settings(home=tmp_path / "home")) as registry:
        shipyard.register(
            digits_mlp, "mlp", example_input=x[:2], reference_data=tmp_path / "reference.npy",
            registry=registry,
        )  # fmt: skip
    return tmp_path / "home"


@pytest.fixture
def quick_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gates, "TIMING_BUDGET_S", 0.0)  # the speed gate is forced shut anyway


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.usefixtures("quick_timing")
def test_optimize_chooses_as_on_the_pinned_cpu(home: Path, profile: str) -> None:
    with Registry(Settings(home=home, cpu_features=profile)) as registry:
        report = optimize("mlp", min_speedup=FORCE_FAIL, registry=registry)
    assert report.cpu["flags"] == list(PROFILES[profile])
    assert report.cpu["vnni"] is VNNI[profile]
    assert report.cpu["pinned"] == profile
    first_int8 = Recipe("dynamic-int8", reduce_range=not VNNI[profile])
    assert [c.recipe for c in report.candidates][:2] == [Recipe("graph"), first_int8]
    assert report.registered is None
    assert report.verdict.startswith("nothing registered: ")


@pytest.mark.usefixtures("quick_timing")
def test_the_cli_reads_the_override(home: Path) -> None:
    runner = CliRunner()
    pinned = runner.invoke(
        app,
        ["--home", str(home), "optimize", "mlp", "--min-speedup", "1000", "--json"],
        env={"SHIPYARD_CPU_FEATURES": "avx512-vnni", "COLUMNS": "200"},
    )
    assert pinned.exit_code == 0, pinned.output
    report = json.loads(pinned.stdout)
    assert report["cpu"]["pinned"] == "avx512-vnni"
    names = [c["recipe"]["name"] for c in report["candidates"]]
    assert names[:3] == ["graph", "dynamic-int8 per-tensor", "dynamic-int8 per-channel"]

    table = runner.invoke(
        app,
        ["--home", str(home), "optimize", "mlp", "--min-speedup", "1000"],
        env={"SHIPYARD_CPU_FEATURES": "avx2", "COLUMNS": "200"},
    )
    assert table.exit_code == 0, table.output
    assert "CPU avx2 (pinned by SHIPYARD_CPU_FEATURES=avx2)" in table.stdout
    assert "dynamic-int8 per-tensor reduce-range" in table.stdout
    assert f"accuracy judged on {round(ROWS / 3)} held-out rows" in table.stdout
    assert "skipped: fp16 only pays on a GPU provider" in table.stdout
    assert "nothing registered: " in table.stdout


def test_the_cli_refuses_a_bad_override(home: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["--home", str(home), "optimize", "mlp"],
        env={"SHIPYARD_CPU_FEATURES": "avx9", "COLUMNS": "200"},
    )
    assert result.exit_code == InvalidInputError.exit_code
    assert "SHIPYARD_CPU_FEATURES='avx9' is not a CPU profile or a list of flags" in result.stderr
    assert "Traceback" not in result.output


# Held-out rows and confidence bounds -------------------------------------------------------


def test_held_out_rows_are_a_fixed_random_third() -> None:
    fitting, judging = gates.held_out(300)
    assert len(judging) == 100
    assert len(fitting) == 200
    assert set(fitting).isdisjoint(judging)
    assert sorted({*fitting, *judging}) == list(range(300))
    assert judging.tolist() != list(range(100))  # not the head of a (maybe sorted) file
    again = gates.held_out(300)
    assert (again[0] == fitting).all()
    assert (again[1] == judging).all()


def test_few_rows_both_fit_and_judge() -> None:
    fitting, judging = gates.held_out(gates.MIN_SPLIT_ROWS - 1)
    assert fitting.tolist() == judging.tolist() == list(range(gates.MIN_SPLIT_ROWS - 1))


def test_take_picks_rows_of_arrays_and_texts() -> None:
    rows = np.array([0, 2])
    assert gates.take(["a", "b", "c"], rows) == ["a", "c"]
    assert gates.take(np.arange(6).reshape(3, 2), rows).tolist() == [[0, 1], [4, 5]]


def test_margin_is_students_t_on_the_standard_error() -> None:
    from scipy.stats import t

    values = np.array([0.99, 0.995, 0.985, 0.992, 0.988])
    expected = t.ppf(0.95, 4) * values.std(ddof=1) / np.sqrt(5)
    assert gates.margin(values) == pytest.approx(expected)
    assert gates.margin(np.full(10, 0.5)) == 0.0
    assert gates.margin(np.array([0.7])) == 0.0


def _embeddings(cosines: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Unit vectors in the plane whose cosine with (1, 0) is each of ``cosines``."""
    angles = np.arccos(cosines)
    parent = np.tile([1.0, 0.0], (len(cosines), 1))
    candidate = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return {"embedding": parent}, {"embedding": candidate}


def test_a_mean_cosine_gates_on_its_lower_bound() -> None:
    steady = np.full(40, 0.992)
    parent, candidate = _embeddings(steady)
    passed = gates.compare("embedding", parent, candidate, None, 0.01)
    assert passed.passed
    assert passed.details["lower_bound"] == pytest.approx(0.992)

    # the same mean, but spread out: on 40 rows its bound falls under 0.99
    spread = np.where(np.arange(40) % 2 == 0, 0.984, 1.0)
    parent, candidate = _embeddings(spread)
    failed = gates.compare("embedding", parent, candidate, None, 0.01)
    assert failed.candidate == pytest.approx(0.992)
    assert failed.details["worst_cosine"] == pytest.approx(0.984)
    assert failed.details["lower_bound"] < 0.99
    assert not failed.passed


def test_relative_error_gates_on_its_upper_bound() -> None:
    parent = {"y": np.full((40, 1), 10.0)}
    close = {"y": np.full((40, 1), 10.05)}  # 0.5% off on every row
    assert gates.compare("regression", parent, close, None, 0.01).passed
    errors = np.where(np.arange(40) % 4 == 0, 10.36, 10.0)  # 0.9% on average, in bursts
    bursty = gates.compare("regression", parent, {"y": errors[:, None]}, None, 0.01)
    assert bursty.candidate == pytest.approx(0.009)
    assert bursty.details["upper_bound"] > 0.01
    assert not bursty.passed


def test_mae_with_labels_gates_on_the_paired_difference() -> None:
    labels = np.zeros(40)
    parent = {"y": np.full((40, 1), 1.0)}
    same = gates.compare("regression", parent, {"y": np.full((40, 1), 1.0)}, labels, 0.01)
    assert same.passed
    assert same.details["upper_bound"] == pytest.approx(1.0)
    worse = np.where(np.arange(40) % 5 == 0, 1.04, 1.0)  # 0.8% more error on average
    judged = gates.compare("regression", parent, {"y": worse[:, None]}, labels, 0.01)
    assert judged.candidate == pytest.approx(1.008)
    assert not judged.passed


# The verdict ---------------------------------------------------------------------------------


def _measured(recipe: Recipe, speedup: float, accurate: bool) -> CandidateResult:
    quality = gates.Quality("top1_agreement", 1.0, 1.0 if accurate else 0.9, accurate)
    return CandidateResult(recipe, quality=quality, speedup_typical=speedup, passed=False)


def test_the_verdict_says_when_int8_does_not_pay() -> None:
    results = [
        _measured(Recipe("graph"), 1.01, True),
        _measured(Recipe("dynamic-int8", reduce_range=True), 1.06, True),
        _measured(Recipe("dynamic-int8", per_channel=True, reduce_range=True), 0.9, True),
    ]
    said = verdict("mlp:1", results, None, 32, 1.2, CpuFeatures("x86_64", ("avx2",)))
    assert said == (
        "nothing registered: int8 does not pay on this CPU (avx2, no VNNI): the fastest int8 "
        "candidate that kept its accuracy, dynamic-int8 per-tensor reduce-range, is 1.06x at "
        "batch 32; 1.20x is needed"
    )


def test_the_verdict_names_the_closest_when_nothing_kept_its_accuracy() -> None:
    results = [_measured(Recipe("dynamic-int8"), 2.0, False)]
    said = verdict("mlp:1", results, None, 32, 1.2, CpuFeatures("x86_64", ("avx2",)))
    assert said == (
        "nothing registered: no candidate kept its accuracy (the closest, dynamic-int8 "
        "per-tensor: top1_agreement 0.9000 vs parent 1.0000)"
    )


def test_the_verdict_without_int8() -> None:
    results = [_measured(Recipe("graph"), 1.02, True)]
    said = verdict("mlp:1", results, None, 32, 1.2, CpuFeatures("x86_64", ("avx2",)))
    assert said == (
        "nothing registered: the fastest candidate that kept its accuracy, graph, is 1.02x at "
        "batch 32; 1.20x is needed"
    )


# The speed gate's timing ---------------------------------------------------------------------


class _Recorded:
    """Stands in for a Predictor in the timing loop: records the order of its calls."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def predict(self, batch: Any) -> dict[str, Any]:
        self.calls.append(self.name)
        return {}


def test_speed_is_timed_in_alternating_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gates, "TIMING_BUDGET_S", 0.0)
    calls: list[str] = []
    ratio = gates.speedup(_Recorded("p", calls), _Recorded("c", calls), [])  # type: ignore[arg-type]
    assert ratio > 0
    timed = "".join(calls[8:])  # after each side's warm-up and its one timed call
    assert calls[:8] == ["p"] * 4 + ["c"] * 4
    turns = [side for side, _ in itertools.groupby(timed)]
    assert turns[:2] == ["p", "c"]
    assert len(turns) == 2 * gates.MIN_PAIRS
    assert timed.count("p") == timed.count("c")
