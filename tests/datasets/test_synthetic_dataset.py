"""The synthetic dataset: determinism, sizes and the structure it promises."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from graphrec.data.graph import RecGraph
from graphrec.datasets import synthetic

TINY = dict(num_users=50, num_items=40, num_communities=4, avg_degree=6, avg_friends=4)


@pytest.fixture(scope="module")
def default():
    return synthetic()


def arrays(d):
    x = d.interactions
    return [x.user, x.item, x.rating, x.timestamp, d.social.src, d.social.dst]


def test_same_seed_same_arrays():
    a, b = synthetic(seed=3, **TINY), synthetic(seed=3, **TINY)
    for x, y in zip(arrays(a), arrays(b)):
        np.testing.assert_array_equal(x, y)
    assert a.users.equals(b.users) and a.items.equals(b.items)


def test_different_seeds_differ():
    a, b = synthetic(seed=0), synthetic(seed=1)
    assert len(a.interactions) != len(b.interactions) or not np.array_equal(
        a.interactions.item, b.interactions.item)
    assert not np.array_equal(a.users["community"], b.users["community"])


@pytest.mark.parametrize("kwargs", [TINY, dict(num_users=300, num_items=200, avg_degree=12),
                                    dict(num_users=1, num_items=1, num_communities=1,
                                         avg_degree=1, avg_friends=0)])
def test_sizes_honoured(kwargs):
    d = synthetic(**kwargs)
    x = d.interactions
    assert (x.num_users, x.num_items) == (kwargs["num_users"], kwargs["num_items"])
    assert d.social.num_users == kwargs["num_users"]
    assert len(d.users) == kwargs["num_users"] and len(d.items) == kwargs["num_items"]


def test_default_size_and_average_degree(default):
    x = default.interactions
    assert (x.num_users, x.num_items) == (2000, 1500)
    # The mean degree is a target: repeats and the degree cap may pull it down a little.
    assert 0.85 * 30 <= len(x) / x.num_users <= 1.1 * 30
    big = synthetic(num_users=1000, num_items=800, avg_degree=10, seed=2)
    assert 0.85 * 10 <= len(big.interactions) / 1000 <= 1.1 * 10


def test_every_user_has_an_interaction_and_no_pair_repeats(default):
    for d in (default, synthetic(seed=5, **TINY)):
        x = d.interactions
        assert (x.user_degrees() >= 1).all()
        pairs = x.user * x.num_items + x.item
        assert len(np.unique(pairs)) == len(pairs)


def test_user_degrees_are_heavy_tailed_with_cold_users(default):
    deg = default.interactions.user_degrees()
    assert (deg <= 2).sum() >= 10          # cold users exist
    assert deg.max() >= 8 * np.median(deg)  # and very active ones
    assert deg.mean() > np.median(deg)      # right-skewed


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_popularity_is_skewed(seed):
    deg = np.sort(synthetic(seed=seed).interactions.item_degrees())[::-1]
    top = deg[: len(deg) // 10].sum() / deg.sum()
    assert top > 0.4
    uniform = np.sort(synthetic(seed=seed, popularity_exponent=0.0).interactions.item_degrees())[::-1]
    assert uniform[: len(uniform) // 10].sum() / uniform.sum() < top


@pytest.mark.parametrize("homophily", [0.2, 0.5, 0.8, 1.0])
def test_social_homophily_matches_parameter(homophily):
    d = synthetic(homophily=homophily, seed=4)
    comm = d.users["community"].to_numpy()
    same = (comm[d.social.src] == comm[d.social.dst]).mean()
    assert abs(same - homophily) < 0.04


def test_social_ties_are_symmetric_clean_and_sized(default):
    s = default.social
    assert s.is_symmetric()
    assert not (s.src == s.dst).any()
    assert len(np.unique(s.src * s.num_users + s.dst)) == len(s)
    assert 0.85 * 10 <= len(s) / s.num_users <= 1.1 * 10


def test_interactions_follow_communities(default):
    x = default.interactions
    uc = default.users["community"].to_numpy()
    ic = default.items["community"].to_numpy()
    in_comm = (uc[x.user] == ic[x.item]).mean()
    # affinity=0.6 plus friends' (mostly same-community) items, far above chance: the
    # match rate if items were drawn independently of their user's community.
    chance = np.sum(np.bincount(uc[x.user], minlength=10) * np.bincount(ic[x.item], minlength=10))
    chance /= len(x) ** 2
    assert in_comm > 0.5
    assert in_comm > 3 * chance


def test_ratings_and_timestamps(default):
    x = default.interactions
    assert set(np.unique(x.rating).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    uc = default.users["community"].to_numpy()
    ic = default.items["community"].to_numpy()
    match = uc[x.user] == ic[x.item]
    assert x.rating[match].mean() > x.rating[~match].mean() + 0.8
    assert x.timestamp.dtype == np.int64
    assert x.timestamp.min() >= 1_420_070_400
    assert len(np.unique(x.timestamp)) > 0.9 * len(x)


def test_flags_only_change_what_is_returned():
    full = synthetic(seed=7, **TINY)
    bare = synthetic(seed=7, social=False, ratings=False, timestamps=False, **TINY)
    assert bare.social is None
    assert bare.interactions.rating is None and bare.interactions.timestamp is None
    np.testing.assert_array_equal(full.interactions.user, bare.interactions.user)
    np.testing.assert_array_equal(full.interactions.item, bare.interactions.item)


def _recall_at_20(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix) -> float:
    scores = scores.astype(float)
    scores[train.nonzero()] = -np.inf
    top = np.argpartition(-scores, 20, axis=1)[:, :20]
    hits = np.asarray(test[np.arange(test.shape[0])[:, None], top].sum(axis=1)).ravel()
    n = np.asarray(test.sum(axis=1)).ravel()
    return float((hits[n > 0] / np.minimum(n[n > 0], 20)).mean())


def test_personalised_and_social_signals_beat_popularity(default):
    x = default.interactions
    shape = (x.num_users, x.num_items)
    held_out = np.random.default_rng(0).random(len(x)) < 0.2
    train = sp.csr_matrix((np.ones((~held_out).sum()), (x.user[~held_out], x.item[~held_out])), shape)
    test = sp.csr_matrix((np.ones(held_out.sum()), (x.user[held_out], x.item[held_out])), shape)
    pop = np.asarray(train.sum(axis=0)).ravel()
    popularity = _recall_at_20(np.tile(pop, (shape[0], 1)), train, test)
    # Item-item cosine neighbours: the simplest personalised model.
    norm = train.multiply(1 / np.sqrt(np.maximum(pop, 1))).tocsr()
    sim = (norm.T @ norm).toarray()
    np.fill_diagonal(sim, 0)
    item_knn = _recall_at_20(np.asarray(train @ sim), train, test)
    # What a user's friends interacted with (popularity only breaks ties).
    s = default.social
    friends = sp.csr_matrix((np.ones(len(s)), (s.src, s.dst)), (shape[0], shape[0]))
    social = _recall_at_20((friends @ train).toarray() + 1e-6 * pop, train, test)
    assert item_knn > 1.3 * popularity
    assert social > 1.3 * popularity


def test_feeds_recgraph(default):
    g = RecGraph(default.interactions, default.social)
    assert g.num_edges == len(default.interactions)
    assert g.num_social_edges == len(default.social)


@pytest.mark.parametrize("bad", [dict(num_communities=0), dict(num_communities=51),
                                 dict(homophily=1.5), dict(affinity=0.9, social_influence=0.2),
                                 dict(avg_degree=0.5), dict(num_users=0)])
def test_bad_parameters(bad):
    with pytest.raises(ValueError):
        synthetic(**{**TINY, **bad})


def test_a_million_interactions_at_the_asked_density():
    # Its speed (about 1 s per million on a laptop core) is measured by the benchmarks,
    # not asserted here.
    d = synthetic(num_users=40_000, num_items=20_000, num_communities=40, avg_degree=25)
    assert 0.9e6 <= len(d.interactions) <= 1.1e6
