"""Adjacency: destination-major CSR with edge ids in the caller's order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrec.data import Adjacency


@st.composite
def bipartite_edges(draw) -> tuple[torch.Tensor, int, int]:
    """A random (2, E) edge_index (repeats allowed) with its (num_src, num_dst)."""
    num_src = draw(st.integers(1, 6))
    num_dst = draw(st.integers(1, 6))
    pairs = draw(st.lists(st.tuples(st.integers(0, num_src - 1), st.integers(0, num_dst - 1)),
                          max_size=30))
    edge_index = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T.contiguous()
    return edge_index, num_src, num_dst


@settings(max_examples=60, deadline=None)
@given(bipartite_edges())
def test_storage_is_sorted_by_destination_then_source(case) -> None:
    edge_index, num_src, num_dst = case
    adj = Adjacency.from_edge_index(edge_index, (num_src, num_dst))
    stored = adj.edge_index()
    assert adj.rowptr.numel() == num_dst + 1
    assert adj.num_edges == edge_index.size(1)
    key = (stored[1] * num_src + stored[0]).tolist()
    assert key == sorted(key)
    # Each destination's incoming edges are exactly its rowptr segment.
    np.testing.assert_array_equal(adj.in_degree().numpy(),
                                  np.bincount(edge_index[1].numpy(), minlength=num_dst))
    # edge_id is a permutation that recovers the caller's order.
    assert sorted(adj.edge_id.tolist()) == list(range(adj.num_edges))
    torch.testing.assert_close(stored[:, adj.edge_id.argsort()], edge_index)
    torch.testing.assert_close(adj.to_edge_order(stored.T).T, edge_index)


@settings(max_examples=60, deadline=None)
@given(bipartite_edges(), st.randoms(use_true_random=False))
def test_masks_and_weights_follow_edge_ids(case, rnd) -> None:
    edge_index, num_src, num_dst = case
    num_e = edge_index.size(1)
    weight = torch.arange(num_e, dtype=torch.float32) + 0.5
    mask = torch.tensor([rnd.random() < 0.5 for _ in range(num_e)], dtype=torch.bool)
    adj = Adjacency.from_edge_index(edge_index, (num_src, num_dst), weight=weight)
    stored_mask = adj.mask_to_stored(mask)
    # The stored edges a mask selects are the same (src, dst) pairs, with the same weights.
    picked = adj.edge_index()[:, stored_mask]
    expected = edge_index[:, mask]
    assert sorted(map(tuple, picked.T.tolist())) == sorted(map(tuple, expected.T.tolist()))
    assert sorted(adj.weight[stored_mask].tolist()) == sorted(weight[mask].tolist())
    torch.testing.assert_close(adj.to_edge_order(adj.weight), weight)


def test_sparse_csr_matches_dense_bipartite_matrix() -> None:
    edge_index = torch.tensor([[0, 2, 2, 1], [3, 0, 3, 1]])  # 3 sources, 4 destinations
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0])
    adj = Adjacency.from_edge_index(edge_index, (3, 4), weight=weight)
    assert (adj.num_src, adj.num_dst) == (3, 4)
    dense = torch.zeros(4, 3)
    dense[edge_index[1], edge_index[0]] = weight
    csr = adj.to_sparse_csr()
    assert csr.shape == (4, 3)
    torch.testing.assert_close(csr.to_dense(), dense)
    torch.testing.assert_close(adj.to_sparse_csr(torch.ones(4)).to_dense(), (dense > 0).float())


def test_node_count_defaults_and_integer_types() -> None:
    edge_index = torch.tensor([[0, 4], [1, 2]])
    assert Adjacency.from_edge_index(edge_index).num_dst == 5
    adj = Adjacency.from_edge_index(edge_index, np.int64(6))
    assert (adj.num_src, adj.num_dst) == (6, 6)
    empty = Adjacency.from_edge_index(torch.zeros(2, 0, dtype=torch.long), (2, 3))
    assert empty.num_edges == 0 and empty.rowptr.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("edge_index, num_nodes, message", [
    (torch.tensor([[0, 3], [0, 1]]), (3, 2), r"sources must lie in \[0, 3\), found 0..3"),
    (torch.tensor([[0, 1], [0, 2]]), (3, 2), r"destinations must lie in \[0, 2\), found 0..2"),
    (torch.tensor([[0, -1], [0, 1]]), 4, r"sources must lie in \[0, 4\), found -1..0"),
    (torch.tensor([0, 1, 2]), None, r"shape \(2, E\)"),
])
def test_out_of_range_and_bad_shapes_are_refused(edge_index, num_nodes, message) -> None:
    with pytest.raises(ValueError, match=message):
        Adjacency.from_edge_index(edge_index, num_nodes)


def test_wrong_lengths_are_refused() -> None:
    edge_index = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="weight has 3 entries for 2 edges"):
        Adjacency.from_edge_index(edge_index, 2, weight=torch.ones(3))
    adj = Adjacency.from_edge_index(edge_index, 2)
    with pytest.raises(ValueError, match="edge_mask has 3 entries for 2 edges"):
        adj.mask_to_stored(torch.ones(3, dtype=torch.bool))


def test_select_destinations_and_compact_sources():
    edge_index = torch.tensor([[0, 1, 2, 3, 1, 4], [2, 2, 0, 1, 1, 2]])
    adj = Adjacency.from_edge_index(edge_index, num_nodes=(5, 3))
    sub, positions = adj.select_destinations(torch.tensor([2, 1]))
    assert sub.num_dst == 2 and sub.num_src == 5
    assert sub.rowptr.tolist() == [0, 3, 5]
    assert sorted(sub.col[:3].tolist()) == [0, 1, 4] and sorted(sub.col[3:].tolist()) == [1, 3]
    assert torch.equal(adj.col[positions], sub.col) and torch.equal(adj.edge_id[positions], sub.edge_id)
    compact, sources = sub.compact_sources()
    assert sources.tolist() == [0, 1, 3, 4]
    assert torch.equal(sources[compact.col], sub.col) and compact.num_src == 4
    empty, pos = adj.select_destinations(torch.tensor([], dtype=torch.long))
    assert empty.num_edges == 0 and empty.rowptr.tolist() == [0] and pos.numel() == 0
