"""Properties of loading and splitting that must hold for any input (hypothesis)."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphrec.data import Interactions
from graphrec.data.idmap import IdMap
from graphrec.data.interactions import load_interactions
from graphrec.data.splits import per_user_split, random_split

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

text_id = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
int_id = st.integers(min_value=0, max_value=2**63 - 1)
pairs = st.one_of(
    st.lists(st.tuples(int_id, int_id), min_size=1, max_size=40, unique=True),
    st.lists(st.tuples(text_id, text_id), min_size=1, max_size=40, unique=True),
)


@FAST
@given(rows=pairs)
def test_a_csv_round_trips_exactly(rows):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "log.csv"
        path.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
        inter = load_interactions(path, duplicates="error")
    back = list(zip(inter.user_map.to_raw(inter.user).tolist(),
                    inter.item_map.to_raw(inter.item).tolist()))
    assert Counter(back) == Counter(rows)


@FAST
@given(rows=pairs)
def test_save_and_load_round_trip(rows):
    u, i = zip(*rows)
    import pandas as pd
    inter = load_interactions(pd.DataFrame({"user": list(u), "item": list(i)}))
    with tempfile.TemporaryDirectory() as d:
        inter.save(d)
        back = Interactions.load(d)
    assert back.user_map == inter.user_map and back.item_map == inter.item_map
    assert np.array_equal(back.user, inter.user) and np.array_equal(back.item, inter.item)


@FAST
@given(values=st.lists(st.one_of(int_id, st.integers(-5, 5)), min_size=1, max_size=60))
def test_id_maps_are_bijections(values):
    idmap, codes = IdMap.from_values(values, "user")
    assert len(idmap) == len(set(values))
    assert idmap.to_raw(codes).tolist() == values
    assert idmap.to_index(idmap.raw).tolist() == list(range(len(idmap)))


ratios = st.tuples(st.floats(0.05, 1), st.floats(0, 1), st.floats(0, 1)).map(
    lambda r: tuple(x / sum(r) for x in r))
logs = st.lists(st.tuples(st.integers(0, 15), st.integers(0, 25)), min_size=1, max_size=120,
                unique=True)


@FAST
@given(rows=logs, r=ratios, seed=st.integers(0, 2**31), split=st.sampled_from(
    [random_split, per_user_split]))
def test_splits_lose_and_duplicate_no_row(rows, r, seed, split):
    u, i = (np.array(x) for x in zip(*rows))
    inter = Interactions.from_arrays(u, i)
    s = split(inter, ratios=r, seed=seed)
    parts = [list(zip(p.user.tolist(), p.item.tolist())) for p in (s.train, s.valid, s.test)]
    together = Counter(pair for part in parts for pair in part)
    assert together == Counter(rows)  # every row exactly once
    assert s.train.user_map is inter.user_map and s.test.item_map is inter.item_map
    if split is per_user_split:  # every user keeps a training row
        assert set(s.train.user.tolist()) == set(u.tolist())


@FAST
@given(rows=logs, seed=st.integers(0, 1000))
def test_splits_are_reproducible(rows, seed):
    u, i = (np.array(x) for x in zip(*rows))
    inter = Interactions.from_arrays(u, i)
    a, b = per_user_split(inter, seed=seed), per_user_split(inter, seed=seed)
    for part in ("train", "valid", "test"):
        assert np.array_equal(getattr(a, part).item, getattr(b, part).item)
