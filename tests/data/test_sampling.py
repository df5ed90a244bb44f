"""Negative sampling: never a positive, right distribution, reproducible, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from graphrec.data.errors import DataError
from graphrec.data.graph import RecGraph
from graphrec.data.interactions import Interactions
from graphrec.data.sampling import NegativeSampler


def small(seed: int = 0, n_users: int = 30, n_items: int = 25, n_rows: int = 300) -> Interactions:
    rng = np.random.default_rng(seed)
    return Interactions.from_arrays(rng.integers(0, n_users, n_rows), rng.integers(0, n_items, n_rows),
                                    num_users=n_users, num_items=n_items)


def positive_sets(inter: Interactions) -> list[set[int]]:
    sets: list[set[int]] = [set() for _ in range(inter.num_users)]
    for u, i in zip(inter.user.tolist(), inter.item.tolist()):
        sets[u].add(i)
    return sets


@pytest.mark.parametrize("mode", ["uniform", "popularity"])
@pytest.mark.parametrize("max_rounds", [0, 8])
def test_never_samples_a_positive(mode, max_rounds):
    inter = small()
    pos = positive_sets(inter)
    sampler = NegativeSampler(inter, mode=mode, seed=3, max_rounds=max_rounds)
    users = np.repeat(np.arange(inter.num_users), 20)
    neg = sampler.sample(users, num_negatives=10)
    assert neg.shape == (len(users), 10) and neg.dtype == np.int64
    for u, row in zip(users.tolist(), neg.tolist()):
        assert not pos[u] & set(row)
        assert all(0 <= i < inter.num_items for i in row)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 6)), max_size=30),
       mode=st.sampled_from(["uniform", "popularity"]), seed=st.integers(0, 100))
def test_never_samples_a_positive_property(pairs, mode, seed):
    u = np.array([p[0] for p in pairs], dtype=np.int64)
    i = np.array([p[1] for p in pairs], dtype=np.int64)
    inter = Interactions.from_arrays(u, i, num_users=6, num_items=7)
    pos = positive_sets(inter)
    sampler = NegativeSampler(inter, mode=mode, seed=seed)
    users = np.array([x for x in range(6) if len(pos[x]) < 7], dtype=np.int64)
    neg = sampler.sample(users, num_negatives=5)
    for x, row in zip(users.tolist(), neg.tolist()):
        assert not pos[x] & set(row)


def expected_probs(inter: Interactions, user: int, mode: str, alpha: float = 0.75,
                   smoothing: float = 1.0) -> np.ndarray:
    """The documented distribution over items for one user, computed plainly."""
    pos = positive_sets(inter)
    degree = np.array([sum(i in p for p in pos) for i in range(inter.num_items)], dtype=float)
    w = np.ones(inter.num_items) if mode == "uniform" else (degree + smoothing) ** alpha
    w[list(pos[user])] = 0.0
    return w / w.sum()


@pytest.mark.parametrize("mode", ["uniform", "popularity"])
@pytest.mark.parametrize("max_rounds", [0, 8])
def test_distribution(mode, max_rounds):
    # Skewed item popularity so that the two modes differ clearly.
    rng = np.random.default_rng(1)
    items = np.minimum(rng.zipf(1.6, 2000) - 1, 19)
    inter = Interactions.from_arrays(rng.integers(1, 200, 2000), items, num_users=200, num_items=20)
    inter = Interactions.from_arrays(np.concatenate([inter.user, [0, 0, 0]]),
                                     np.concatenate([inter.item, [0, 5, 7]]),
                                     num_users=200, num_items=20)
    sampler = NegativeSampler(inter, mode=mode, seed=7, max_rounds=max_rounds)
    n = 40_000
    counts = np.bincount(sampler.sample(np.zeros(n, dtype=np.int64)).ravel(), minlength=20)
    p = expected_probs(inter, 0, mode)
    assert counts[p == 0].sum() == 0
    allowed = p > 0
    assert chisquare(counts[allowed], p[allowed] * n).pvalue > 1e-3
    # The test can tell the two modes apart.
    other = expected_probs(inter, 0, "popularity" if mode == "uniform" else "uniform")
    assert chisquare(counts[allowed], other[allowed] * n).pvalue < 1e-6


def test_zero_degree_items_and_smoothing():
    inter = Interactions.from_arrays([0, 1, 1], [0, 0, 1], num_users=3, num_items=4)
    plain = NegativeSampler(inter, "popularity", seed=0, smoothing=0.0)
    assert np.isin(plain.sample(np.full(2000, 2)), [0, 1]).all()
    smooth = NegativeSampler(inter, "popularity", seed=0)
    assert set(np.unique(smooth.sample(np.full(2000, 2))).tolist()) == {0, 1, 2, 3}
    # User 1's positives cover every drawable item when smoothing is 0.
    with pytest.raises(DataError, match="cover every item"):
        plain.sample(np.array([1]))
    assert set(np.unique(plain.sample(np.full(50, 0))).tolist()) == {1}


def test_reproducible_and_seed_dependent():
    inter = small()
    users = np.arange(30).repeat(5)
    a = NegativeSampler(inter, seed=5).sample(users, 3)
    b = NegativeSampler(inter, seed=5).sample(users, 3)
    c = NegativeSampler(inter, seed=6).sample(users, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # Graph and interactions give the same positives, hence the same draws.
    d = NegativeSampler(RecGraph(inter), seed=5).sample(users, 3)
    assert np.array_equal(a, d)


def test_torch_in_torch_out():
    sampler = NegativeSampler(small(), "popularity", seed=0)
    users = torch.arange(10)
    neg = sampler.sample(users, 4)
    assert isinstance(neg, torch.Tensor) and neg.dtype == torch.int64 and neg.shape == (10, 4)
    assert neg.device == users.device
    assert np.array_equal(neg.numpy(), NegativeSampler(small(), "popularity", seed=0).sample(np.arange(10), 4))


def test_errors():
    inter = Interactions.from_arrays([0, 0, 0, 1], [0, 1, 2, 0], num_users=2, num_items=3)
    sampler = NegativeSampler(inter)
    with pytest.raises(DataError, match=r"user\(s\) \[0\]"):
        sampler.sample(np.array([1, 0]))
    assert np.isin(sampler.sample(np.array([1, 1]), 2), [1, 2]).all()
    with pytest.raises(DataError, match="must lie in"):
        sampler.sample(np.array([2]))
    with pytest.raises(ValueError, match="1-D"):
        sampler.sample(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="mode"):
        NegativeSampler(inter, mode="hard")
    assert sampler.sample(np.array([], dtype=np.int64), 3).shape == (0, 3)


def test_is_positive():
    inter = small()
    sampler = NegativeSampler(inter)
    pos = positive_sets(inter)
    u, i = np.meshgrid(np.arange(30), np.arange(25), indexing="ij")
    got = sampler.is_positive(u.ravel(), i.ravel()).reshape(30, 25)
    want = np.array([[j in pos[x] for j in range(25)] for x in range(30)])
    assert np.array_equal(got, want)


@pytest.mark.parametrize("mode", ["uniform", "popularity"])
def test_draw_follows_weights_without_excluding_positives(mode):
    rng = np.random.default_rng(2)
    items = np.minimum(rng.zipf(1.6, 2000) - 1, 19)
    inter = Interactions.from_arrays(rng.integers(0, 200, 2000), items, num_users=200, num_items=20)
    sampler = NegativeSampler(inter, mode=mode, seed=3)
    n = 40_000
    drawn = sampler.draw(n)
    assert drawn.dtype == np.int64 and drawn.shape == (n,)
    counts = np.bincount(drawn, minlength=20)
    assert chisquare(counts, sampler.weights * n).pvalue > 1e-3
    # The most popular item is a positive of many users, and it is still drawn.
    assert counts[np.argmax(sampler.weights)] > 0
    assert len(sampler.draw(0)) == 0
    with pytest.raises(ValueError, match="n must be"):
        sampler.draw(-1)
