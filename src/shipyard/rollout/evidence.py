"""What a replica sees of a rollout step, kept so that replicas' views add up.

Per version of the split (``Side``): requests, server errors, a latency histogram and what
the version answered (class counts for a classifier, the first output's sum and sum of
squares for a regressor). Per mirrored request (``Paired``): the two answers compared —
agreement for a classifier, cosine for an embedding, relative error for a regressor — broken
down by the top values of a chosen feature.

Every figure is a count or a sum, so replicas' documents merge by addition (``merge``) and
the controller judges a step on all of them at once. The request path pays one call per
request: counters, a histogram slot, and a reference to the outputs, which are read only
when the replica writes its evidence (``digest``, off the request path).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.monitor.performance import predicted_values
from shipyard.registry import Signature

# Latency slots: 10% wide from 20 us to two minutes (about 165 slots); a p99 read from them
# is within 10% of the exact one.
LOWEST_S = 2e-5
RATIO = 1.1
SLOTS = int(math.log(120.0 / LOWEST_S) / math.log(RATIO)) + 2
_PER_LOG = 1.0 / math.log(RATIO)
# Outputs held between two writes, per version: enough to count answers well at any rate,
# a bound on the memory a burst can take.
HELD_OUTPUTS = 512
TOP_CLASSES = 64  # classes counted by name; the rest together as "other"
TOP_SLICES = 16  # values of the slice feature broken down; the rest as "other"


def slot(seconds: float) -> int:
    if seconds <= LOWEST_S:
        return 0
    return min(SLOTS - 1, int(math.log(seconds / LOWEST_S) * _PER_LOG) + 1)


def slot_upper(index: int) -> float:
    """The largest latency slot ``index`` holds, in seconds."""
    return LOWEST_S * RATIO**index


@dataclass
class Side:
    """One version's requests in a step."""

    requests: int = 0
    errors: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * SLOTS)
    latency_sum: float = 0.0
    latency_squares: float = 0.0
    classes: dict[str, int] = field(default_factory=dict)
    value_n: int = 0
    value_sum: float = 0.0
    value_squares: float = 0.0
    held: list[dict[str, Any]] = field(default_factory=list)

    def record(self, status: int, seconds: float, outputs: dict[str, Any] | None) -> None:
        """One request answered (or failed) by this version."""
        self.requests += 1
        if status >= 500:
            self.errors += 1
        self.latency[slot(seconds)] += 1
        self.latency_sum += seconds
        self.latency_squares += seconds * seconds
        if outputs is not None and len(self.held) < HELD_OUTPUTS:
            self.held.append(outputs)

    def digest(self, signature: Signature, task: str) -> None:
        """Count the answers held since the last digest."""
        held, self.held = self.held, []
        for outputs in held:
            try:
                values = predicted_values(signature, outputs, task)
            except (KeyError, ValueError, TypeError, IndexError):
                continue  # an answer this reading does not fit is not guessed at
            if task == "classification":
                for value in values:
                    name = str(value)
                    if name in self.classes or len(self.classes) < TOP_CLASSES:
                        self.classes[name] = self.classes.get(name, 0) + 1
                    else:
                        self.classes["other"] = self.classes.get("other", 0) + 1
            elif task == "regression":
                array = np.asarray(values, dtype=np.float64)
                self.value_n += int(array.size)
                self.value_sum += float(array.sum())
                self.value_squares += float(np.square(array).sum())

    def p99(self) -> float:
        return self.quantile(0.99)

    def quantile(self, q: float) -> float:
        """The latency at quantile ``q`` (a slot's upper end), NaN with no requests."""
        total = sum(self.latency)
        if total == 0:
            return math.nan
        wanted = q * total
        seen = 0
        for index, count in enumerate(self.latency):
            seen += count
            if seen >= wanted:
                return slot_upper(index)
        return slot_upper(SLOTS - 1)

    def slower_than(self, seconds: float) -> int:
        """Requests in slots wholly above ``seconds``."""
        return sum(self.latency[slot(seconds) + 1 :])

    def document(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "errors": self.errors, "latency": list(self.latency),
            "latency_sum": self.latency_sum, "latency_squares": self.latency_squares,
            "classes": dict(self.classes), "value_n": self.value_n,
            "value_sum": self.value_sum, "value_squares": self.value_squares,
        }  # fmt: skip

    def add(self, document: dict[str, Any]) -> None:
        self.requests += int(document.get("requests", 0))
        self.errors += int(document.get("errors", 0))
        for index, count in enumerate(document.get("latency", [])[:SLOTS]):
            self.latency[index] += int(count)
        self.latency_sum += float(document.get("latency_sum", 0.0))
        self.latency_squares += float(document.get("latency_squares", 0.0))
        for name, count in document.get("classes", {}).items():
            self.classes[name] = self.classes.get(name, 0) + int(count)
        self.value_n += int(document.get("value_n", 0))
        self.value_sum += float(document.get("value_sum", 0.0))
        self.value_squares += float(document.get("value_squares", 0.0))


