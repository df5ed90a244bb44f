"""The attention layers accept PyG's call habits: keywords, return_attention_weights, size."""

from __future__ import annotations

import pytest
import torch
import torch_geometric.nn as pyg

from graphrec.data.adjacency import Adjacency
from graphrec.nn import DotProductAttentionConv, GATConv, GATv2Conv, LightAttentionConv

N, F_IN, C, H = 10, 6, 4, 2


def _x(n: int = N, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, F_IN, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("ours_cls, ref_cls", [(GATConv, pyg.GATConv), (GATv2Conv, pyg.GATv2Conv)])
def test_keyword_edge_index_and_attention_weights_match_pyg(graph_factory, ours_cls, ref_cls):
    ei = graph_factory(N, N, 30, isolated=1, self_loops=2)
    ours, ref = ours_cls(F_IN, C, heads=H), ref_cls(F_IN, C, heads=H)
    ref.load_state_dict(ours.state_dict())
    x = _x()
    out, (ours_ei, ours_alpha) = ours(x, edge_index=ei, return_attention_weights=True)
    ref_out, (ref_ei, ref_alpha) = ref(x, edge_index=ei, return_attention_weights=True)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-4)
    assert ours_alpha.shape[1] == H
    # PyG drops the input's self-loops and appends one per node; graphrec keeps every
    # input edge (a replaced loop gets weight 0) and appends the same loops: compare by pair.
    ours_w = {tuple(p): a for p, a in zip(ours_ei.t().tolist(), ours_alpha.tolist()) if max(a) > 0}
    ref_w = {tuple(p): a for p, a in zip(ref_ei.t().tolist(), ref_alpha.tolist())}
    assert ours_w.keys() == ref_w.keys()
    for pair, weights in ref_w.items():
        assert ours_w[pair] == pytest.approx(weights, abs=1e-5)


def test_attention_weights_from_an_adjacency_are_in_edge_id_order(graph_factory):
    ei = graph_factory(N, N, 30)
    conv = GATConv(F_IN, C, heads=H, add_self_loops=False)
    _, (from_adj, alpha_adj) = conv(_x(), Adjacency.from_edge_index(ei, N), return_attention_weights=True)
    _, (from_ei, alpha_ei) = conv(_x(), ei, return_attention_weights=True)
    assert torch.equal(from_adj, ei) and torch.equal(from_ei, ei)
    torch.testing.assert_close(alpha_adj, alpha_ei)


def test_graph_given_twice_or_not_at_all_is_an_error(graph_factory):
    ei = graph_factory(N, N, 20)
    conv = GATConv(F_IN, C)
    with pytest.raises(TypeError, match="once"):
        conv(_x(), ei, edge_index=ei)
    with pytest.raises(TypeError, match="missing the graph"):
        conv(_x())


def test_bipartite_without_destination_features_needs_size(graph_factory):
    n_src, n_dst = 9, 6
    ei = graph_factory(n_src, n_dst, 20, isolated=2)  # the last two destinations have no edges
    ours = GATConv((F_IN, F_IN), C, heads=H, add_self_loops=False)
    ref = pyg.GATConv((F_IN, F_IN), C, heads=H, add_self_loops=False)
    ref.load_state_dict(ours.state_dict())
    x = (_x(n_src), None)
    with pytest.raises(ValueError, match="size="):
        ours(x, ei)
    out = ours(x, edge_index=ei, size=(n_src, n_dst))
    assert out.shape == (n_dst, H * C)  # destinations without edges are kept
    torch.testing.assert_close(out, ref(x, ei, size=(n_src, n_dst)), atol=1e-5, rtol=1e-4)


def test_light_attention_takes_edge_index_and_size(graph_factory):
    n_src, n_dst = 8, 5
    ei = graph_factory(n_src, n_dst, 15, isolated=1)
    conv = LightAttentionConv(4, attention=False)
    x = (torch.randn(n_src, 4), None)
    with pytest.raises(ValueError, match="size="):
        conv(x, ei)
    out = conv(x, edge_index=ei, size=(n_src, n_dst))
    assert out.shape == (n_dst, 4)
    torch.testing.assert_close(out, conv(x, Adjacency.from_edge_index(ei, (n_src, n_dst))))


def test_dot_product_attention_takes_pyg_keywords(graph_factory):
    ei = graph_factory(N, N, 25)
    conv = DotProductAttentionConv(F_IN, C, heads=H)
    out, (edges, alpha) = conv(_x(), edge_index=ei, return_attention_weights=True)
    assert torch.equal(edges, ei) and alpha.shape == (ei.size(1), H)
    torch.testing.assert_close(out, conv(_x(), ei))
