import numpy as np
import pytest
import torch
import torch_geometric.nn as pyg

from graphrec.data.adjacency import Adjacency
from graphrec.nn import LightAttentionConv


def reference(x_src, x_dst, ei, mask, beta, a, b, score, heads, values=None, bias=None):
    """The layer's formula by loops over destinations, in float64; ``x_src``/``x_dst`` are
    what the score compares, ``values`` (default ``x_src``) what is propagated."""
    x_src, x_dst = x_src.double().numpy(), x_dst.double().numpy()
    values = x_src if values is None else values.double().numpy()
    bias = np.zeros(x_src.shape[0]) if bias is None else bias.double().numpy()
    src, dst = ei[0].numpy(), ei[1].numpy()
    keep = np.ones(src.size, bool) if mask is None else mask.numpy()
    n_dst, dim = x_dst.shape[0], x_src.shape[1]
    c, vc = dim // heads, values.shape[1] // heads
    d_src = np.bincount(src[keep], minlength=x_src.shape[0]).astype(float)
    out = np.zeros((n_dst, values.shape[1]))
    alpha = np.zeros((src.size, heads))
    unit = lambda v: v / max(np.linalg.norm(v), 1e-12)  # noqa: E731
    for i in range(n_dst):
        edges = np.flatnonzero((dst == i) & keep)
        if edges.size == 0:
            continue
        scale = edges.size ** -a * sum(d_src[src[e]] ** -b for e in edges)
        query = x_dst[i] if score == "self" else x_src[src[edges]].sum(0)
        for h in range(heads):
            sl = slice(h * c, (h + 1) * c)
            logits = np.array([beta[h] * unit(query[sl]) @ unit(x_src[src[e], sl])
                               - b * np.log(d_src[src[e]]) + bias[src[e]] for e in edges])
            w = np.exp(logits - logits.max())
            w /= w.sum()
            alpha[edges, h] = w
            vs = slice(h * vc, (h + 1) * vc)
            out[i, vs] = scale * (w[:, None] * values[src[edges], vs]).sum(0)
    return out, alpha


@pytest.mark.parametrize("score", ["self", "neighbourhood"])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_loop_reference(score, masked, graph_factory):
    ei = graph_factory(9, 7, 30, seed=1, isolated=1)
    torch.manual_seed(0)
    x_src, x_dst = torch.randn(9, 6), torch.randn(7, 6)
    mask = torch.rand(ei.size(1)) > 0.3 if masked else None
    conv = LightAttentionConv(6, heads=2, score=score, dst_power=0.3, src_power=0.7)
    with torch.no_grad():
        conv.beta.copy_(torch.tensor([2.0, -1.5]))
    out, alpha = conv((x_src, x_dst), ei, edge_mask=mask, return_attention=True)
    want_out, want_alpha = reference(x_src, x_dst, ei, mask, [2.0, -1.5], 0.3, 0.7, score, 2)
    np.testing.assert_allclose(out.detach().numpy(), want_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(alpha.detach().numpy(), want_alpha, rtol=1e-5, atol=1e-7)
    if masked:
        assert (alpha[~mask] == 0).all()


def test_equals_pyg_lgconv_at_zero_beta(graph_factory):
    """At β = 0 and exponents ½, on an undirected graph, the layer is LightGCN's LGConv."""
    ei = graph_factory(12, 12, 40, seed=2)
    ei = torch.unique(torch.cat([ei, ei.flip(0)], 1), dim=1)
    ei = ei[:, ei[0] != ei[1]]
    x = torch.randn(12, 8)
    ours = LightAttentionConv(8, heads=2)
    torch.testing.assert_close(ours(x, ei), pyg.LGConv()(x, ei), rtol=1e-5, atol=1e-6)


def test_static_path_equals_attention_path_in_values_and_gradients(graph_factory):
    ei = graph_factory(10, 8, 35, seed=3)
    mask = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(0)) > 0.3
    x_src, x_dst = torch.randn(10, 4), torch.randn(8, 4)
    conv = LightAttentionConv(4, dst_power=0.2, src_power=0.6, learn_powers=True, normalize=True)

    def run():
        conv.zero_grad()
        xs = x_src.clone().requires_grad_()
        out, alpha = conv((xs, x_dst), ei, edge_mask=mask, return_attention=True)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        return out.detach(), alpha, xs.grad, conv.powers.grad.clone()

    assert not conv.is_static()
    attending = run()
    conv.beta.requires_grad_(False)
    assert conv.is_static()
    static = run()
    for a, b in zip(attending, static):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_gradcheck_all_inputs_and_parameters(graph_factory):
    ei = graph_factory(6, 5, 14, seed=4)
    mask = torch.ones(ei.size(1), dtype=torch.bool)
    mask[:3] = False
    conv = LightAttentionConv(4, heads=2, score="neighbourhood", learn_powers=True).double()
    with torch.no_grad():
        conv.beta.copy_(torch.tensor([1.0, -0.5]))
    x_src = torch.randn(6, 4, dtype=torch.double, requires_grad=True)
    x_dst = torch.randn(5, 4, dtype=torch.double, requires_grad=True)
    beta, powers = conv.beta, conv.powers

    # The parameters enter through the module: torch.func.functional_call substitutes them.
    def g(xs, xd, b, p):
        return torch.func.functional_call(conv, {"beta": b, "powers": p}, ((xs, xd), ei),
                                          {"edge_mask": mask})

    assert torch.autograd.gradcheck(g, (x_src, x_dst, beta.detach().clone().requires_grad_(),
                                        powers.detach().clone().requires_grad_()))