@dataclass
class Comparison:
    """Paired answers: ``n`` compared, ``score`` the sum of each pair's figure (1 or 0 for
    agreement, the cosine, the relative error) and ``squares`` its sum of squares."""

    n: int = 0
    score: float = 0.0
    squares: float = 0.0

    def add_value(self, value: float) -> None:
        self.n += 1
        self.score += value
        self.squares += value * value

    def add(self, document: dict[str, Any]) -> None:
        self.n += int(document.get("n", 0))
        self.score += float(document.get("score", 0.0))
        self.squares += float(document.get("squares", 0.0))

    def document(self) -> dict[str, Any]:
        return {"n": self.n, "score": self.score, "squares": self.squares}

    @property
    def mean(self) -> float:
        return self.score / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        if self.n < 2:
            return 0.0
        return max(0.0, (self.squares - self.score * self.score / self.n) / (self.n - 1))


@dataclass
class Paired:
    """Mirrored requests: the candidate's answer against the baseline's on the same input."""

    measure: str = ""  # agreement | cosine | relative_error, by the model's task
    overall: Comparison = field(default_factory=Comparison)
    slices: dict[str, Comparison] = field(default_factory=dict)
    failed: int = 0  # mirrored requests the candidate failed

    def compare(
        self,
        signature: Signature,
        task: str,
        baseline: dict[str, Any],
        candidate: dict[str, Any],
        slice_values: list[str] | None = None,
    ) -> None:
        """Compare one mirrored request's answers, row by row."""
        figures = pair_figures(signature, task, baseline, candidate)
        self.measure = MEASURES[task]
        for index, figure in enumerate(figures):
            self.overall.add_value(figure)
            if slice_values is not None and index < len(slice_values):
                name = slice_values[index]
                if name not in self.slices and len(self.slices) >= TOP_SLICES:
                    name = "other"
                self.slices.setdefault(name, Comparison()).add_value(figure)

    def document(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "overall": self.overall.document(),
            "slices": {name: c.document() for name, c in self.slices.items()},
            "failed": self.failed,
        }

    def add(self, document: dict[str, Any]) -> None:
        self.measure = self.measure or str(document.get("measure", ""))
        self.overall.add(document.get("overall", {}))
        for name, part in document.get("slices", {}).items():
            self.slices.setdefault(name, Comparison()).add(part)
        self.failed += int(document.get("failed", 0))


MEASURES = {"classification": "agreement", "embedding": "cosine", "regression": "relative_error"}


def pair_figures(
    signature: Signature, task: str, baseline: dict[str, Any], candidate: dict[str, Any]
) -> list[float]:
    """Per row: 1.0 where the classes agree (else 0.0), the cosine of the two embeddings, or
    the candidate's error relative to the baseline's value."""
    if task == "classification":
        ours = predicted_values(signature, baseline, task)
        theirs = predicted_values(signature, candidate, task)
        return [float(str(a) == str(b)) for a, b in zip(ours, theirs, strict=False)]
    name = signature.outputs[0].name
    first = np.asarray(baseline[name], dtype=np.float64)
    second = np.asarray(candidate[name], dtype=np.float64)
    rows = len(first)
    first, second = first.reshape(rows, -1), second.reshape(rows, -1)
    if task == "embedding":
        norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
        cosine = np.einsum("ij,ij->i", first, second) / np.where(norms > 0, norms, 1.0)
        return [float(value) for value in cosine]
    scale = np.maximum(np.abs(first[:, 0]), 1e-9)
    return [float(value) for value in np.abs(second[:, 0] - first[:, 0]) / scale]


@dataclass
class StepEvidence:
    """Everything one replica (or, merged, every replica) saw of one step."""

    baseline: Side = field(default_factory=Side)
    candidate: Side = field(default_factory=Side)
    paired: Paired = field(default_factory=Paired)

    def document(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.document(),
            "candidate": self.candidate.document(),
            "paired": self.paired.document(),
        }

    @classmethod
    def merge(cls, documents: Iterable[dict[str, Any]]) -> StepEvidence:
        merged = cls()
        for document in documents:
            merged.baseline.add(document.get("baseline", {}))
            merged.candidate.add(document.get("candidate", {}))
            merged.paired.add(document.get("paired", {}))
        return merged
