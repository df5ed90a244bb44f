"""spmm / sddmm against dense references, gradcheck, broadcasting, empty graphs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrec.data.adjacency import Adjacency
from graphrec.nn import sddmm, spmm


def _dense_spmm(ei, w, x, num_dst):
    msg = w.unsqueeze(-1) * x[ei[0]]
    return torch.zeros(num_dst, w.size(1), x.size(2), dtype=x.dtype).index_add_(0, ei[1], msg)


@settings(max_examples=25, deadline=None)
@given(n_src=st.integers(1, 8), n_dst=st.integers(1, 8), e=st.integers(0, 30),
       heads=st.integers(1, 3), k=st.integers(1, 4), seed=st.integers(0, 2**16),
       broadcast=st.booleans(), multi=st.booleans())
def test_spmm_and_sddmm_match_dense(n_src, n_dst, e, heads, k, seed, broadcast, multi):
    g = torch.Generator().manual_seed(seed)
    ei = torch.stack([torch.randint(0, n_src, (e,), generator=g),
                      torch.randint(0, n_dst, (e,), generator=g)])
    if not multi:
        ei = torch.unique(ei, dim=1)
        e = ei.size(1)
    adj = Adjacency.from_edge_index(ei, (n_src, n_dst))
    w = torch.randn(e, heads, generator=g)
    x = torch.randn(n_src, 1 if broadcast else heads, k, generator=g)
    out = spmm(adj, w[adj.edge_id], x)
    torch.testing.assert_close(out, _dense_spmm(ei, w, x.expand(-1, heads, -1), n_dst))
    a = torch.randn(n_dst, heads, k, generator=g)
    scores = sddmm(adj, a, x)
    ref = (a[ei[1]] * x.expand(-1, heads, -1)[ei[0]]).sum(-1)
    torch.testing.assert_close(adj.to_edge_order(scores), ref)


@pytest.mark.parametrize("broadcast", [False, True])
def test_gradcheck_float64(broadcast):
    g = torch.Generator().manual_seed(0)
    ei = torch.stack([torch.randint(0, 6, (15,), generator=g), torch.randint(0, 5, (15,), generator=g)])
    adj = Adjacency.from_edge_index(ei, (6, 5))
    w = torch.randn(15, 2, dtype=torch.double, requires_grad=True)
    x = torch.randn(6, 1 if broadcast else 2, 3, dtype=torch.double, requires_grad=True)
    a = torch.randn(5, 2, 3, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, x: spmm(adj, w, x), (w, x))
    assert torch.autograd.gradcheck(lambda a, x: sddmm(adj, a, x), (a, x))
    # Second use of the same adjacency reuses its cached transposed indices.
    assert adj.source_major() is adj.source_major()


def test_low_precision_computes_in_float32():
    ei = torch.tensor([[0, 1, 2, 2], [1, 1, 0, 1]])
    adj = Adjacency.from_edge_index(ei, 3)
    w = torch.rand(4, 2)
    x = torch.randn(3, 2, 5)
    out = spmm(adj, w.bfloat16(), x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), spmm(adj, w, x), atol=3e-2, rtol=3e-2)


def test_shape_errors():
    adj = Adjacency.from_edge_index(torch.tensor([[0], [1]]), 2)
    with pytest.raises(ValueError):
        spmm(adj, torch.ones(2, 1), torch.ones(2, 1, 3))
    with pytest.raises(ValueError):
        sddmm(adj, torch.ones(2, 1, 3), torch.ones(2, 1, 4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sampled_dot_in_place_equals_a_fresh_sampled_addmm(dtype):
    """Writing the per-edge dot products in place into the caller's buffer gives exactly
    the values of an out-of-place ``sampled_addmm`` on a zero pattern."""
    from graphrec.nn.sparse_matmul import _csr, _sampled_dot

    g = torch.Generator().manual_seed(0)
    ei = torch.unique(torch.randint(0, 40, (2, 300), generator=g), dim=1)
    adj = Adjacency.from_edge_index(ei, 40)
    a = torch.randn(40, 3, 5, generator=g, dtype=dtype)
    b = torch.randn(40, 3, 5, generator=g, dtype=dtype)
    rowptr, col = adj.compressed_indices()
    pattern = _csr(rowptr, col, a.new_zeros(adj.num_edges), (40, 40))
    ref = torch.stack([torch.sparse.sampled_addmm(pattern, a[:, h].contiguous(),
                                                  b[:, h].contiguous().t(), beta=0.0).values()
                       for h in range(3)])
    torch.testing.assert_close(_sampled_dot(adj, a, b), ref, rtol=0, atol=0)


def test_spmm_heads_that_are_contiguous_slices_are_left_intact():
    """A head-major tensor seen as ``(N, H, K)`` has contiguous heads; copying heads
    through a reused buffer must not write into the input."""
    g = torch.Generator().manual_seed(1)
    ei = torch.unique(torch.randint(0, 6, (2, 20), generator=g), dim=1)
    adj = Adjacency.from_edge_index(ei, 6)
    x = torch.randn(3, 6, 4, generator=g, dtype=torch.double).permute(1, 0, 2)
    assert x[:, 0, :].is_contiguous()
    before = x.clone()
    w = torch.rand(ei.size(1), 3, generator=g, dtype=torch.double)
    out = spmm(adj, w[adj.edge_id], x)
    torch.testing.assert_close(out, _dense_spmm(ei, w, before, 6))
    torch.testing.assert_close(x, before, rtol=0, atol=0)
