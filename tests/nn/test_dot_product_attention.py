"""DotProductAttentionConv against PyG's TransformerConv; masking, gradcheck."""

from __future__ import annotations

import pytest
import torch
import torch_geometric.nn as pyg
from torch.func import functional_call

from graphrec.data.adjacency import Adjacency
from graphrec.nn import DotProductAttentionConv

N, F_IN, C, H = 12, 6, 4, 3


def _x(n: int = N, f: int = F_IN, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, f, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("beta", [True, False])
@pytest.mark.parametrize("edge_dim", [None, 3])
def test_matches_pyg_transformer_conv(graph_factory, assert_same_as, concat, beta, edge_dim):
    ei = graph_factory(N, N, 40, isolated=2, self_loops=2)
    ea = torch.randn(ei.size(1), 3) if edge_dim else None
    kw = dict(heads=H, concat=concat, beta=beta, edge_dim=edge_dim)
    args = {"edge_attr": ea} if edge_dim else {}
    att, (_, ref_alpha) = assert_same_as(
        DotProductAttentionConv(F_IN, C, **kw), pyg.TransformerConv(F_IN, C, **kw), _x(),
        Adjacency.from_edge_index(ei, N), ei, {**args, "return_attention": True},
        {**args, "return_attention_weights": True})
    torch.testing.assert_close(att, ref_alpha)


def test_bipartite_without_root_weight(graph_factory, assert_same_as):
    n_src, n_dst = 8, 5
    ei = graph_factory(n_src, n_dst, 25)
    kw = dict(heads=2, root_weight=False)
    assert_same_as(DotProductAttentionConv((F_IN, 4), C, **kw),
                   pyg.TransformerConv((F_IN, 4), C, **kw),
                   (_x(n_src), _x(n_dst, 4, seed=2)), ei, ei, strict=False)


def test_mask_equals_removing_edges(graph_factory, assert_same_as):
    ei = graph_factory(N, N, 50)
    ea = torch.randn(ei.size(1), 2)
    mask = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(3)) > 0.4
    mask[ei[1] == 0] = False
    kw = dict(heads=H, edge_dim=2)
    att, (_, ref_alpha) = assert_same_as(
        DotProductAttentionConv(F_IN, C, **kw), pyg.TransformerConv(F_IN, C, **kw), _x(), ei,
        ei[:, mask], {"edge_attr": ea, "edge_mask": mask, "return_attention": True},
        {"edge_attr": ea[mask], "return_attention_weights": True})
    torch.testing.assert_close(att[mask], ref_alpha)
    assert torch.all(att[~mask] == 0)


def test_gradcheck_float64(graph_factory):
    ei = graph_factory(7, 7, 20, isolated=1)
    layer = DotProductAttentionConv(4, 3, heads=2, edge_dim=2, beta=True).double()
    adj = Adjacency.from_edge_index(ei, 7)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    x = torch.randn(7, 4, dtype=torch.double, requires_grad=True)
    ea = torch.randn(ei.size(1), 2, dtype=torch.double, requires_grad=True)

    def f(x, ea, *ps):
        return functional_call(layer, dict(zip(names, ps)), (x, adj), {"edge_attr": ea})

    assert torch.autograd.gradcheck(f, (x, ea, *params))


def test_bfloat16_close_to_float32(graph_factory):
    ei = graph_factory(N, N, 50)
    layer = DotProductAttentionConv(F_IN, C, heads=H)
    x = _x()
    ref = layer(x, ei)
    out = layer.to(torch.bfloat16)(x.bfloat16(), ei)
    torch.testing.assert_close(out.float(), ref, atol=5e-2, rtol=5e-2)


def test_edge_dim_requires_edge_attr(graph_factory):
    with pytest.raises(ValueError, match="edge_attr"):
        DotProductAttentionConv(F_IN, C, edge_dim=2)(_x(), graph_factory(N, N, 10))
