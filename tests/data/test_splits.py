"""Random, per-user, temporal and leave-one-out splits: partition, leaks, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrec.data.errors import DataError
from graphrec.data.interactions import Interactions
from graphrec.data.splits import (
    Split,
    given_split,
    holdout_valid,
    leave_one_out,
    per_user_split,
    per_user_temporal_split,
    popularity_buckets,
    random_split,
    temporal_split,
    thin_holdout,
)

PARTS = ("train", "valid", "test")


def make(n_users: int, n_items: int, n_rows: int, seed: int, time_range: int = 20) -> Interactions:
    """Unique (user, item) pairs with few distinct timestamps (many ties); the weight
    column holds the row number so rows can be traced through a split."""
    rng = np.random.default_rng(seed)
    n_rows = min(n_rows, n_users * n_items)
    keys = rng.choice(n_users * n_items, size=n_rows, replace=False)
    return Interactions.from_arrays(
        keys // n_items, keys % n_items, num_users=n_users, num_items=n_items,
        timestamp=rng.integers(0, time_range, size=n_rows), weight=np.arange(n_rows))


@st.composite
def interactions(draw) -> Interactions:
    return make(draw(st.integers(1, 12)), draw(st.integers(1, 12)), draw(st.integers(0, 80)),
                draw(st.integers(0, 2**31)), draw(st.sampled_from([1, 3, 50])))


ratios_strategy = st.sampled_from([(0.8, 0.1, 0.1), (0.5, 0.25, 0.25), (0.7, 0.3), (1.0, 0.0, 0.0),
                                   (0.34, 0.33, 0.33), (0.0, 0.5, 0.5)])


def rows(part: Interactions) -> list[int]:
    return part.weight.astype(int).tolist()


def parts(split: Split) -> dict[str, Interactions]:
    return {p: getattr(split, p) for p in PARTS}


def check_partition(inter: Interactions, split: Split) -> None:
    """Every row in exactly one part, rows intact, no (user, item) pair in two parts."""
    ids = [r for p in PARTS for r in rows(getattr(split, p))]
    assert sorted(ids) == list(range(len(inter)))
    assert sum(split.report.sizes.values()) == len(inter)
    for name, part in parts(split).items():
        assert split.report.sizes[name] == len(part)
        r = part.weight.astype(int)
        assert np.array_equal(part.user, inter.user[r]) and np.array_equal(part.item, inter.item[r])
        assert np.array_equal(part.timestamp, inter.timestamp[r])
        assert part.user_map is inter.user_map and part.item_map is inter.item_map
    seen: set[tuple[int, int]] = set()
    for part in parts(split).values():
        pairs = set(zip(part.user.tolist(), part.item.tolist()))
        assert not pairs & seen
        seen |= pairs


def naive_cold(split: Split) -> tuple[dict[str, int], dict[str, int]]:
    tu, ti = set(split.train.user.tolist()), set(split.train.item.tolist())
    users = {p: len(set(getattr(split, p).user.tolist()) - tu) for p in ("valid", "test")}
    items = {p: len(set(getattr(split, p).item.tolist()) - ti) for p in ("valid", "test")}
    return users, items


def expected_per_user_counts(n: int, ratios) -> tuple[int, int]:
    """The documented rule, written out plainly: (valid, test) rows for an n-row user."""
    r = ratios if len(ratios) == 3 else (ratios[0], 0.0, ratios[1])
    test = min(int(np.floor(r[2] * n + 0.5 + 1e-9)), max(n - 1, 0))
    valid = min(int(np.floor(r[1] * n + 0.5 + 1e-9)), max(n - 1 - test, 0))
    return valid, test


SPLITTERS = {
    "random": lambda x, r, s: random_split(x, r, seed=s),
    "per_user": lambda x, r, s: per_user_split(x, r, seed=s),
    "temporal": lambda x, r, s: temporal_split(x, r),
    "per_user_temporal": lambda x, r, s: per_user_temporal_split(x, r),
    "loo_last": lambda x, r, s: leave_one_out(x, "last"),
    "loo_random": lambda x, r, s: leave_one_out(x, "random", seed=s),
    "loo_no_valid": lambda x, r, s: leave_one_out(x, "random", seed=s, valid=False),
}


@pytest.mark.parametrize("name", SPLITTERS)
@settings(max_examples=40, deadline=None)
@given(inter=interactions(), ratios=ratios_strategy, seed=st.integers(0, 3))
def test_partition_determinism_and_cold_report(name, inter, ratios, seed):
    split = SPLITTERS[name](inter, ratios, seed)
    check_partition(inter, split)
    again = SPLITTERS[name](inter, ratios, seed)
    for p in PARTS:
        assert rows(getattr(split, p)) == rows(getattr(again, p))
    users, items = naive_cold(split)
    assert split.report.cold_users == users and split.report.cold_items == items
    assert split.report.policy == "keep" and split.report.dropped == {"valid": 0, "test": 0}


@pytest.mark.parametrize("name", SPLITTERS)
@settings(max_examples=25, deadline=None)
@given(inter=interactions(), ratios=ratios_strategy, seed=st.integers(0, 3))
def test_cold_start_drop_removes_exactly_cold_rows(name, inter, ratios, seed):
    kept = SPLITTERS[name](inter, ratios, seed)
    split = {"random": lambda: random_split(inter, ratios, seed=seed, cold_start="drop"),
             "per_user": lambda: per_user_split(inter, ratios, seed=seed, cold_start="drop"),
             "temporal": lambda: temporal_split(inter, ratios, cold_start="drop"),
             "per_user_temporal": lambda: per_user_temporal_split(inter, ratios, cold_start="drop"),
             "loo_last": lambda: leave_one_out(inter, "last", cold_start="drop"),
             "loo_random": lambda: leave_one_out(inter, "random", seed=seed, cold_start="drop"),
             "loo_no_valid": lambda: leave_one_out(inter, "random", seed=seed, valid=False,
                                                   cold_start="drop"),
             }[name]()
    assert rows(split.train) == rows(kept.train)
    tu, ti = set(kept.train.user.tolist()), set(kept.train.item.tolist())
    for p in ("valid", "test"):
        part = getattr(kept, p)
        warm = [r for r, u, i in zip(rows(part), part.user.tolist(), part.item.tolist())
                if u in tu and i in ti]
        assert rows(getattr(split, p)) == warm
        assert split.report.dropped[p] == len(part) - len(warm)
        assert split.report.cold_users[p] == kept.report.cold_users[p]
        assert split.report.cold_items[p] == kept.report.cold_items[p]
    assert split.report.policy == "drop"


@settings(max_examples=60, deadline=None)
@given(inter=interactions(), ratios=ratios_strategy)
def test_temporal_split_is_strictly_ordered(inter, ratios):
    split = temporal_split(inter, ratios)
    t = {p: getattr(split, p).timestamp for p in PARTS}
    ordered = [t[p] for p in PARTS if len(t[p])]
    for earlier, later in zip(ordered, ordered[1:]):
        assert earlier.max() < later.min()
    # Train holds exactly the rows before the first cut (quantile of the ratios).
    b = int(np.round(ratios[0] * len(inter)))
    if b < len(inter):
        cut = np.sort(inter.timestamp)[b]
        assert len(split.train) == int((inter.timestamp < cut).sum())
    else:
        assert len(split.train) == len(inter)


@settings(max_examples=60, deadline=None)
@given(inter=interactions(), ratios=ratios_strategy, seed=st.integers(0, 3))
def test_per_user_splits_follow_the_count_rule(inter, ratios, seed):
    for split in (per_user_split(inter, ratios, seed=seed), per_user_temporal_split(inter, ratios)):
        for u, n in enumerate(inter.user_degrees()):
            valid, test = expected_per_user_counts(int(n), ratios)
            assert (split.valid.user == u).sum() == valid
            assert (split.test.user == u).sum() == test
            assert (split.train.user == u).sum() == n - valid - test
            if n:
                assert (split.train.user == u).sum() >= 1


@settings(max_examples=60, deadline=None)
@given(inter=interactions(), ratios=ratios_strategy)
def test_per_user_temporal_never_trains_on_the_future(inter, ratios):
    split = per_user_temporal_split(inter, ratios)
    for u in np.unique(inter.user):
        # (time, row) orders a user's rows; train < valid < test in that order.
        keys = [[(int(t), r) for t, r in zip(getattr(split, p).timestamp[getattr(split, p).user == u],
                                             rows(getattr(split, p).subset(getattr(split, p).user == u)))]
                for p in PARTS]
        present = [k for k in keys if k]
        for earlier, later in zip(present, present[1:]):
            assert max(earlier) < min(later)


@settings(max_examples=60, deadline=None)
@given(inter=interactions(), valid=st.booleans(), min_n=st.sampled_from([None, 4]))
def test_leave_one_out_rules(inter, valid, min_n):
    split = leave_one_out(inter, "last", valid=valid, min_interactions=min_n)
    need = (3 if valid else 2) if min_n is None else min_n
    for u, n in enumerate(inter.user_degrees()):
        held = n >= need
        assert (split.test.user == u).sum() == int(held)
        assert (split.valid.user == u).sum() == int(held and valid)
        if not held:
            continue
        mine = inter.subset(inter.user == u)
        last = max(zip(mine.timestamp.tolist(), rows(mine)))[1]
        assert rows(split.test.subset(split.test.user == u)) == [last]
        if valid:
            second = sorted(zip(mine.timestamp.tolist(), rows(mine)))[-2][1]
            assert rows(split.valid.subset(split.valid.user == u)) == [second]


def test_random_split_sizes_and_seed_dependence():
    inter = make(200, 100, 5000, seed=1)
    a, b = random_split(inter, seed=0), random_split(inter, seed=1)
    assert (len(a.train), len(a.valid), len(a.test)) == (4000, 500, 500)
    assert rows(a.test) != rows(b.test)
    assert rows(per_user_split(inter, seed=0).test) != rows(per_user_split(inter, seed=1).test)
    assert (rows(leave_one_out(inter, "random", seed=0).test)
            != rows(leave_one_out(inter, "random", seed=1).test))


def test_leave_one_out_random_picks_vary_within_user():
    # One user, 10 rows: over seeds, the test row should not always be the same one.
    inter = Interactions.from_arrays(np.zeros(10), np.arange(10), weight=np.arange(10))
    picks = {rows(leave_one_out(inter, "random", seed=s).test)[0] for s in range(30)}
    assert len(picks) >= 5


def test_holdout_valid_from_split():
    inter = make(50, 40, 800, seed=2)
    base = random_split(inter, (0.9, 0.1), seed=3)
    split = holdout_valid(base, ratio=0.2, seed=4)
    assert rows(split.test) == rows(base.test)
    assert sorted(rows(split.train) + rows(split.valid)) == sorted(rows(base.train))
    for u, n in enumerate(base.train.user_degrees()):
        valid, _ = expected_per_user_counts(int(n), (0.8, 0.2, 0.0))
        assert (split.valid.user == u).sum() == valid
    assert split.report.method.startswith("random(") and "holdout_valid" in split.report.method
    assert split.report.cold_users == naive_cold(split)[0]
    assert rows(holdout_valid(base, 0.2, seed=4).valid) == rows(split.valid)
    with pytest.raises(ValueError, match="already has"):
        holdout_valid(split)


def test_holdout_valid_from_training_interactions():
    inter = make(30, 30, 300, seed=5)
    split = holdout_valid(inter, ratio=0.1)
    assert len(split.test) == 0
    check_partition(inter, split)


def test_errors():
    no_time = Interactions.from_arrays([0, 1], [0, 1])
    for f in (temporal_split, per_user_temporal_split, leave_one_out):
        with pytest.raises(DataError, match="timestamps"):
            f(no_time)
    dup = Interactions.from_arrays([0, 0, 1], [1, 1, 0], timestamp=[1, 2, 3])
    for f in (random_split, per_user_split, temporal_split, per_user_temporal_split, leave_one_out):
        with pytest.raises(DataError, match="deduplicate"):
            f(dup)
    ok = make(5, 5, 10, seed=0)
    for bad in [(0.5, 0.6), (0.5, 0.3, 0.1), (1.2, -0.1, -0.1), (1.0,)]:
        with pytest.raises(ValueError, match="ratios"):
            random_split(ok, bad)
    with pytest.raises(ValueError, match="cold-start"):
        random_split(ok, cold_start="ignore")
    with pytest.raises(ValueError, match="mode"):
        leave_one_out(ok, mode="first")
    with pytest.raises(ValueError, match="min_interactions"):
        leave_one_out(ok, min_interactions=2)


def test_popularity_buckets_by_hand():
    rows = np.array([0, 1, 5, 5, 10])
    # counts of items with rows: 1, 5, 5, 10 → median 5; items up to it in bucket 0
    assert popularity_buckets(rows, (0.5,)).tolist() == [-1, 0, 0, 0, 1]
    assert popularity_buckets(np.zeros(3, dtype=int), (0.5,)).tolist() == [-1, -1, -1]
    with pytest.raises(ValueError, match="quantiles"):
        popularity_buckets(rows, (0.5, 0.5))


def _leaning_split() -> Split:
    """10 rare items with 8 train and 2 test rows each (share 0.2) and one popular item
    with 30 train and 20 test rows (share 0.4); every row its own user."""
    train_items = np.concatenate([np.repeat(np.arange(10), 8), np.full(30, 10)])
    test_items = np.concatenate([np.repeat(np.arange(10), 2), np.full(20, 10)])
    users = np.arange(len(train_items) + len(test_items))

    def part(u, i):
        return Interactions.from_arrays(u, i, num_users=len(users), num_items=11)
    return given_split(part(users[:len(train_items)], train_items),
                       part(users[len(train_items):], test_items))


def test_thin_holdout_brings_the_popular_share_down_to_the_reference():
    split = _leaning_split()
    kept_popular = []
    for seed in range(400):
        thin = thin_holdout(split, quantiles=(0.5,), reference=0.5, seed=seed)
        items = thin.test.item
        assert (np.bincount(items, minlength=11)[:10] == 2).all()  # rare rows all kept
        assert thin.train is split.train and len(thin.valid) == 0
        assert thin.report.sizes["test"] == len(items) and "thin_holdout" in thin.report.method
        kept_popular.append(int((items == 10).sum()))
    # keep probability 0.2 · 30 / (0.8 · 20) = 0.375: 7.5 of 20 rows, share 7.5 / 37.5 = 0.2
    assert np.mean(kept_popular) == pytest.approx(7.5, abs=0.3)
    assert min(kept_popular) < 7.5 < max(kept_popular)


def test_thin_holdout_checks_its_arguments():
    split = _leaning_split()
    with pytest.raises(ValueError, match="reference"):
        thin_holdout(split, quantiles=(0.5,), reference=0.9)
    with pytest.raises(ValueError, match="part"):
        thin_holdout(split, part="train")
    with pytest.raises(ValueError, match="no valid rows"):
        thin_holdout(split, part="valid")
