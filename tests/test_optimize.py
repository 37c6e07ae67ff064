"""shipyard.optimize: candidates measured against their parent, the winner registered.

Speed is noisy, so no test asserts on a speedup: ``min_speedup=0.01`` makes the speed gate
pass whatever was measured, ``min_speedup=1000`` makes it fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from helpers import version_rows
from shipyard import Registry, Settings
from shipyard.errors import (
    InvalidInputError,
    ModelNotFoundError,
    SignatureMismatchError,
    VersionNotFoundError,
)
from shipyard.optimize import CandidateResult, OptimizeReport, optimize
from shipyard.optimize import gates as gates_module
from shipyard.optimize.recipes import Recipe, smoothed
from shipyard.optimize.sensitivity import rank_matmuls
from shipyard.optimize.smoothing import smooth_matmuls

torch = pytest.importorskip("torch")

REFERENCE_ROWS = 300
FORCE_PASS = 0.01  # any measured speedup clears this speed gate
FORCE_FAIL = 1000.0  # no measured speedup clears this one


# Data and models (trained once per module) ---------------------------------------------


def _train(model: Any, x: np.ndarray, y: np.ndarray, steps: int) -> Any:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def mlp(digits: tuple[np.ndarray, np.ndarray]) -> Any:
    """A 64-256-256-10 MLP with biases (torch exports each Linear as a Gemm)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    return _train(model, *digits, steps=30)


