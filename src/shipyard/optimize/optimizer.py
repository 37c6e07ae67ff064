"""``shipyard.optimize``: make a registered version faster, prove it here, register the winner.

Every candidate is measured on this machine against its parent, with the same thread
budget: accuracy on the evaluation data (the version's reference data by default) and speed
at batch 1 and at a typical batch. A third of the evaluation rows is held out: calibration,
smoothing and the sensitivity ranking fit on the others, and every accuracy verdict is on the
held-out rows (see ``gates``). A quantized candidate that fails the accuracy gate gets
fallbacks: per-channel toggled, reduce_range toggled, the activations smoothed into the
weights, then the most sensitive MatMuls kept in float, one more at a time. The fastest
candidate that passes both gates becomes the next version of the model, its lineage naming
the parent and the recipe; if none passes, nothing is registered and the report says why,
for each candidate and as a whole (int8 that does not pay on this CPU is said so).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import InvalidInputError, ShipyardError
from shipyard.formats.reference import read_reference, stored_reference, validate_reference
from shipyard.optimize import cpu, gates, recipes, sensitivity, transform
from shipyard.optimize.recipes import Recipe
from shipyard.optimize.report import CandidateResult, OptimizeReport, closeness, describe, verdict
from shipyard.registry import (
    ModelKind,
    ModelRef,
    ModelVersion,
    NewVersion,
    ProgressFactory,
    Registry,
    quiet_progress,
    registry_from,
)
from shipyard.runtime.loading import load_version
from shipyard.runtime.predictor import MODEL_FILE, Predictor
from shipyard.runtime.session import Threading
from shipyard.runtime.text import TextEmbedder  # noqa: F401  (text models' pre-processing)
from shipyard.settings import Settings

TYPICAL_BATCH = 32
MAX_EXCLUDED = 8
SENSITIVITY_ROWS = 64


def optimize(
    ref: str | ModelRef,
    *,
    eval_data: str | Path | None = None,
    labels: str | Path | None = None,
    tolerance: float = 0.01,
    min_speedup: float = 1.2,
    registry: Registry | None = None,
    settings: Settings | None = None,
    progress: ProgressFactory = quiet_progress,
) -> OptimizeReport:
    if not 0 < tolerance < 1:
        raise InvalidInputError(f"tolerance must be between 0 and 1 (exclusive), got {tolerance}")
    if min_speedup <= 0:
        raise InvalidInputError(f"min_speedup must be positive, got {min_speedup}")
    source = registry if registry is not None else settings
    if source is None:
        raise TypeError("optimize() needs the registry= to read and write, or its settings=")
    with registry_from(source) as target:
        return _optimize(target, ref, eval_data, labels, tolerance, min_speedup, progress)


def _optimize(
    registry: Registry,
    ref: str | ModelRef,
    eval_path: str | Path | None,
    labels_path: str | Path | None,
    tolerance: float,
    min_speedup: float,
    progress: ProgressFactory,
) -> OptimizeReport:
    parent = registry.get_version(ref)
    origin = parent.conversion.get("optimization")
    if origin:
        raise InvalidInputError(
            f"{parent.ref} is already optimized ({origin['recipe']['name']}); optimize its "
            f"parent {parent.name}:{parent.parent_version} instead"
        )
    files = registry.read_files(parent)
    data = _eval_data(registry, parent, files, eval_path)
    if len(data) == 0:
        raise InvalidInputError(f"the evaluation data for {parent.ref} has no rows")
    labels = _labels(labels_path, len(data))
    features = cpu.features(registry.settings.cpu_features)
    threading = Threading(intra_op=registry.settings.intra_op_threads)
    parent_predictor = load_version(registry, parent, threading, files)
    task = gates.task_of(parent_predictor)
    fitting, judging = gates.held_out(len(data))
    judged = gates.take(data, judging)
    typical = min(TYPICAL_BATCH, len(data))
    op_types = transform.operator_types(files[MODEL_FILE])
    text = parent.kind is ModelKind.TEXT_EMBEDDING
    search = _Search(
        parent,
        files,
        parent_predictor,
        gates.predictions(parent_predictor, judged),
        judged,
        labels[judging] if labels is not None else None,
        task,
        tolerance,
        min_speedup,
        _spread(data, typical),
        threading,
        _graph_feeds(parent_predictor, gates.take(data, fitting)),
    )
    results: list[CandidateResult] = []
    for recipe in recipes.candidates(op_types, text, features):
        if recipe in search.measured:
            continue  # already tried as another candidate's fallback
        done = progress(f"candidate {recipe.name}", 0)
        results.extend(r for r in search.run(recipe) if r not in results)
        done(1)
    results.append(
        CandidateResult(
            Recipe("fp16"),
            reason="skipped: fp16 only pays on a GPU provider, none here",
            skipped=True,
        )
    )
    winners = [r for r in results if r.passed]
    registered = None
    if winners:
        best = max(winners, key=lambda r: r.speedup_typical)
        registered = _register(
            registry, parent, files, best, search.graphs[best.recipe], features.to_dict()
        )
    return OptimizeReport(
        parent=parent.ref,
        cpu=features.to_dict(),
        task=task,
        typical_batch=typical,
        eval_rows=len(data),
        parent_size_bytes=len(files[MODEL_FILE]),
        candidates=results,
        registered=registered,
        held_out_rows=len(judging),
        verdict=verdict(parent.ref, results, registered, typical, min_speedup, features),
    )


def _spread(data: Any, count: int) -> Any:
    """``count`` rows spread over the evaluation data, so a sorted file does not time only
    its head."""
    step = max(1, len(data) // count)
    return data[::step][:count]


class _Search:
    """Builds, measures and rescues candidates for one parent."""

    def __init__(self, parent: ModelVersion, files: dict[str, bytes], predictor: Predictor,
                 outputs: dict[str, np.ndarray], judged: Any, labels: np.ndarray | None,
                 task: str, tolerance: float, min_speedup: float, typical_batch: Any,
                 threading: Threading, feeds: dict[str, np.ndarray]) -> None:  # fmt: skip
        # outputs, judged and labels: the held-out rows; feeds: the graph's inputs for the rows
        # the transforms fit on (calibration, smoothing, sensitivity)
        self.parent, self.files, self.predictor, self.outputs = parent, files, predictor, outputs
        self.judged, self.labels, self.task = judged, labels, task
        self.tolerance, self.min_speedup = tolerance, min_speedup
        self.typical_batch, self.typical = typical_batch, len(typical_batch)
        self.threading, self.feeds = threading, feeds
        self.graphs: dict[Recipe, bytes] = {}
        self.measured: dict[Recipe, CandidateResult] = {}

    def run(self, recipe: Recipe) -> list[CandidateResult]:
        result = self.measure(recipe)
        tried = [result]
        if result.passed or not recipe.quantized or result.quality is None or result.quality.passed:
            return tried
        for fallback in recipes.fallbacks(recipe):
            attempt = self.measure(fallback)
            tried.append(attempt)
            if attempt.quality is not None and attempt.quality.passed:
                return tried
        closest = max((r for r in tried if r.quality is not None), key=closeness)
        for variant in recipes.smoothed(closest.recipe):
            attempt = self.measure(variant)
            tried.append(attempt)
            if attempt.quality is not None and attempt.quality.passed:
                return tried
        if recipe.kind == "dynamic-int8":
            # keep nodes in float starting from the variant that came closest to passing
            closest = max((r for r in tried if r.quality is not None), key=closeness)
            tried.extend(self.exclude_sensitive(closest.recipe))
        return tried

    def exclude_sensitive(self, recipe: Recipe) -> list[CandidateResult]:
        ranking = sensitivity.rank_matmuls(
            transform.prepared(recipe, self.files[MODEL_FILE], self.feeds),
            {name: a[:SENSITIVITY_ROWS] for name, a in self.feeds.items()},
            per_channel=recipe.per_channel,
            reduce_range=recipe.reduce_range,
        )
        tried = []
        for count in range(1, min(MAX_EXCLUDED, len(ranking)) + 1):
            excluded = tuple(name for name, _ in ranking[:count])
            attempt = self.measure(recipe.with_changes(excluded_nodes=excluded))
            attempt.facts["sensitivity"] = [[n, round(e, 5)] for n, e in ranking[:count]]
            tried.append(attempt)
            if attempt.quality is not None and attempt.quality.passed:
                break
        return tried

    def measure(self, recipe: Recipe) -> CandidateResult:
        if recipe in self.measured:
            return self.measured[recipe]
        result = self.measured[recipe] = CandidateResult(recipe)
        try:
            graph, result.facts = transform.apply(recipe, self.files[MODEL_FILE], self.feeds)
            candidate_files = {**self.files, MODEL_FILE: graph}
            candidate = Predictor(candidate_files, self.parent.signature, self.parent.kind,
                                  threading=self.threading)  # fmt: skip
        except ShipyardError as exc:
            result.reason = f"could not be built: {exc.message}"
            return result
        self.graphs[recipe] = graph
        result.size_bytes = len(graph)
        outputs = gates.predictions(candidate, self.judged)
        result.quality = gates.compare(
            self.task, self.outputs, outputs, self.labels, self.tolerance
        )
        result.speedup_batch1 = gates.speedup(self.predictor, candidate, self.typical_batch[:1])
        result.speedup_typical = gates.speedup(self.predictor, candidate, self.typical_batch)
        fast = result.speedup_typical >= self.min_speedup
        result.passed = result.quality.passed and fast
        if not result.quality.passed:
            result.reason = f"accuracy: {describe(result.quality)}"
        elif not fast:
            result.reason = (
                f"speed: {result.speedup_typical:.2f}x at batch {self.typical}, "
                f"needs {self.min_speedup:.2f}x"
            )
        else:
            result.reason = "passed"
        return result


def _eval_data(
    registry: Registry, version: ModelVersion, files: dict[str, bytes], path: str | Path | None
) -> Any:
    feature_names = version.conversion.get("feature_names")
    if path is not None:
        return validate_reference(
            read_reference(Path(path)), version.signature, version.kind, feature_names
        )
    stored = stored_reference(files)
    if stored is not None:
        return stored
    raise InvalidInputError(
        f"{version.ref} has no reference data to evaluate candidates on; pass --eval-data "
        "(rows of the model's input, or a .txt of texts for a text model)"
    )


def _labels(path: str | Path | None, rows: int) -> np.ndarray | None:
    if path is None:
        return None
    source = Path(path)
    if not source.is_file():
        raise InvalidInputError(f"labels file {source} does not exist")
    labels: np.ndarray
    if source.suffix == ".npy":
        labels = np.asarray(np.load(source, allow_pickle=False))
    else:
        lines = [line.strip() for line in source.read_text().splitlines() if line.strip()]
        try:
            labels = np.asarray([float(x) for x in lines])
        except ValueError:
            labels = np.asarray(lines, dtype=object)
        if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
    if len(labels) != rows:
        raise InvalidInputError(
            f"{source} has {len(labels)} labels; the evaluation data has {rows} rows"
        )
    return labels


def _graph_feeds(predictor: Predictor, data: Any) -> dict[str, np.ndarray]:
    """What the ONNX graph itself receives for the evaluation data (calibration, sensitivity)."""
    return predictor.graph_feeds(data[: transform.CALIBRATION_ROWS])


def _register(
    registry: Registry,
    parent: ModelVersion,
    files: dict[str, bytes],
    best: CandidateResult,
    graph: bytes,
    flags: dict[str, Any],
) -> ModelVersion:
    record = {
        "parent": parent.ref,
        "recipe": best.recipe.to_dict(),
        "cpu": flags,
        "size_before": len(files[MODEL_FILE]),
        "size_after": len(graph),
        "speedup_batch1": best.speedup_batch1,
        "speedup_typical": best.speedup_typical,
        "quality": best.quality.to_dict() if best.quality else None,
    }
    with tempfile.TemporaryDirectory(prefix="shipyard-optimized-") as tmp:
        staged = {}
        for name, content in {**files, MODEL_FILE: graph}.items():
            path = Path(tmp) / name
            path.write_bytes(content)
            staged[name] = path
        new = NewVersion.derived_from(parent, staged)
        new.tags["optimized"] = best.recipe.name
        # the parent's parity was its conversion's; this graph's check is `quality`
        new.conversion.pop("parity", None)
        new.conversion["optimization"] = record
        return registry.create_version(parent.name, new)
