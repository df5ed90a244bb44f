"""GATv2Conv against PyG's GATv2Conv; masking, attention, gradcheck, dtypes."""

from __future__ import annotations

import pytest
import torch
import torch_geometric.nn as pyg
from torch.func import functional_call

from graphrec.data.adjacency import Adjacency
from graphrec.nn import GATv2Conv, gatv2_score

N, F_IN, C, H = 12, 6, 4, 3


def _x(n: int = N, f: int = F_IN, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, f, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("add_self_loops", [True, False])
@pytest.mark.parametrize("share_weights", [True, False])
def test_homogeneous_matches_pyg(graph_factory, assert_same_as, concat, add_self_loops,
                                 share_weights):
    ei = graph_factory(N, N, 40, isolated=2, self_loops=3)
    kw = dict(heads=H, concat=concat, add_self_loops=add_self_loops,
              share_weights=share_weights, residual=True)
    assert_same_as(GATv2Conv(F_IN, C, **kw), pyg.GATv2Conv(F_IN, C, **kw), _x(),
                   Adjacency.from_edge_index(ei, N), ei)


@pytest.mark.parametrize("add_self_loops", [True, False])
def test_edge_features_and_bipartite_match_pyg(graph_factory, assert_same_as, add_self_loops):
    n_src, n_dst = 9, 6
    ei = graph_factory(n_src, n_dst, 30, isolated=1)
    ea = torch.randn(ei.size(1), 3)
    kw = dict(heads=H, edge_dim=3, add_self_loops=add_self_loops)
    x = (_x(n_src), _x(n_dst, 5, seed=2))
    assert_same_as(GATv2Conv((F_IN, 5), C, **kw), pyg.GATv2Conv((F_IN, 5), C, **kw), x,
                   ei, ei, {"edge_attr": ea}, {"edge_attr": ea})


def test_mask_equals_removing_edges(graph_factory, assert_same_as):
    ei = graph_factory(N, N, 50)
    ea = torch.randn(ei.size(1), 2)
    mask = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(3)) > 0.4
    mask[ei[1] == 0] = False
    kw = dict(heads=H, edge_dim=2, add_self_loops=False)
    att, (_, ref_alpha) = assert_same_as(
        GATv2Conv(F_IN, C, **kw), pyg.GATv2Conv(F_IN, C, **kw), _x(), ei, ei[:, mask],
        {"edge_attr": ea, "edge_mask": mask, "return_attention": True},
        {"edge_attr": ea[mask], "return_attention_weights": True})
    torch.testing.assert_close(att[mask], ref_alpha)
    assert torch.all(att[~mask] == 0)


def test_chunked_scores_match_single_chunk(graph_factory, monkeypatch, assert_same_as):
    # Force many small chunks (one per few destinations) and compare with PyG again.
    monkeypatch.setattr(gatv2_score, "CHUNK_BYTES", 64)
    ei = graph_factory(N, N, 60, isolated=2)
    ea = torch.randn(ei.size(1), 2)
    kw = dict(heads=2, edge_dim=2, add_self_loops=False)
    assert_same_as(GATv2Conv(F_IN, C, **kw), pyg.GATv2Conv(F_IN, C, **kw), _x(), ei, ei,
                   {"edge_attr": ea}, {"edge_attr": ea})


def test_gradcheck_float64(graph_factory, monkeypatch):
    monkeypatch.setattr(gatv2_score, "CHUNK_BYTES", 64)
    ei = graph_factory(7, 7, 20, isolated=1)
    layer = GATv2Conv(4, 3, heads=2, edge_dim=2, negative_slope=0.3).double()
    adj = Adjacency.from_edge_index(ei, 7)
    mask = torch.ones(ei.size(1), dtype=torch.bool)
    mask[:3] = False
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    x = torch.randn(7, 4, dtype=torch.double, requires_grad=True)
    ea = torch.randn(ei.size(1), 2, dtype=torch.double, requires_grad=True)

    def f(x, ea, *ps):
        return functional_call(layer, dict(zip(names, ps)), (x, adj),
                               {"edge_attr": ea, "edge_mask": mask})

    assert torch.autograd.gradcheck(f, (x, ea, *params))


def test_bfloat16_close_to_float32(graph_factory):
    ei = graph_factory(N, N, 50)
    layer = GATv2Conv(F_IN, C, heads=H)
    x = _x()
    ref = layer(x, ei)
    out = layer.to(torch.bfloat16)(x.bfloat16(), ei)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=5e-2, rtol=5e-2)
