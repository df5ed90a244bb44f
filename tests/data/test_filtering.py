"""k-core, binarisation and deduplication."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrec.data.errors import DataError
from graphrec.data.filtering import FilterReport, binarize, compact_maps, deduplicate, k_core
from graphrec.data.idmap import IdMap
from graphrec.data.interactions import Interactions


def make(pairs: list[tuple[int, int]], **kw) -> Interactions:
    """Interactions over string raw ids; the timestamp column holds the row number."""
    u = np.array([p[0] for p in pairs], dtype=np.int64)
    i = np.array([p[1] for p in pairs], dtype=np.int64)
    nu = int(u.max()) + 1 if len(u) else 1
    ni = int(i.max()) + 1 if len(i) else 1
    return Interactions(u, i, IdMap([f"u{k}" for k in range(nu)], "user"),
                        IdMap([f"i{k}" for k in range(ni)], "item"),
                        timestamp=np.arange(len(u)), **kw)


def naive_k_core(pairs: list[tuple[int, int]], user_k: int, item_k: int) -> set[int]:
    """Row numbers of the k-core, removing one offending row at a time."""
    rows = set(range(len(pairs)))
    changed = True
    while changed:
        changed = False
        du: dict[int, int] = {}
        di: dict[int, int] = {}
        for r in rows:
            du[pairs[r][0]] = du.get(pairs[r][0], 0) + 1
            di[pairs[r][1]] = di.get(pairs[r][1], 0) + 1
        for r in sorted(rows):
            if du[pairs[r][0]] < user_k or di[pairs[r][1]] < item_k:
                rows.discard(r)
                changed = True
                break
    return rows


pairs_strategy = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), min_size=0, max_size=60)


@settings(max_examples=150, deadline=None)
@given(pairs_strategy, st.integers(0, 4), st.integers(0, 4))
def test_k_core_matches_naive_reference(pairs, user_k, item_k):
    inter = make(pairs)
    core = k_core(inter, user_k=user_k, item_k=item_k, compact=False)
    assert set(core.timestamp.tolist()) == naive_k_core(pairs, user_k, item_k)
    if len(core):
        assert core.user_degrees()[np.unique(core.user)].min() >= user_k
        assert core.item_degrees()[np.unique(core.item)].min() >= item_k
    rep = core.filter_report
    assert isinstance(rep, FilterReport)
    assert rep.rows_removed == len(pairs) - len(core)
    assert rep.rounds >= (1 if rep.rows_removed else 0)


@settings(max_examples=60, deadline=None)
@given(pairs_strategy, st.integers(1, 3))
def test_k_core_compact_keeps_raw_ids(pairs, k):
    inter = make(pairs)
    loose = k_core(inter, k, k, compact=False)
    core = k_core(inter, k, k)
    assert core.num_users == len(np.unique(loose.user))
    assert core.num_items == len(np.unique(loose.item))
    # Same rows, same raw ids, and the maps hold only ids that occur.
    assert np.array_equal(core.user_map.to_raw(core.user), loose.user_map.to_raw(loose.user))
    assert np.array_equal(core.item_map.to_raw(core.item), loose.item_map.to_raw(loose.item))
    assert (core.user_degrees() > 0).all() and (core.item_degrees() > 0).all()
    assert core.filter_report.users_removed == len(np.unique(inter.user)) - core.num_users


def test_k_core_needs_several_rounds():
    # u0 has 2 rows, u1 two rows, u2 one row on item 2; removing u2 makes item 2 fall to
    # one row, which removes u1's row on it, which makes u1 too small, and so on.
    pairs = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (3, 0), (3, 1)]
    core = k_core(make(pairs), user_k=2, item_k=2, compact=False)
    assert sorted(core.timestamp.tolist()) == sorted(naive_k_core(pairs, 2, 2))
    assert core.filter_report.rounds >= 2
    assert "round" in str(core.filter_report)


def test_k_core_noop_reports_zero_rounds():
    pairs = [(u, i) for u in range(3) for i in range(3)]
    core = k_core(make(pairs), user_k=3, item_k=3)
    assert len(core) == 9
    assert core.filter_report.rounds == 0 and core.filter_report.rows_removed == 0


def test_compact_maps_preserves_order():
    inter = make([(3, 5), (1, 2)])
    c = compact_maps(inter)
    assert list(c.user_map.raw) == ["u1", "u3"] and list(c.item_map.raw) == ["i2", "i5"]
    assert c.user.tolist() == [1, 0] and c.item.tolist() == [1, 0]


def test_binarize():
    inter = make([(0, 0), (0, 1), (1, 1), (1, 2)], rating=np.array([1.0, 4.0, 3.5, 5.0]))
    pos = binarize(inter, 3.5)
    assert pos.timestamp.tolist() == [1, 2, 3]
    assert pos.rating is None
    assert pos.filter_report.rows_removed == 1 and pos.filter_report.users_removed == 0
    assert binarize(inter, 4.0, keep_rating=True).rating.tolist() == [4.0, 5.0]
    assert inter.rating is not None and len(inter) == 4  # input untouched


def test_binarize_without_rating_raises():
    with pytest.raises(DataError, match="rating"):
        binarize(make([(0, 0)]), 3.0)


def test_deduplicate():
    inter = make([(0, 1), (0, 1), (1, 0), (0, 1)], weight=np.array([1.0, 2.0, 3.0, 4.0]))
    last = deduplicate(inter)
    assert list(zip(last.user.tolist(), last.item.tolist())) == [(0, 1), (1, 0)]
    assert last.timestamp.tolist() == [3, 2]
    assert deduplicate(inter, "sum").weight.tolist() == [7.0, 3.0]
    assert last.filter_report.rows_removed == 2
    with pytest.raises(DataError):
        deduplicate(inter, "error")
