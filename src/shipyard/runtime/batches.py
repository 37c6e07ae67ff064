"""Requests joined into one batch, and a batch split back into its requests.

A payload is what the runtime runs: a text model's list of strings, or arrays by name with
one row per example along the first axis. The server's runner joins its requests' payloads
and splits the outputs; the monitor joins the batches it sketches and splits those it logs
into one record per request. An array without a row per example of the batch (no batch
axis, or another length) belongs to the whole batch: every request's part shares it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def join_texts(parts: Iterable[list[str]]) -> list[str]:
    """Several requests' texts as one batch, in order."""
    texts: list[str] = []
    for part in parts:
        texts.extend(part)
    return texts


def join_arrays(
    parts: Sequence[Mapping[str, Any]], names: Iterable[str] | None = None
) -> dict[str, Any]:
    """Several requests' arrays as one batch, each name's concatenated along the rows: the
    first part's names, or only ``names``."""
    return {
        name: np.concatenate([part[name] for part in parts])
        for name in (parts[0] if names is None else names)
    }


def split_texts(texts: list[str], rows: list[int]) -> list[list[str]]:
    """A batch's texts cut into one part per request, ``rows[i]`` texts each."""
    return [texts[a:b] for a, b in itertools.pairwise(itertools.accumulate(rows, initial=0))]


def split_arrays(arrays: Mapping[str, Any], rows: list[int]) -> list[dict[str, Any]]:
    """A batch's arrays cut into one part per request, ``rows[i]`` rows each (views); an
    array without a row per batch row (no batch axis) is shared by every part."""
    total = sum(rows)
    parts: list[dict[str, Any]] = []
    start = 0
    for count in rows:
        stop = start + count
        parts.append(
            {
                name: value[start:stop] if value.ndim and value.shape[0] == total else value
                for name, value in arrays.items()
            }
        )
        start = stop
    return parts


def split(payload: Any, rows: list[int]) -> list[Any]:
    """A batch's payload, texts or arrays, cut into one part per request."""
    if isinstance(payload, list):
        return split_texts(payload, rows)
    return split_arrays(payload, rows)
