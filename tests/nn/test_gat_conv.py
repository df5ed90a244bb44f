"""GATConv against PyG's GATConv (and DGL's where it imports), masking, attention, dtypes."""

from __future__ import annotations

import pytest
import torch
import torch_geometric.nn as pyg
from torch.func import functional_call

from graphrec.data.adjacency import Adjacency
from graphrec.nn import GATConv, GATv2Conv

N, F_IN, C, H = 12, 6, 4, 3


def _x(n: int = N, f: int = F_IN, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, f, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("add_self_loops", [True, False])
@pytest.mark.parametrize("as_adjacency", [True, False])
def test_homogeneous_matches_pyg(graph_factory, assert_same_as, concat, add_self_loops,
                                 as_adjacency):
    ei = graph_factory(N, N, 40, isolated=2, self_loops=3)
    graph = Adjacency.from_edge_index(ei, N) if as_adjacency else ei
    ours = GATConv(F_IN, C, heads=H, concat=concat, add_self_loops=add_self_loops,
                   residual=True)
    ref = pyg.GATConv(F_IN, C, heads=H, concat=concat, add_self_loops=add_self_loops,
                      residual=True)
    assert_same_as(ours, ref, _x(), graph, ei)


@pytest.mark.parametrize("layer", ["gat", "gatv2"])
def test_multigraph_matches_pyg(graph_factory, assert_same_as, layer):
    # Repeated (src, dst) pairs are separate edges with their own attention weight.
    ei = graph_factory(5, 5, 40, multi=True)
    ei = torch.cat([ei, ei[:, :5]], dim=1)
    ours, ref = ((GATConv, pyg.GATConv) if layer == "gat" else (GATv2Conv, pyg.GATv2Conv))
    assert Adjacency.from_edge_index(ei, 5).has_duplicate_edges()
    assert_same_as(ours(F_IN, C, heads=2), ref(F_IN, C, heads=2), _x(5), ei, ei)


@pytest.mark.parametrize("fill_value", ["mean", 0.5])
def test_edge_features_match_pyg(graph_factory, assert_same_as, fill_value):
    ei = graph_factory(N, N, 40, isolated=1, self_loops=2)
    ea = torch.randn(ei.size(1), 3)
    ours = GATConv(F_IN, C, heads=H, edge_dim=3, fill_value=fill_value)
    ref = pyg.GATConv(F_IN, C, heads=H, edge_dim=3, fill_value=fill_value)
    assert_same_as(ours, ref, _x(), ei, ei, {"edge_attr": ea}, {"edge_attr": ea})


def test_one_dimensional_edge_feature_like_a_rating(graph_factory, assert_same_as):
    ei = graph_factory(N, N, 30)
    rating = torch.randint(1, 6, (ei.size(1),)).float()
    ours = GATConv(F_IN, C, heads=2, edge_dim=1, add_self_loops=False)
    ref = pyg.GATConv(F_IN, C, heads=2, edge_dim=1, add_self_loops=False)
    assert_same_as(ours, ref, _x(), ei, ei, {"edge_attr": rating}, {"edge_attr": rating})


@pytest.mark.parametrize("shared_lin", [True, False])
def test_bipartite_matches_pyg(graph_factory, assert_same_as, shared_lin):
    n_src, n_dst = 9, 5
    ei = graph_factory(n_src, n_dst, 25, isolated=1)
    in_ch = F_IN if shared_lin else (F_IN, 4)
    x = (_x(n_src), _x(n_dst, F_IN if shared_lin else 4, seed=2))
    ours = GATConv(in_ch, C, heads=H, add_self_loops=False, residual=True)
    ref = pyg.GATConv(in_ch, C, heads=H, add_self_loops=False, residual=True)
    assert_same_as(ours, ref, x, Adjacency.from_edge_index(ei, (n_src, n_dst)), ei,
                   ref_kwargs={"size": (n_src, n_dst)})


def test_bipartite_without_destination_features(graph_factory, assert_same_as):
    n_src, n_dst = 9, 5
    ei = graph_factory(n_src, n_dst, 25)
    ours = GATConv(F_IN, C, heads=2, add_self_loops=False)
    ref = pyg.GATConv(F_IN, C, heads=2, add_self_loops=False)
    x = (_x(n_src), None)
    adj = Adjacency.from_edge_index(ei, (n_src, n_dst))
    ref.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(x, adj), ref(x, ei, size=(n_src, n_dst)))


@pytest.mark.parametrize("add_self_loops", [True, False])
@pytest.mark.parametrize("edge_dim", [None, 2])
def test_mask_equals_removing_edges(graph_factory, assert_same_as, add_self_loops, edge_dim):
    ei = graph_factory(N, N, 50, self_loops=2)
    ea = torch.randn(ei.size(1), 2) if edge_dim else None
    mask = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(3)) > 0.4
    mask[ei[1] == 0] = False  # node 0 loses all its incoming edges
    ours = GATConv(F_IN, C, heads=H, add_self_loops=add_self_loops, edge_dim=edge_dim)
    ref = pyg.GATConv(F_IN, C, heads=H, add_self_loops=add_self_loops, edge_dim=edge_dim)
    kw = {"edge_attr": ea} if edge_dim else {}
    ref_kw = {"edge_attr": ea[mask]} if edge_dim else {}
    att, ratt = assert_same_as(ours, ref, _x(), Adjacency.from_edge_index(ei, N), ei[:, mask],
                               {**kw, "edge_mask": mask, "return_attention": True},
                               {**ref_kw, "return_attention_weights": True})
    ref_ei, ref_alpha = ratt
    kept = mask.nonzero().view(-1)
    if add_self_loops:
        kept = kept[ei[0, kept] != ei[1, kept]]
        kept = torch.cat([kept, ei.size(1) + torch.arange(N)])
    torch.testing.assert_close(att[kept], ref_alpha)
    dropped = torch.ones(att.size(0), dtype=torch.bool)
    dropped[kept] = False
    assert torch.all(att[dropped] == 0)


