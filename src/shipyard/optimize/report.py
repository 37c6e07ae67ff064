"""What ``shipyard optimize`` found: each candidate's measurements and verdict, the outcome
in a sentence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shipyard.optimize import gates
from shipyard.optimize.cpu import CpuFeatures
from shipyard.optimize.recipes import Recipe
from shipyard.registry import ModelVersion


@dataclass
class CandidateResult:
    recipe: Recipe
    size_bytes: int = 0
    quality: gates.Quality | None = None
    speedup_batch1: float = 0.0
    speedup_typical: float = 0.0
    passed: bool = False
    reason: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False  # not built or measured here (the reason says why)

    @property
    def status(self) -> str:
        """passed | failed | skipped"""
        if self.skipped:
            return "skipped"
        return "passed" if self.passed else "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.to_dict(),
            "status": self.status,
            "size_bytes": self.size_bytes,
            "quality": self.quality.to_dict() if self.quality else None,
            "speedup_batch1": self.speedup_batch1,
            "speedup_typical": self.speedup_typical,
            "passed": self.passed,
            "reason": self.reason,
            **({"facts": self.facts} if self.facts else {}),
        }


@dataclass
class OptimizeReport:
    parent: str
    cpu: dict[str, Any]
    task: str
    typical_batch: int
    eval_rows: int
    parent_size_bytes: int
    candidates: list[CandidateResult]
    registered: ModelVersion | None
    held_out_rows: int = 0  # the rows accuracy is judged on (all of them below MIN_SPLIT_ROWS)
    verdict: str = ""  # the outcome in a sentence: what was registered, or why nothing was

    def to_dict(self) -> dict[str, Any]:
        return {
            "parent": self.parent,
            "cpu": self.cpu,
            "task": self.task,
            "typical_batch": self.typical_batch,
            "eval_rows": self.eval_rows,
            "held_out_rows": self.held_out_rows,
            "parent_size_bytes": self.parent_size_bytes,
            "candidates": [c.to_dict() for c in self.candidates],
            "registered": self.registered.ref if self.registered else None,
            "verdict": self.verdict,
        }


def verdict(
    parent: str,
    results: list[CandidateResult],
    registered: ModelVersion | None,
    typical: int,
    min_speedup: float,
    features: CpuFeatures,
) -> str:
    """The outcome in one sentence; when int8 kept its accuracy but not the pace, says that
    int8 does not pay on this CPU."""
    measured = [r for r in results if r.quality is not None]
    accurate = [r for r in measured if r.quality is not None and r.quality.passed]
    if registered is not None:
        best = max((r for r in results if r.passed), key=lambda r: r.speedup_typical)
        return (
            f"registered {registered.ref} from {parent}: {best.recipe.name}, "
            f"{best.speedup_typical:.2f}x at batch {typical}"
        )
    if not accurate:
        if not measured:
            return "nothing registered: no candidate could be built"
        closest = max(measured, key=closeness)
        assert closest.quality is not None
        return (
            f"nothing registered: no candidate kept its accuracy (the closest, "
            f"{closest.recipe.name}: {describe(closest.quality)})"
        )
    fastest = max(accurate, key=lambda r: r.speedup_typical)
    quantized = [r for r in accurate if r.recipe.quantized]
    pace = f"{min_speedup:.2f}x is needed"
    if quantized:
        int8 = max(quantized, key=lambda r: r.speedup_typical)
        return (
            f"nothing registered: int8 does not pay on this CPU ({features.summary()}): the "
            f"fastest int8 candidate that kept its accuracy, {int8.recipe.name}, is "
            f"{int8.speedup_typical:.2f}x at batch {typical}; {pace}"
        )
    return (
        f"nothing registered: the fastest candidate that kept its accuracy, "
        f"{fastest.recipe.name}, is {fastest.speedup_typical:.2f}x at batch {typical}; {pace}"
    )


BOUND_LABELS = {"lower_bound": "lower bound", "upper_bound": "upper bound", "worst_cosine": "worst"}


def describe(quality: gates.Quality, against_parent: bool = True) -> str:
    """e.g. ``mean_cosine 0.9886 (lower bound 0.9871, worst 0.9702) vs parent 1.0000``"""
    bounds = [
        f"{label} {quality.details[key]:.4f}"
        for key, label in BOUND_LABELS.items()
        if key in quality.details
    ]
    shown = f" ({', '.join(bounds)})" if bounds else ""
    parent = f" vs parent {quality.parent:.4f}" if against_parent else ""
    return f"{quality.metric} {quality.candidate:.4f}{shown}{parent}"


def closeness(result: CandidateResult) -> float:
    """How near a candidate came to the accuracy gate (higher is nearer): the figure that
    gates, its bound where a bound gates."""
    quality = result.quality
    assert quality is not None
    if "worst_cosine" in quality.details:
        return min(quality.details["lower_bound"], quality.details["worst_cosine"])
    if quality.metric in ("mae", "relative_error"):
        return -quality.details.get("upper_bound", quality.candidate)
    return quality.candidate