def test_src_degree_makes_a_block_of_destinations_exact(graph_factory):
    ei = graph_factory(10, 9, 40, seed=5)
    mask = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(1)) > 0.3
    x_src, x_dst = torch.randn(10, 4), torch.randn(9, 4)
    conv = LightAttentionConv(4, score="neighbourhood", dst_power=0.4, src_power=0.3)
    with torch.no_grad():
        conv.beta.fill_(1.7)
    full = conv((x_src, x_dst), ei, edge_mask=mask)
    adj = Adjacency.from_edge_index(ei, (10, 9))
    nodes = torch.tensor([1, 4, 8])
    block, positions = adj.select_destinations(nodes)
    degree = torch.bincount(ei[0][mask], minlength=10).float()
    part = conv((x_src, x_dst[nodes]), block.with_stored_ids(),
                edge_mask=adj.mask_to_stored(mask)[positions], src_degree=degree)
    torch.testing.assert_close(part, full[nodes])
    wrong = conv((x_src, x_dst[nodes]), block.with_stored_ids(),
                 edge_mask=adj.mask_to_stored(mask)[positions])
    assert not torch.allclose(wrong, full[nodes])


def test_attention_off_has_no_beta_and_bad_arguments_are_refused(graph_factory):
    conv = LightAttentionConv(4, attention=False)
    assert conv.beta is None and conv.is_static()
    assert [n for n, _ in conv.named_parameters()] == []
    with pytest.raises(ValueError, match="divisible"):
        LightAttentionConv(6, heads=4)
    with pytest.raises(ValueError, match="score"):
        LightAttentionConv(4, score="centroid")
    ei = graph_factory(5, 5, 10)
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        LightAttentionConv(4)(torch.randn(5, 3), ei)
    with pytest.raises(ValueError, match="x_dst"):
        LightAttentionConv(4)((torch.randn(5, 4), None), Adjacency.from_edge_index(ei, 5))
    with pytest.raises(ValueError, match="edge_mask must have shape"):
        LightAttentionConv(4)(torch.randn(5, 4), ei, edge_mask=torch.ones(3, dtype=torch.bool))


@pytest.mark.parametrize("beta", [0.0, 1.3])
def test_separate_score_inputs_and_logit_bias_match_the_reference(beta, graph_factory):
    ei = graph_factory(9, 7, 30, seed=6, isolated=1)
    mask = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(3)) > 0.3
    keys, queries, values = torch.randn(9, 4), torch.randn(7, 4), torch.randn(9, 3)
    bias = torch.randn(9)
    conv = LightAttentionConv(4, dst_power=0.4, src_power=0.6)
    with torch.no_grad():
        conv.beta.fill_(beta)
    out, alpha = conv((values, None), ei, edge_mask=mask, return_attention=True,
                      score_inputs=(keys, queries), logit_bias=bias)
    want_out, want_alpha = reference(keys, queries, ei, mask, [beta], 0.4, 0.6, "self", 1,
                                     values=values, bias=bias)
    np.testing.assert_allclose(out.detach().numpy(), want_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(alpha.detach().numpy(), want_alpha, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="score keys"):
        conv((values, None), ei, score_inputs=(keys[:5], queries))
    with pytest.raises(ValueError, match="logit_bias"):
        conv((values, None), ei, score_inputs=(keys, queries), logit_bias=bias[:3])