@pytest.fixture(scope="module")
def matmul_mlp(digits: tuple[np.ndarray, np.ndarray]) -> Any:
    """The same shape without biases: torch exports each Linear as a MatMul."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 64, bias=False),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64, bias=False),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10, bias=False),
    )
    return _train(model, *digits, steps=20)


@pytest.fixture(scope="module")
def cnn(digits: tuple[np.ndarray, np.ndarray]) -> Any:
    """Two small convolutions over the 1x8x8 digit images."""
    x, y = digits
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 64, 10),
    )
    return _train(model, x.reshape(-1, 1, 8, 8), y, steps=15)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, digits: Any) -> Path:
    """digits.npy (reference rows), images.npy (the same as [N, 1, 8, 8]), their labels."""
    x, y = digits
    root = tmp_path_factory.mktemp("optimize-data")
    np.save(root / "digits.npy", x[:REFERENCE_ROWS])
    np.save(root / "images.npy", x[:REFERENCE_ROWS].reshape(-1, 1, 8, 8))
    np.save(root / "labels.npy", y[:REFERENCE_ROWS])
    (root / "labels.txt").write_text("\n".join(str(v) for v in y[:REFERENCE_ROWS]) + "\n")
    return root


@pytest.fixture
def mlp_version(registry: Registry, mlp: Any, digits: Any, data_dir: Path) -> Any:
    """mlp:1, registered with an example and 300 rows of reference data."""
    x, _ = digits
    return shipyard.register(
        mlp,
        "mlp",
        example_input=x[:2],
        reference_data=data_dir / "digits.npy",
        registry=registry,
    )


def _by_kind(report: OptimizeReport, kind: str) -> list[CandidateResult]:
    return [c for c in report.candidates if c.recipe.kind == kind]


def _op_types(model: bytes) -> list[str]:
    import onnx

    return [node.op_type for node in onnx.load_from_string(model).graph.node]


# The winner is registered with its lineage ------------------------------------------------


def test_winner_is_registered_with_its_lineage(
    registry: Registry, settings: Settings, mlp_version: Any, digits: Any
) -> None:
    report = optimize("mlp", min_speedup=FORCE_PASS, registry=registry)

    parent_files = registry.read_files(mlp_version)
    assert report.parent == "mlp:1"
    assert report.task == "classification"
    assert report.eval_rows == REFERENCE_ROWS
    assert report.typical_batch == 32
    assert report.parent_size_bytes == len(parent_files["model.onnx"])
    assert isinstance(report.cpu["flags"], list)

    # the candidates this graph (Gemm + Relu, no Conv) calls for, and fp16 said skipped
    graph = _by_kind(report, "graph")
    assert len(graph) == 1
    assert graph[0].quality is not None
    assert graph[0].quality.metric == "top1_agreement"
    assert graph[0].quality.passed
    dynamic = _by_kind(report, "dynamic-int8")
    assert {c.recipe.per_channel for c in dynamic} == {False, True}
    assert all(c.quality is not None and c.size_bytes > 0 for c in dynamic)
    assert _by_kind(report, "static-int8") == []
    (fp16,) = _by_kind(report, "fp16")
    assert fp16.reason.startswith("skipped")
    assert "GPU" in fp16.reason
    assert (fp16.passed, fp16.quality, fp16.size_bytes) == (False, None, 0)
    # with the speed gate forced open, a candidate passes exactly when its accuracy does
    for c in report.candidates:
        if c.quality is not None:
            assert c.passed is c.quality.passed
            if c.passed:
                assert c.reason == "passed"
            else:
                assert c.reason.startswith("accuracy:")

    # the registered version is the fastest candidate that passed, with its lineage
    winners = [c for c in report.candidates if c.passed]
    best = max(winners, key=lambda c: c.speedup_typical)
    new = report.registered
    assert new is not None
    assert (new.name, new.version, new.parent_version) == ("mlp", 2, mlp_version.version)
    assert new.signature == mlp_version.signature
    assert new.kind is mlp_version.kind
    assert new.tags["optimized"] == best.recipe.name
    record = new.conversion["optimization"]
    assert record["parent"] == "mlp:1"
    assert record["recipe"] == best.recipe.to_dict()
    assert record["recipe"]["name"] == best.recipe.name
    assert record["recipe"]["kind"] in ("graph", "dynamic-int8")
    assert record["cpu"] == report.cpu
    assert isinstance(record["cpu"]["flags"], list)
    assert record["size_before"] == len(parent_files["model.onnx"])
    assert record["size_after"] == best.size_bytes
    assert record["speedup_batch1"] == best.speedup_batch1
    assert record["speedup_typical"] == best.speedup_typical
    assert record["quality"]["metric"] == "top1_agreement"
    assert record["quality"]["passed"] is True
    assert best.quality is not None
    assert record["quality"] == best.quality.to_dict()
    # the parent's source-to-ONNX parity check is not this graph's; its check is `quality`
    assert "parity" not in new.conversion

    # stored: in SQLite (read back through a fresh connection) and in the artifact store
    assert version_rows(settings) == 2
    with Registry(settings) as fresh:
        stored = fresh.get_version("mlp:2")
        assert stored.parent_version == 1
        assert stored.conversion["optimization"] == record
        files = fresh.read_files(stored)
    assert len(files["model.onnx"]) == record["size_after"]
    assert files["reference.npy"] == parent_files["reference.npy"]

    # the optimized model agrees with its parent on (nearly) every digit
    x, _ = digits
    parent_top1 = shipyard.load("mlp:1", registry=registry).predict(x)["output"].argmax(1)
    child_top1 = shipyard.load("mlp:2", registry=registry).predict(x)["output"].argmax(1)
    assert float((parent_top1 == child_top1).mean()) >= 0.97

    as_dict = report.to_dict()
    assert as_dict["registered"] == "mlp:2"
    assert [c["recipe"]["name"] for c in as_dict["candidates"]] == [
        c.recipe.name for c in report.candidates
    ]


def test_speed_gate_failing_registers_nothing(
    registry: Registry, settings: Settings, mlp_version: Any
) -> None:
    # settings= instead of registry=: optimize opens (and closes) its own registry
    report = optimize("mlp:1", min_speedup=FORCE_FAIL, settings=settings)
    assert report.registered is None
    assert report.to_dict()["registered"] is None
    assert {"graph", "dynamic-int8", "fp16"} <= {c.recipe.kind for c in report.candidates}
    for c in report.candidates:
        assert not c.passed
        assert c.reason.startswith(("speed:", "accuracy:", "could not be built", "skipped")), c
        if c.quality is not None and c.quality.passed:
            assert c.reason.startswith("speed:")
            assert "needs 1000.00x" in c.reason
    assert any(c.reason.startswith("speed:") for c in report.candidates)
    assert version_rows(settings) == 1
    assert [v.version for v in registry.list_versions("mlp")] == [1]


@pytest.mark.parametrize("labels_file", ["labels.npy", "labels.txt"])
def test_labels_make_the_metric_accuracy(
    registry: Registry, mlp_version: Any, mlp: Any, digits: Any, data_dir: Path, labels_file: str
) -> None:
    report = optimize(
        "mlp", labels=data_dir / labels_file, min_speedup=FORCE_FAIL, registry=registry
    )
    x, y = digits
    with torch.no_grad():
        torch_top1 = mlp(torch.from_numpy(x[:REFERENCE_ROWS])).numpy().argmax(1)
    expected_parent = float((torch_top1 == y[:REFERENCE_ROWS]).mean())
    measured = [c for c in report.candidates if c.quality is not None]
    assert measured
    for c in measured:
        assert c.quality is not None
        assert c.quality.metric == "accuracy"
        assert 0.0 <= c.quality.parent <= 1.0
        assert 0.0 <= c.quality.candidate <= 1.0
        assert c.quality.parent == pytest.approx(expected_parent, abs=2 / REFERENCE_ROWS)
        assert 0.0 <= c.quality.details["f1_macro_parent"] <= 1.0
        assert 0.0 <= c.quality.details["f1_macro_candidate"] <= 1.0
        as_dict = c.quality.to_dict()
        assert as_dict["delta"] == pytest.approx(c.quality.candidate - c.quality.parent)
    assert report.registered is None


def test_eval_data_and_labels_replace_the_reference(
    registry: Registry, mlp_version: Any, digits: Any, tmp_path: Path
) -> None:
    x, y = digits
    np.save(tmp_path / "eval.npy", x[-40:].astype(np.float64))  # coerced to the FP32 input
    np.save(tmp_path / "truth.npy", y[-40:])
    report = optimize(
        "mlp",
        eval_data=tmp_path / "eval.npy",
        labels=tmp_path / "truth.npy",
        min_speedup=FORCE_FAIL,
        registry=registry,
    )
    assert report.eval_rows == 40
    assert report.typical_batch == 32
    assert all(c.quality.metric == "accuracy" for c in report.candidates if c.quality)


# Bad inputs: refused before anything is built or registered -------------------------------


def test_an_optimized_version_is_refused(
    registry: Registry, settings: Settings, mlp_version: Any
) -> None:
    report = optimize("mlp", min_speedup=FORCE_PASS, registry=registry)
    assert report.registered is not None
    recipe = report.registered.conversion["optimization"]["recipe"]["name"]
    for ref in ("mlp:2", "mlp"):  # "mlp" is the latest version, the optimized one
        with pytest.raises(InvalidInputError) as caught:
            optimize(ref, min_speedup=FORCE_PASS, registry=registry)
        assert caught.value.message == (
            f"mlp:2 is already optimized ({recipe}); optimize its parent mlp:1 instead"
        )
        assert "already optimized" in caught.value.message
        assert "optimize its parent mlp:1" in caught.value.message
    assert version_rows(settings) == 2


def test_eval_data_that_does_not_fit_the_signature(
    registry: Registry, settings: Settings, mlp_version: Any, tmp_path: Path
) -> None:
    narrow = tmp_path / "narrow.npy"
    np.save(narrow, np.zeros((10, 63), dtype=np.float32))
    with pytest.raises(SignatureMismatchError) as caught:
        optimize("mlp", eval_data=narrow, registry=registry)
    assert "expects shape [-1, 64], got [10, 63]" in caught.value.message

    texts = tmp_path / "texts.txt"
    texts.write_text("seven\neight\n")
    with pytest.raises(SignatureMismatchError) as caught:
        optimize("mlp", eval_data=texts, registry=registry)
    assert "this model takes numbers (input FP32 [-1, 64]), not lines of text" in (
        caught.value.message
    )

    with pytest.raises(InvalidInputError) as missing:
        optimize("mlp", eval_data=tmp_path / "absent.npy", registry=registry)
    assert missing.value.message == f"reference data file {tmp_path / 'absent.npy'} does not exist"
    assert version_rows(settings) == 1


def test_empty_eval_data_is_refused(
    registry: Registry, settings: Settings, mlp_version: Any, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 64), dtype=np.float32))
    with pytest.raises(InvalidInputError) as caught:
        optimize("mlp", eval_data=empty, min_speedup=FORCE_PASS, registry=registry)
    assert caught.value.message == "the evaluation data for mlp:1 has no rows"
    assert version_rows(settings) == 1


def test_labels_that_do_not_fit(
    registry: Registry, settings: Settings, mlp_version: Any, digits: Any, tmp_path: Path
) -> None:
    five = tmp_path / "five.npy"
    np.save(five, np.arange(5))
    with pytest.raises(InvalidInputError) as caught:
        optimize("mlp", labels=five, registry=registry)
    assert caught.value.message == (
        f"{five} has 5 labels; the evaluation data has {REFERENCE_ROWS} rows"
    )

    x, y = digits
    np.save(tmp_path / "eval.npy", x[:40])
    np.savetxt(tmp_path / "all.txt", y[:REFERENCE_ROWS], fmt="%d")
    with pytest.raises(InvalidInputError) as caught:
        optimize(
            "mlp", eval_data=tmp_path / "eval.npy", labels=tmp_path / "all.txt", registry=registry
        )
    assert f"has {REFERENCE_ROWS} labels; the evaluation data has 40 rows" in caught.value.message

    with pytest.raises(InvalidInputError) as caught:
        optimize("mlp", labels=tmp_path / "absent.npy", registry=registry)
    assert caught.value.message == f"labels file {tmp_path / 'absent.npy'} does not exist"

    words = tmp_path / "words.txt"
    words.write_text("seven\n" * REFERENCE_ROWS)
    with pytest.raises(InvalidInputError) as caught:
        optimize("mlp", labels=words, min_speedup=FORCE_PASS, registry=registry)
    assert "the labels do not fit the model's int64 predictions" in caught.value.message
    assert version_rows(settings) == 1


def test_a_model_without_reference_data_needs_eval_data(
    registry: Registry, mlp: Any, digits: Any
) -> None:
    x, _ = digits
    shipyard.register(mlp, "bare", example_input=x[:2], registry=registry)
    with pytest.raises(InvalidInputError) as caught:
        optimize("bare", registry=registry)
    assert caught.value.message.startswith(
        "bare:1 has no reference data to evaluate candidates on; pass --eval-data"
    )


@pytest.mark.parametrize("tolerance", [0.0, 1.0, 1.5, -0.1, float("nan")])
def test_tolerance_must_be_between_0_and_1(
    registry: Registry, mlp_version: Any, tolerance: float
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        optimize("mlp", tolerance=tolerance, registry=registry)
    assert caught.value.message == (
        f"tolerance must be between 0 and 1 (exclusive), got {tolerance}"
    )


@pytest.mark.parametrize("min_speedup", [0.0, -1.0])
def test_min_speedup_must_be_positive(
    registry: Registry, mlp_version: Any, min_speedup: float
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        optimize("mlp", min_speedup=min_speedup, registry=registry)
    assert caught.value.message == f"min_speedup must be positive, got {min_speedup}"


def test_unknown_model_and_version(registry: Registry, mlp_version: Any) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        optimize("ghost", registry=registry)
    assert "no model named 'ghost'" in caught.value.message
    with pytest.raises(VersionNotFoundError) as missing:
        optimize("mlp:7", registry=registry)
    assert "model 'mlp' has no version 7" in missing.value.message


# Convolutions: static int8, calibrated on the reference data -------------------------------


def test_cnn_gets_a_calibrated_static_int8_candidate(
    registry: Registry, cnn: Any, digits: Any, data_dir: Path
) -> None:
    x, _ = digits
    images = x.reshape(-1, 1, 8, 8)
    parent = shipyard.register(
        cnn,
        "cnn",
        example_input=images[:2],
        reference_data=data_dir / "images.npy",
        registry=registry,
    )
    assert parent.signature.inputs[0].shape == (-1, 1, 8, 8)
    assert "Conv" in _op_types(registry.read_files(parent)["model.onnx"])

    report = optimize("cnn", min_speedup=FORCE_PASS, registry=registry)
    assert {c.recipe.kind for c in report.candidates} == {"graph", "static-int8", "fp16"}
    static = _by_kind(report, "static-int8")
    assert static[0].recipe.per_channel is True
    for c in static:
        assert not c.reason.startswith("could not be built"), c.reason
        assert c.quality is not None
        assert c.quality.metric == "top1_agreement"
        assert 0.0 <= c.quality.candidate <= 1.0
        assert c.size_bytes > 0
    assert report.registered is not None  # at least the lossless graph candidate passes
    assert report.registered.parent_version == 1
    out = shipyard.load("cnn:2", registry=registry).predict(images[:5])["output"]
    assert out.shape == (5, 10)


# The sensitivity ranking --------------------------------------------------------------------


def _matmuls_with_weights(model: bytes) -> set[str]:
    import onnx

    graph = onnx.load_from_string(model).graph
    weights = {init.name for init in graph.initializer}
    return {n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights}


def _check_ranking(ranking: list[tuple[str, float]], model: bytes) -> None:
    assert {name for name, _ in ranking} == _matmuls_with_weights(model)
    assert len(ranking) == len(_matmuls_with_weights(model))
    errors = [error for _, error in ranking]
    assert errors == sorted(errors, reverse=True)
    assert all(np.isfinite(e) and e >= 0 for e in errors)
    assert errors[0] > 0


def test_rank_matmuls_skips_gemm(registry: Registry, mlp_version: Any, digits: Any) -> None:
    """torch exports Linear with a bias as Gemm: no MatMul, so nothing to rank."""
    model = registry.read_files(mlp_version)["model.onnx"]
    assert set(_op_types(model)) == {"Gemm", "Relu"}
    x, _ = digits
    assert rank_matmuls(model, {"input": x[:64]}, per_channel=False, reduce_range=False) == []


def test_rank_matmuls_on_matmul_graph(registry: Registry, matmul_mlp: Any, digits: Any) -> None:
    x, _ = digits
    version = shipyard.register(matmul_mlp, "plain", example_input=x[:2], registry=registry)
    model = registry.read_files(version)["model.onnx"]
    assert _op_types(model).count("MatMul") == 3
    name = version.signature.inputs[0].name
    for per_channel in (False, True):
        for reduce_range in (False, True):
            ranking = rank_matmuls(
                model, {name: x[:64]}, per_channel=per_channel, reduce_range=reduce_range
            )
            _check_ranking(ranking, model)
    again = rank_matmuls(model, {name: x[:64]}, per_channel=False, reduce_range=False)
    assert again == rank_matmuls(model, {name: x[:64]}, per_channel=False, reduce_range=False)
    assert registry.read_files(version)["model.onnx"] == model


def _run(model: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    from shipyard.runtime.session import make_session

    return list(make_session(model).run(None, feeds))


def test_smoothing_keeps_the_float_answers(
    registry: Registry, matmul_mlp: Any, digits: Any
) -> None:
    """x @ W == (x / s) @ (diag(s) W): the smoothed float graph answers as the parent does,
    its weights change, and each MatMul's activation gets one Mul (the first reads the graph
    input itself)."""
    x, _ = digits
    version = shipyard.register(matmul_mlp, "plain", example_input=x[:2], registry=registry)
    model = registry.read_files(version)["model.onnx"]
    feeds = {version.signature.inputs[0].name: x[:64]}
    for strength in (0.5, 0.75):
        result = smooth_matmuls(model, feeds, strength)
        assert result != model
        assert _op_types(result).count("Mul") == 3
        assert _op_types(result).count("MatMul") == 3
        (want,) = _run(model, dict.fromkeys(feeds, x))
        (got,) = _run(result, dict.fromkeys(feeds, x))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_smoothing_shares_one_scale_per_activation() -> None:
    """Two MatMuls reading the same activation (query and key, say) get one Mul between them,
    so that activation is still quantized once; a graph with no constant-weight MatMul is
    returned as it was."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(8, 4)).astype(np.float32)
    w2 = rng.normal(size=(8, 4)).astype(np.float32) * 10
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["h"], name="relu"),
            helper.make_node("MatMul", ["h", "w1"], ["a"], name="left"),
            helper.make_node("MatMul", ["h", "w2"], ["b"], name="right"),
            helper.make_node("Add", ["a", "b"], ["y"], name="sum"),
        ],
        "shared",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    raw = model.SerializeToString()
    x = (rng.normal(size=(32, 8)) * np.array([1, 1, 1, 50, 1, 1, 1, 1])).astype(np.float32)
    result = smooth_matmuls(raw, {"x": x}, 0.5)
    assert _op_types(result).count("Mul") == 1
    np.testing.assert_allclose(_run(result, {"x": x})[0], _run(raw, {"x": x})[0], rtol=1e-4,
                               atol=1e-3)  # fmt: skip
    # the activation's outlier channel is scaled down, the matching weight rows up
    smoothed_graph = onnx.load_from_string(result).graph
    inits = {i.name: numpy_helper.to_array(i) for i in smoothed_graph.initializer}
    (inverse,) = (v for k, v in inits.items() if "__smoothing_" in k)
    assert int(np.argmin(inverse)) == 3
    np.testing.assert_allclose(inits["w1"] * inverse[:, None], w1, rtol=1e-5)

    no_weights = helper.make_model(
        helper.make_graph(
            [helper.make_node("MatMul", ["x", "z"], ["y"], name="free")],
            "free",
            [
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2]),
                helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 2]),
            ],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    ).SerializeToString()
    ones = np.ones((2, 2), np.float32)
    assert smooth_matmuls(no_weights, {"x": ones, "z": ones}, 0.5) == no_weights


