"""edge_softmax / additive_edge_softmax / gatv2_scores: references, masks, gradcheck."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.utils import softmax as pyg_softmax

from graphrec.data.adjacency import Adjacency
from graphrec.nn import additive_edge_softmax, edge_softmax, gatv2_scores


def _graph(n, e, seed):
    g = torch.Generator().manual_seed(seed)
    ei = torch.stack([torch.randint(0, n, (e,), generator=g), torch.randint(0, n, (e,), generator=g)])
    return ei, Adjacency.from_edge_index(ei, n), g


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 10), e=st.integers(0, 40), heads=st.integers(1, 3),
       seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 1e3]), masked=st.booleans())
def test_edge_softmax_properties(n, e, heads, seed, scale, masked):
    ei, adj, g = _graph(n, e, seed)
    scores = torch.randn(e, heads, generator=g) * scale  # large scores must not overflow
    mask = torch.rand(e, generator=g) > 0.3 if masked else torch.ones(e, dtype=torch.bool)
    alpha = adj.to_edge_order(edge_softmax(scores[adj.edge_id], adj, adj.mask_to_stored(mask)))
    assert torch.isfinite(alpha).all()
    assert torch.all(alpha[~mask] == 0)
    sums = torch.zeros(n, heads).index_add_(0, ei[1], alpha)
    has_in = torch.zeros(n, dtype=torch.bool)
    has_in[ei[1, mask]] = True
    torch.testing.assert_close(sums[has_in], torch.ones(int(has_in.sum()), heads))
    assert torch.all(sums[~has_in] == 0)
    if mask.any():
        ref = pyg_softmax(scores[mask], ei[1, mask], num_nodes=n)
        torch.testing.assert_close(alpha[mask], ref)


def test_edge_softmax_1d_and_gradcheck():
    ei, adj, g = _graph(6, 20, 0)
    s = torch.randn(20, dtype=torch.double, generator=g, requires_grad=True)
    assert edge_softmax(s, adj).shape == (20,)
    mask = torch.rand(20, generator=g) > 0.3
    assert torch.autograd.gradcheck(lambda s: edge_softmax(s, adj, mask), (s,))
    s2 = torch.randn(20, 3, dtype=torch.double, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: edge_softmax(s, adj, mask), (s2,))


def test_additive_edge_softmax_matches_composition_and_gradcheck():
    ei, adj, g = _graph(7, 25, 1)
    dst = adj.dst_index_cached()
    a_src = torch.randn(7, 2, dtype=torch.double, generator=g, requires_grad=True)
    a_dst = torch.randn(7, 2, dtype=torch.double, generator=g, requires_grad=True)
    a_edge = torch.randn(25, 2, dtype=torch.double, generator=g, requires_grad=True)
    mask = torch.rand(25, generator=g) > 0.2
    fused = additive_edge_softmax(a_src, a_dst, adj, a_edge, 0.2, mask)
    z = torch.nn.functional.leaky_relu(a_src[adj.col] + a_dst[dst] + a_edge, 0.2)
    torch.testing.assert_close(fused, edge_softmax(z, adj, mask))
    assert torch.autograd.gradcheck(
        lambda a, b, c: additive_edge_softmax(a, b, adj, c, 0.2, mask), (a_src, a_dst, a_edge))
    assert torch.autograd.gradcheck(lambda a: additive_edge_softmax(a, None, adj), (a_src,))


def test_gatv2_scores_match_dense_and_gradcheck():
    ei, adj, g = _graph(6, 18, 2)
    dst = adj.dst_index_cached()
    kw = dict(dtype=torch.double, generator=g, requires_grad=True)
    xs, xd = torch.randn(6, 2, 3, **kw), torch.randn(6, 2, 3, **kw)
    att, attr, w = torch.randn(2, 3, **kw), torch.randn(18, 4, **kw), torch.randn(6, 4, **kw)
    out = gatv2_scores(xs, xd, att, adj, attr, w, 0.2)
    pre = xs[adj.col] + xd[dst] + (attr @ w.t()).view(-1, 2, 3)
    ref = (torch.nn.functional.leaky_relu(pre, 0.2) * att).sum(-1)
    torch.testing.assert_close(out, ref)
    assert torch.autograd.gradcheck(
        lambda *t: gatv2_scores(*t[:3], adj, t[3], t[4], 0.2), (xs, xd, att, attr, w))
