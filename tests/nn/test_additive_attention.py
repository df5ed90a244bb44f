"""The fused GAT attention+aggregation equals the unfused primitives; gradcheck."""

from __future__ import annotations

import pytest
import torch

from graphrec.data.adjacency import Adjacency
from graphrec.nn import additive_attention, additive_edge_softmax, spmm


def _setup(seed=0, dtype=torch.double):
    g = torch.Generator().manual_seed(seed)
    ei = torch.unique(torch.randint(0, 7, (2, 25), generator=g), dim=1)
    adj = Adjacency.from_edge_index(ei, 7)
    kw = dict(dtype=dtype, generator=g, requires_grad=True)
    a_src, a_dst = torch.randn(7, 2, **kw), torch.randn(7, 2, **kw)
    a_edge, x = torch.randn(adj.num_edges, 2, **kw), torch.randn(7, 2, 3, **kw)
    mask = torch.rand(adj.num_edges, generator=g) > 0.25
    return adj, a_src, a_dst, a_edge, x, mask


def test_equals_softmax_then_spmm():
    adj, a_src, a_dst, a_edge, x, mask = _setup()
    out, alpha = additive_attention(a_src, a_dst, x, adj, a_edge, 0.2, mask)
    ref_alpha = additive_edge_softmax(a_src, a_dst, adj, a_edge, 0.2, mask)
    torch.testing.assert_close(alpha, ref_alpha)
    torch.testing.assert_close(out, spmm(adj, ref_alpha, x))


@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_gradcheck_float64_both_outputs(dropout):
    adj, a_src, a_dst, a_edge, x, mask = _setup(1)

    def f(a, b, c, x):
        torch.manual_seed(0)  # the same dropout mask on every evaluation
        return additive_attention(a, b, x, adj, c, 0.2, mask, dropout)

    assert torch.autograd.gradcheck(f, (a_src, a_dst, a_edge, x))


def test_dropout_keeps_expectation_and_zeroes_weights():
    adj, a_src, a_dst, _, x, _ = _setup(2, torch.float32)
    torch.manual_seed(0)
    outs = torch.stack([additive_attention(a_src, a_dst, x, adj, dropout=0.5)[0]
                        for _ in range(400)])
    mean = outs.mean(0)
    ref = additive_attention(a_src, a_dst, x, adj)[0]
    torch.testing.assert_close(mean, ref, atol=0.25, rtol=0.1)


@pytest.mark.parametrize("use", ["both", "out", "alpha"])
def test_gradients_equal_softmax_then_spmm(use):
    """The fused backward (unused outputs passed as None, logit gradient computed before
    the feature gradient) gives the unfused chain's gradients, whichever outputs are used."""
    adj, a_src, a_dst, a_edge, x, mask = _setup(3)
    inputs = (a_src, a_dst, a_edge, x)
    g = torch.Generator().manual_seed(4)
    w_out = torch.randn(7, 2, 3, dtype=torch.double, generator=g)
    # (E, H) whose transpose is contiguous: the function must not overwrite it in place
    w_alpha = torch.randn(2, adj.num_edges, dtype=torch.double, generator=g).t()
    w_alpha_before = w_alpha.clone()
    keep = {"both": (0, 1), "out": (0,), "alpha": (1,)}[use]

    def grads(out, alpha):
        outputs, weights = (out, alpha), (w_out, w_alpha)
        return torch.autograd.grad([outputs[i] for i in keep], inputs,
                                   [weights[i] for i in keep], allow_unused=True)

    fused = grads(*additive_attention(a_src, a_dst, x, adj, a_edge, 0.2, mask))
    ref_alpha = additive_edge_softmax(a_src, a_dst, adj, a_edge, 0.2, mask)
    ref = grads(spmm(adj, ref_alpha, x), ref_alpha)
    for got, want in zip(fused, ref):
        if want is None:  # x does not reach alpha
            assert got is None or torch.count_nonzero(got) == 0
        else:
            torch.testing.assert_close(got, want)
    torch.testing.assert_close(w_alpha, w_alpha_before, rtol=0, atol=0)


def test_gradcheck_float64_multigraph_and_partial_inputs():
    """Repeated edges take the gathering dot product; inputs that need no gradient (and
    a missing destination term) are skipped head by head."""
    g = torch.Generator().manual_seed(5)
    ei = torch.randint(0, 6, (2, 30), generator=g)
    ei = torch.cat([ei, ei[:, :6]], dim=1)  # some (source, destination) pairs twice
    adj = Adjacency.from_edge_index(ei, 6)
    assert adj.has_duplicate_edges()
    a_src = torch.randn(6, 2, dtype=torch.double, generator=g, requires_grad=True)
    a_edge = torch.randn(adj.num_edges, 2, dtype=torch.double, generator=g)
    x = torch.randn(6, 2, 3, dtype=torch.double, generator=g, requires_grad=True)

    def f(a, x):
        return additive_attention(a, None, x, adj, a_edge, 0.2)

    assert torch.autograd.gradcheck(f, (a_src, x))
