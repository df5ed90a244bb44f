"""IdMap: raw ids of any hashable type <-> contiguous indices, and its Parquet form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrec.data import DataError, IdMap

RAW_ID_SETS = {
    "ints": [30, 10, 20, 5],
    "strings": ["bob", "alice", "007", ""],
    "tuples": [(1, "a"), (2, "b"), (1, "b")],
    "equal_length_tuples": [(1, 2, 3), (4, 5, 6), (7, 8, 9)],
    "tuples_of_mixed_length": [(1,), (1, 2), ("x", 3, 4.5)],
    "mixed": [3, "3", (3,), 2.5],
}


def kinds(values) -> list[type]:
    """Python types of ``values``, numpy scalars counted as their Python equivalent."""
    return [type(v.item() if isinstance(v, np.generic) else v) for v in values]


@pytest.mark.parametrize("name", RAW_ID_SETS)
def test_lookups_round_trip(name: str) -> None:
    raw = RAW_ID_SETS[name]
    m = IdMap(raw, "user")
    assert len(m) == len(raw)
    idx = m.to_index(raw)
    np.testing.assert_array_equal(idx, np.arange(len(raw)))
    back = m.to_raw(idx)
    assert list(back) == raw
    assert kinds(back) == kinds(raw)
    for k, r in enumerate(raw):  # scalar lookups, tuples included
        assert m.to_index(r) == k
        assert m.to_raw(k) == r


@pytest.mark.parametrize("name", RAW_ID_SETS)
def test_save_load_keeps_values_and_types(name: str, tmp_path) -> None:
    raw = RAW_ID_SETS[name]
    m = IdMap(raw, "item")
    m.save(tmp_path / "ids.parquet")
    loaded = IdMap.load(tmp_path / "ids.parquet", "item")
    assert loaded == m
    assert list(loaded.raw) == raw
    assert kinds(loaded.raw) == kinds(raw)


def test_identity_map_saves_as_ints(tmp_path) -> None:
    m = IdMap.identity(4, "user")
    m.save(tmp_path / "u.parquet")
    loaded = IdMap.load(tmp_path / "u.parquet")
    assert loaded == m
    assert loaded.to_index(3) == 3


def test_unstorable_ids_are_refused_with_a_clear_error(tmp_path) -> None:
    m = IdMap([object(), object()], "user")
    with pytest.raises(DataError, match="user ids cannot be written") as err:
        m.save(tmp_path / "u.parquet")
    assert "u.parquet" in str(err.value)
    assert not (tmp_path / "u.parquet").exists()


def test_from_values_sorts_comparable_ids_and_codes_the_column() -> None:
    values = [30, 10, 30, 20, 10]
    m, codes = IdMap.from_values(values, "user")
    assert list(m.raw) == sorted(set(values))
    assert list(m.to_raw(codes)) == values


def test_from_values_keeps_first_appearance_for_incomparable_ids() -> None:
    values = ["b", 1, (2,), "b", 1]
    m, codes = IdMap.from_values(values, "item")
    assert list(m.raw) == ["b", 1, (2,)]
    assert list(m.to_raw(codes)) == values


def test_repeated_raw_ids_are_refused() -> None:
    with pytest.raises(DataError, match=r"user id map.*unique.*\[2\]"):
        IdMap([1, 2, 2], "user")


def test_unknown_ids_raise_or_mask() -> None:
    m = IdMap(["a", "b"], "item")
    with pytest.raises(DataError, match=r"unknown item id\(s\) \['zz'\] \(1 in all\)"):
        m.to_index(["a", "zz"])
    np.testing.assert_array_equal(m.to_index(["a", "zz", "b"], missing="mask"), [0, -1, 1])


def test_to_raw_refuses_out_of_range_indices() -> None:
    m = IdMap([5, 6, 7], "user")
    with pytest.raises(DataError, match="out of range"):
        m.to_raw([0, 3])
    with pytest.raises(DataError, match="out of range"):
        m.to_raw(-1)


def test_union_keeps_existing_indices() -> None:
    a = IdMap(["x", "y"], "user")
    b = IdMap(["z", "x", "w"], "user")
    u = a.union(b)
    assert list(u.raw[:2]) == ["x", "y"]
    assert set(u.raw) == {"x", "y", "z", "w"}
    assert len(u) == 4


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=5)), max_size=30))
def test_from_values_round_trips_random_columns(values: list) -> None:
    m, codes = IdMap.from_values(values, "id")
    assert len(m) == len(set(values))
    assert list(m.to_raw(codes)) == values if values else len(codes) == 0
    np.testing.assert_array_equal(m.to_index(values), codes)