def test_smoothing_is_a_dynamic_int8_fallback() -> None:
    dynamic = Recipe("dynamic-int8", per_channel=True)
    assert [r.smoothing for r in smoothed(dynamic)] == [0.5, 0.75]
    assert smoothed(dynamic)[1].name == "dynamic-int8 per-channel smoothed 0.75"
    assert smoothed(Recipe("static-int8", per_channel=True)) == []
    assert smoothed(Recipe("graph")) == []
    assert smoothed(dynamic.with_changes(smoothing=0.5)) == []


# The real all-MiniLM-L6-v2 (slow) -------------------------------------------------------------

SUBJECTS = [
    "The cat",
    "A young engineer",
    "Our quarterly revenue",
    "The night train to Vienna",
    "My grandmother",
    "The database migration",
    "A heavy thunderstorm",
    "The football team",
    "This lentil soup recipe",
    "The new phone",
]
PREDICATES = [
    "was delayed by two hours this morning.",
    "surprised everyone at the annual meeting.",
    "needs a careful review before Friday.",
    "smells wonderful after an hour in the oven.",
    "broke every record we had.",
    "is not what the documentation promised.",
]
SENTENCES = [f"{s} {p}" for s in SUBJECTS for p in PREDICATES]


@pytest.fixture(scope="module")
def minilm_home(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Iterator[Registry]:
    """A registry of its own with MiniLM as minilm:1 (optimize adds versions to it)."""
    root = tmp_path_factory.mktemp("optimize-minilm")
    reference = root / "sentences.txt"
    reference.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    reg = Registry(Settings(home=root / "home"))
    try:
        shipyard.register(minilm_dir, "minilm", reference_data=reference, registry=reg)
        yield reg
    finally:
        reg.close()


def _short_timing() -> pytest.MonkeyPatch:
    """Time each call a handful of times instead of for 0.6 s: the speed gate is forced here
    anyway, and MiniLM's dozen candidates would otherwise spend minutes being timed."""
    patch = pytest.MonkeyPatch()
    patch.setattr(gates_module, "TIMING_BUDGET_S", 0.0)
    return patch


@pytest.fixture(scope="module")
def minilm_report(minilm_home: Registry) -> Iterator[OptimizeReport]:
    patch = _short_timing()
    try:
        yield optimize("minilm:1", min_speedup=FORCE_PASS, registry=minilm_home)
    finally:
        patch.undo()


@pytest.mark.slow
def test_minilm_dynamic_int8_passes(minilm_home: Registry, minilm_report: OptimizeReport) -> None:
    report = minilm_report
    assert report.task == "embedding"
    assert report.eval_rows == len(SENTENCES)
    (graph,) = _by_kind(report, "graph")
    assert graph.recipe.transformer_fusion is True
    assert graph.recipe.name == "graph fused"
    assert graph.facts["fusions"]
    passed_int8 = [c for c in _by_kind(report, "dynamic-int8") if c.passed]
    assert passed_int8
    for c in passed_int8:
        assert c.quality is not None
        assert c.quality.metric == "mean_cosine"
        assert c.quality.candidate >= 0.99
        assert c.quality.details["worst_cosine"] >= 0.97
        assert c.size_bytes < report.parent_size_bytes / 2

    new = report.registered
    assert new is not None
    assert (new.version, new.parent_version) == (2, 1)
    assert new.kind.value == "text-embedding"
    assert new.conversion["optimization"]["quality"]["metric"] == "mean_cosine"
    texts = SENTENCES[:4]
    parent = shipyard.load("minilm:1", registry=minilm_home).predict(texts)
    child = shipyard.load("minilm:2", registry=minilm_home).predict(texts)
    (a,) = parent.values()
    (b,) = child.values()
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert float(cosine.min()) >= 0.97


@pytest.mark.slow
def test_minilm_strict_tolerance_searches_exclusions(
    minilm_home: Registry, minilm_report: OptimizeReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gates_module, "TIMING_BUDGET_S", 0.0)
    before = [v.version for v in minilm_home.list_versions("minilm")]
    # mean cosine >= 0.9995 and worst >= 0.9985: beyond int8 and smoothing alone
    report = optimize("minilm:1", tolerance=0.0005, min_speedup=FORCE_PASS, registry=minilm_home)

    matmuls = _matmuls_with_weights(
        minilm_home.read_files(minilm_home.get_version("minilm:1"))["model.onnx"]
    )
    excluded = [c for c in report.candidates if c.recipe.excluded_nodes]
    assert excluded
    searches: dict[Any, list[CandidateResult]] = {}
    for c in excluded:
        searches.setdefault(c.recipe.with_changes(excluded_nodes=()), []).append(c)
    for base, attempts in searches.items():
        assert base.kind == "dynamic-int8"
        # one more node kept in float each time, the most sensitive first
        assert [len(c.recipe.excluded_nodes) for c in attempts] == list(range(1, len(attempts) + 1))
        longest = attempts[-1].recipe.excluded_nodes
        assert all(c.recipe.excluded_nodes == longest[: len(c.recipe.excluded_nodes)]
                   for c in attempts)  # fmt: skip
    for c in excluded:
        count = len(c.recipe.excluded_nodes)
        assert "sensitivity" in c.facts
        ranked = c.facts["sensitivity"]
        assert [name for name, _ in ranked] == list(c.recipe.excluded_nodes)
        assert [e for _, e in ranked] == sorted((e for _, e in ranked), reverse=True)
        assert set(c.recipe.excluded_nodes) <= matmuls
        assert c.recipe.name.endswith(f"{count} nodes in float")
        assert c.quality is not None
    # the plain int8 candidates and their fallbacks, smoothing included, failed the strict gate
    plain = [c for c in _by_kind(report, "dynamic-int8") if not c.recipe.excluded_nodes]
    assert plain
    assert all(c.quality is not None and not c.quality.passed for c in plain)
    assert {c.recipe.smoothing for c in plain} == {0.0, 0.5, 0.75}
    order = [c.recipe for c in report.candidates]
    first_exclusion = min(order.index(c.recipe) for c in excluded)
    assert all(order.index(c.recipe) < first_exclusion for c in plain if c.recipe.smoothing)
    after = [v.version for v in minilm_home.list_versions("minilm")]
    if report.registered is None:
        assert after == before
    else:
        assert after == [*before, max(before) + 1]
        assert report.registered.parent_version == 1


@pytest.mark.slow
def test_rank_matmuls_on_minilm(minilm_home: Registry) -> None:
    version = minilm_home.get_version("minilm:1")
    model = minilm_home.read_files(version)["model.onnx"]
    feeds = shipyard.load("minilm:1", registry=minilm_home).graph_feeds(SENTENCES[:16])
    ranking = rank_matmuls(model, feeds, per_channel=False, reduce_range=False)
    _check_ranking(ranking, model)
    assert len(ranking) == 36  # 6 layers x (q, k, v, attention output, intermediate, output)