def test_fully_masked_nodes_output_only_bias_and_residual(graph_factory):
    ei = graph_factory(N, N, 40)
    layer = GATConv(F_IN, C, heads=H, add_self_loops=False, residual=True)
    torch.nn.init.normal_(layer.bias)
    x = _x()
    mask = torch.zeros(ei.size(1), dtype=torch.bool)
    out, alpha = layer(x, ei, edge_mask=mask, return_attention=True)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, layer.res(x) + layer.bias)
    assert torch.all(alpha == 0)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters() if p.grad is not None)


def test_attention_sums_to_one_and_is_in_edge_id_order(graph_factory):
    ei = graph_factory(N, N, 60, isolated=3)
    layer = GATConv(F_IN, C, heads=H, add_self_loops=False)
    ref = pyg.GATConv(F_IN, C, heads=H, add_self_loops=False)
    ref.load_state_dict(layer.state_dict())
    mask = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(5)) > 0.3
    _, alpha = layer(_x(), ei, edge_mask=mask, return_attention=True)
    assert alpha.shape == (ei.size(1), H)
    sums = torch.zeros(N, H).index_add_(0, ei[1], alpha)
    has_in = torch.zeros(N, dtype=torch.bool)
    has_in[ei[1, mask]] = True
    torch.testing.assert_close(sums[has_in], torch.ones(int(has_in.sum()), H))
    assert torch.all(sums[~has_in] == 0)
    # PyG returns weights in the order of the edges it was given.
    _, (_, ref_alpha) = ref(_x(), ei[:, mask], return_attention_weights=True)
    torch.testing.assert_close(alpha[mask], ref_alpha)


def test_dropout_only_in_training(graph_factory):
    ei = graph_factory(N, N, 40)
    layer = GATConv(F_IN, C, heads=H, dropout=0.5)
    x = _x()
    layer.eval()
    torch.testing.assert_close(layer(x, ei), layer(x, ei))
    layer.train()
    torch.manual_seed(0)
    a = layer(x, ei)
    torch.manual_seed(1)
    b = layer(x, ei)
    assert not torch.allclose(a, b)


def test_gradcheck_float64(graph_factory):
    ei = graph_factory(7, 7, 20, isolated=1, self_loops=1)
    layer = GATConv(4, 3, heads=2, edge_dim=2, residual=True).double()
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
    layer = GATConv(F_IN, C, heads=H, edge_dim=2)
    ea = torch.randn(ei.size(1), 2)
    x = _x()
    ref = layer(x, ei, edge_attr=ea)
    out = layer.to(torch.bfloat16)(x.bfloat16(), ei, edge_attr=ea.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=5e-2, rtol=5e-2)
    out.float().sum().backward()
    assert layer.lin.weight.grad.dtype == torch.bfloat16


def test_edge_index_and_adjacency_agree(graph_factory):
    ei = graph_factory(N, N, 40)
    layer = GATConv(F_IN, C, heads=H)
    adj = Adjacency.from_edge_index(ei, N)
    torch.testing.assert_close(layer(_x(), ei), layer(_x(), adj))
    # The self-loop graph is built once per Adjacency and reused.
    layer(_x(), adj)
    assert adj.with_self_loops(N) is adj.with_self_loops(N)


def test_wrong_graph_size_is_rejected(graph_factory):
    ei = graph_factory(N, N, 40)
    with pytest.raises(ValueError, match="graph is"):
        GATConv(F_IN, C)(_x(N + 1), Adjacency.from_edge_index(ei, N))
    with pytest.raises(ValueError, match="edge_mask"):
        GATConv(F_IN, C)(_x(), ei, edge_mask=torch.ones(3, dtype=torch.bool))


def test_reset_parameters_reinitialises():
    layer = GATConv(F_IN, C, heads=H, edge_dim=2, residual=True)
    before = [p.detach().clone() for p in layer.parameters()]
    layer.reset_parameters()
    changed = [not torch.equal(a, p) for a, p in zip(before, layer.parameters())]
    assert sum(changed) >= len(before) - 1  # all but the zero bias


def test_matches_dgl_gatconv(graph_factory):
    dgl = pytest.importorskip(
        "dgl", reason="DGL is not importable here (DGL 2.1 loads only with torch <= 2.2.1)")
    from dgl.nn.pytorch import GATConv as DGLGATConv

    ei = graph_factory(N, N, 40)
    ours = GATConv(F_IN, C, heads=H, add_self_loops=False)
    torch.nn.init.normal_(ours.bias)
    ref = DGLGATConv(F_IN, C, num_heads=H, allow_zero_in_degree=True)
    with torch.no_grad():
        ref.fc.weight.copy_(ours.lin.weight)
        ref.attn_l.copy_(ours.att_src)
        ref.attn_r.copy_(ours.att_dst)
        ref.bias.copy_(ours.bias)
    g = dgl.graph((ei[0], ei[1]), num_nodes=N)
    x = _x()
    out, alpha = ours(x, ei, return_attention=True)
    ref_out, ref_alpha = ref(g, x, get_attention=True)
    torch.testing.assert_close(out, ref_out.reshape(N, H * C), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alpha, ref_alpha.squeeze(-1), atol=1e-5, rtol=1e-4)
