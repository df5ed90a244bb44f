"""RecGraph: stable edge ids across every representation, normalisation, social part."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrec.data import DataError, Interactions, RecGraph


def make_social(src, dst, num_users: int, weight=None):
    """SocialEdges when that module exists, else a stand-in with the same attributes."""
    try:
        from graphrec.data.social import SocialEdges
    except ImportError:
        return types.SimpleNamespace(src=np.asarray(src), dst=np.asarray(dst),
                                     weight=weight, num_users=num_users)
    return SocialEdges(src, dst, weight, num_users)


@st.composite
def rec_graphs(draw, with_social: bool = True) -> RecGraph:
    """Random graphs with repeated pairs, isolated nodes, weights and maybe social edges."""
    nu = draw(st.integers(1, 7))
    ni = draw(st.integers(1, 7))
    pairs = draw(st.lists(st.tuples(st.integers(0, nu - 1), st.integers(0, ni - 1)), max_size=30))
    u = np.array([p[0] for p in pairs], dtype=np.int64)
    i = np.array([p[1] for p in pairs], dtype=np.int64)
    weight = np.arange(1, len(pairs) + 1, dtype=np.float32)
    inter = Interactions.from_arrays(u, i, num_users=nu, num_items=ni, weight=weight)
    social = None
    if with_social and draw(st.booleans()):
        links = draw(st.lists(st.tuples(st.integers(0, nu - 1), st.integers(0, nu - 1)),
                              max_size=15, unique=True))
        links = [(a, b) for a, b in links if a != b]
        social = make_social([a for a, _ in links], [b for _, b in links], nu,
                             weight=np.arange(1, len(links) + 1, dtype=np.float32))
    return RecGraph(inter, social=social, weighted=draw(st.booleans()))


def pairs_of(users, items) -> list[tuple[int, int]]:
    return list(zip(np.asarray(users).tolist(), np.asarray(items).tolist()))


@settings(max_examples=50, deadline=None)
@given(rec_graphs(), st.randoms(use_true_random=False))
def test_an_edge_mask_selects_the_same_pairs_everywhere(g: RecGraph, rnd) -> None:
    u, i = g.edges()
    num_e = g.num_edges
    assert num_e == len(set(pairs_of(u, i)))  # repeated pairs merged into one edge
    mask = np.array([rnd.random() < 0.5 for _ in range(num_e)], dtype=bool)
    expected = sorted(pairs_of(u[mask], i[mask]))

    # ui: edge e is the e-th stored entry.
    rows = np.repeat(np.arange(g.num_users), np.diff(g.ui.indptr))
    assert sorted(pairs_of(rows[mask], g.ui.indices[mask])) == expected

    # iu: the stored entry p is edge iu_edge_id[p].
    iu_rows = np.repeat(np.arange(g.num_items), np.diff(g.iu.indptr))
    iu_mask = mask[g.iu_edge_id]
    assert sorted(pairs_of(g.iu.indices[iu_mask], iu_rows[iu_mask])) == expected
    np.testing.assert_array_equal(g.iu.data, g.ui.data[g.iu_edge_id])

    tg = g.to_torch()
    t_mask = torch.from_numpy(mask)
    assert sorted(pairs_of(*tg.edge_index[:, t_mask].numpy())) == expected

    # item_to_user: destinations users, sources items.
    a = tg.item_to_user
    assert (a.num_src, a.num_dst) == (g.num_items, g.num_users)
    src, dst = a.edge_index()[:, a.mask_to_stored(t_mask)].numpy()
    assert sorted(pairs_of(dst, src)) == expected
    # user_to_item: destinations items, sources users.
    b = tg.user_to_item
    assert (b.num_src, b.num_dst) == (g.num_users, g.num_items)
    src, dst = b.edge_index()[:, b.mask_to_stored(t_mask)].numpy()
    assert sorted(pairs_of(src, dst)) == expected

    # Weights travel with the edges.
    for adj in (a, b):
        np.testing.assert_array_equal(adj.to_edge_order(adj.weight).numpy(), g.ui.data)
    # The homogeneous view doubles the edges; a mask m becomes [m, m].
    both = g.bipartite_edge_index()[:, np.concatenate([mask, mask])]
    assert sorted(pairs_of(both[0, : mask.sum()], both[1, : mask.sum()] - g.num_users)) == expected


@settings(max_examples=50, deadline=None)
@given(rec_graphs(), st.randoms(use_true_random=False))
def test_social_edge_ids_are_stable(g: RecGraph, rnd) -> None:
    if g.social is None:
        assert g.to_torch().social is None
        with pytest.raises(DataError, match="no social graph"):
            g.social_edges()
        return
    s, d = g.social_edges()
    mask = np.array([rnd.random() < 0.5 for _ in range(g.num_social_edges)], dtype=bool)
    expected = sorted(pairs_of(s[mask], d[mask]))
    adj = g.to_torch().social
    assert adj.num_edges == g.num_social_edges
    src, dst = adj.edge_index()[:, adj.mask_to_stored(torch.from_numpy(mask))].numpy()
    assert sorted(pairs_of(src, dst)) == expected
    np.testing.assert_array_equal(adj.to_edge_order(adj.weight).numpy(), g.social.data)
    # Destination-major: each user's segment holds the users that point at it.
    key = (adj.edge_index()[1] * g.num_users + adj.edge_index()[0]).tolist()
    assert key == sorted(key)


def test_repeated_pairs_are_merged_with_weights_added() -> None:
    inter = Interactions.from_arrays([0, 1, 0, 0], [2, 0, 2, 1], num_items=3,
                                     weight=[1.0, 2.0, 4.0, 8.0])
    g = RecGraph(inter, weighted=True)
    assert g.num_edges == 3
    dense = g.ui.toarray()
    assert dense[0, 2] == 5.0 and dense[1, 0] == 2.0 and dense[0, 1] == 8.0
    assert (RecGraph(inter).ui.toarray() > 0).sum() == 3
    np.testing.assert_array_equal(RecGraph(inter).ui.data, np.ones(3))


def dense_normalized(g: RecGraph) -> np.ndarray:
    """D^-1/2 A D^-1/2 of the binary bipartite adjacency, written out densely."""
    n = g.num_nodes
    a = np.zeros((n, n))
    u, i = g.edges()
    a[u, g.num_users + i] = 1.0
    a[g.num_users + i, u] = 1.0
    deg = a.sum(axis=1)
    with np.errstate(divide="ignore"):
        inv = np.where(deg > 0, 1.0 / np.sqrt(deg), 0.0)
    return inv[:, None] * a * inv[None, :]


def test_normalized_adjacency_matches_a_dense_computation() -> None:
    # User 3 and item 4 have no edges; weights must not change the normalisation.
    inter = Interactions.from_arrays([0, 0, 1, 2, 2, 2], [0, 1, 1, 0, 2, 3],
                                     num_users=4, num_items=5, weight=[3, 1, 2, 5, 1, 1])
    g = RecGraph(inter, weighted=True)
    norm = g.normalized_adjacency()
    assert norm.shape == (g.num_nodes, g.num_nodes)
    dense = norm.toarray()
    assert np.isfinite(dense).all()
    np.testing.assert_allclose(dense, dense_normalized(g), rtol=1e-6)
    assert not dense[3].any() and not dense[g.num_users + 4].any()
    torch.testing.assert_close(g.to_torch().norm_adj.to_dense(),
                               torch.from_numpy(dense).float())


@settings(max_examples=30, deadline=None)
@given(rec_graphs(with_social=False))
def test_normalized_adjacency_on_random_graphs(g: RecGraph) -> None:
    np.testing.assert_allclose(g.normalized_adjacency().toarray(), dense_normalized(g),
                               rtol=1e-5, atol=1e-7)


def test_graph_without_interactions() -> None:
    g = RecGraph(Interactions.from_arrays([], [], num_users=2, num_items=3))
    assert g.num_edges == 0
    tg = g.to_torch()
    assert tg.edge_index.shape == (2, 0)
    assert tg.item_to_user.rowptr.tolist() == [0, 0, 0]
    assert not tg.norm_adj.to_dense().any()


def test_social_graph_must_use_the_same_users() -> None:
    inter = Interactions.from_arrays([0, 1], [0, 0], num_users=3)
    with pytest.raises(DataError, match="social edges are over 2 users"):
        RecGraph(inter, social=make_social([0], [1], num_users=2))
    stand_in = types.SimpleNamespace(src=np.array([0]), dst=np.array([5]), weight=None,
                                     num_users=3)
    with pytest.raises(DataError, match=r"social edge dst users must lie in \[0, 3\)"):
        RecGraph(inter, social=stand_in)


def test_degrees_and_repr() -> None:
    inter = Interactions.from_arrays([0, 0, 2], [1, 0, 1], num_users=3, num_items=3)
    g = RecGraph(inter, social=make_social([0, 2], [2, 0], 3))
    assert g.user_degree().tolist() == [2, 0, 1]
    assert g.item_degree().tolist() == [1, 2, 0]
    assert "3 interactions" in repr(g) and "2 social edges" in repr(g)
