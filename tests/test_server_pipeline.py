"""The inference pipeline's time budget: the shorter of the request's own limits, else the
server's default."""

from __future__ import annotations

import pytest

from shipyard.server.pipeline import time_budget


@pytest.mark.parametrize(
    ("timeout_s", "header_ms", "default_s", "budget"),
    [
        (None, None, None, None),
        (None, None, 30.0, 30.0),
        (2.0, None, 30.0, 2.0),
        (None, 500.0, 30.0, 0.5),
        (2.0, 500.0, None, 0.5),
        (0.1, 500.0, None, 0.1),
        (60.0, None, 30.0, 60.0),  # the request's own limit wins over the default, even longer
        (None, 90_000.0, 30.0, 90.0),
        (0.0, None, 30.0, 30.0),
    ],
)
def test_time_budget(
    timeout_s: float | None, header_ms: float | None, default_s: float | None, budget: float | None
) -> None:
    assert time_budget(timeout_s, header_ms, default_s) == budget
