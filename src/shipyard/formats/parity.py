"""Comparisons between a source model's outputs and its ONNX twin's."""

from __future__ import annotations

import numpy as np

from shipyard.formats.base import Parity


def numeric_parity(
    expected: list[np.ndarray], actual: list[np.ndarray], tolerance: float, rows: int
) -> Parity:
    """Max abs difference, gated like ``allclose(atol=tolerance, rtol=tolerance)``."""
    max_abs = 0.0
    max_scaled = 0.0
    for want, got in zip(expected, actual, strict=True):
        want = np.asarray(want, dtype=np.float64)
        got = np.asarray(got, dtype=np.float64).reshape(want.shape)
        if want.size == 0:
            continue
        diff = np.abs(want - got)
        if not np.all(np.isfinite(diff)):
            same_nonfinite = np.array_equal(np.isnan(want), np.isnan(got)) and np.array_equal(
                want[~np.isfinite(want)], got[~np.isfinite(got)]
            )
            if not same_nonfinite:
                return Parity("max_abs_diff", float("inf"), tolerance, False, rows)
            diff = np.where(np.isfinite(diff), diff, 0.0)
        max_abs = max(max_abs, float(diff.max()))
        max_scaled = max(max_scaled, float((diff / np.maximum(1.0, np.abs(want))).max()))
    return Parity(
        "max_abs_diff",
        max_abs,
        tolerance,
        passed=max_scaled <= tolerance,
        rows=rows,
        extra={"max_scaled_diff": max_scaled},
    )


def cosine_parity(expected: np.ndarray, actual: np.ndarray, tolerance: float) -> Parity:
    """Row-wise cosine similarity; passes when the worst row is within ``tolerance`` of 1."""
    want = np.asarray(expected, dtype=np.float64)
    got = np.asarray(actual, dtype=np.float64)
    norms = np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1)
    cosine = (want * got).sum(axis=1) / np.clip(norms, 1e-12, None)
    worst = float(cosine.min())
    return Parity(
        "min_cosine",
        worst,
        tolerance,
        passed=1.0 - worst <= tolerance,
        rows=len(cosine),
        extra={"mean_cosine": float(cosine.mean())},
    )
