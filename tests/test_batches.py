"""Requests joined into a batch and the batch split back: texts, arrays, shared arrays."""

from __future__ import annotations

import numpy as np

from shipyard.runtime.batches import join_arrays, join_texts, split, split_arrays, split_texts


def test_texts_join_in_order_and_split_back() -> None:
    parts = [["a", "b"], ["c"], ["d", "e", "f"]]
    joined = join_texts(parts)
    assert joined == ["a", "b", "c", "d", "e", "f"]
    assert split_texts(joined, [2, 1, 3]) == parts
    assert split(joined, [2, 1, 3]) == parts
    assert split_texts(["a"], [1]) == [["a"]]
    assert split_texts([], []) == []


def test_arrays_join_along_the_rows_and_split_back_as_views() -> None:
    parts = [
        {"x": np.arange(6.0).reshape(2, 3), "id": np.array([1, 2])},
        {"x": np.arange(6.0, 9.0).reshape(1, 3), "id": np.array([3])},
    ]
    joined = join_arrays(parts)
    np.testing.assert_array_equal(joined["x"], np.arange(9.0).reshape(3, 3))
    np.testing.assert_array_equal(joined["id"], [1, 2, 3])
    back = split_arrays(joined, [2, 1])
    for got, want in zip(back, parts, strict=True):
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
            assert np.shares_memory(got[name], joined[name])  # a view, not a copy
    assert [sorted(part) for part in split(joined, [2, 1])] == [["id", "x"], ["id", "x"]]


def test_join_takes_only_the_names_asked_for() -> None:
    parts = [{"y": np.ones(2), "__count": np.ones(2)}, {"y": np.zeros(1), "__count": np.ones(1)}]
    joined = join_arrays(parts, ["y"])
    assert list(joined) == ["y"]
    np.testing.assert_array_equal(joined["y"], [1.0, 1.0, 0.0])


def test_an_array_without_a_row_per_example_is_shared_by_every_request() -> None:
    outputs = {
        "y": np.arange(5.0),
        "scale": np.array(2.5),  # no batch axis
        "classes": np.array([10, 20]),  # a batch axis of another length
    }
    parts = split_arrays(outputs, [3, 2])
    np.testing.assert_array_equal(parts[0]["y"], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(parts[1]["y"], [3.0, 4.0])
    for part in parts:
        assert part["scale"] is outputs["scale"]
        assert part["classes"] is outputs["classes"]
