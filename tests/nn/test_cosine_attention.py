import math

import pytest
import torch

from graphrec.nn import CosineAttention


def loop_reference(q, k, beta, mask=None):
    """softmax_j(β cos(q_i, k_j)) one query and one key at a time."""
    out = torch.zeros(q.size(0), k.size(0), dtype=q.dtype)
    for i in range(q.size(0)):
        logits = []
        for j in range(k.size(0)):
            keep = mask is None or bool(mask[i, j])
            cos = float(q[i] @ k[j]) / max(float(q[i].norm()) * float(k[j].norm()), 1e-12)
            logits.append(beta * cos if keep else -math.inf)
        top = max(logits)
        if top == -math.inf:
            continue
        w = [math.exp(x - top) for x in logits]
        for j in range(k.size(0)):
            out[i, j] = w[j] / sum(w)
    return out


@pytest.mark.parametrize("masked", [False, True])
def test_weights_match_a_loop(masked):
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(9, 4, generator=g, dtype=torch.float64)
    mask = torch.rand(5, 9, generator=g) > 0.4 if masked else None
    if masked:
        mask[2] = False  # a query with no keys attends to nothing
    layer = CosineAttention(beta=3.0).double()
    alpha = layer(q, k, mask)
    torch.testing.assert_close(alpha, loop_reference(q, k, 3.0, mask))
    assert not torch.isnan(alpha).any()
    if masked:
        assert float(alpha[2].abs().sum()) == 0.0


def test_aggregate_equals_weights_times_values_dense_and_sparse():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(6, 3, generator=g), torch.randn(8, 3, generator=g)
    values = (torch.rand(8, 11, generator=g) > 0.7).float()
    layer = CosineAttention(beta=2.0)
    ref = loop_reference(q.double(), k.double(), 2.0).float() @ values
    for v in (values, values.to_sparse(), values.to_sparse_csr()):
        torch.testing.assert_close(layer.aggregate(q, k, v), ref, rtol=1e-5, atol=1e-6)


def test_zero_vectors_get_zero_cosine_not_nan():
    q = torch.zeros(2, 3)
    k = torch.randn(4, 3)
    alpha = CosineAttention(beta=10.0)(q, k)
    torch.testing.assert_close(alpha, torch.full((2, 4), 0.25))


def test_gradcheck_inputs_and_beta():
    g = torch.Generator().manual_seed(2)
    q = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    beta = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    layer = CosineAttention().double()
    assert torch.autograd.gradcheck(
        lambda a, b, s: torch.func.functional_call(layer, {"beta": s}, (a, b)), (q, k, beta))


def test_reset_parameters_restores_beta_and_beta_can_be_fixed():
    layer = CosineAttention(beta=4.0)
    with torch.no_grad():
        layer.beta.add_(1.0)
    layer.reset_parameters()
    assert float(layer.beta) == 4.0
    fixed = CosineAttention(beta=4.0, learn_beta=False)
    assert list(fixed.parameters()) == [] and float(fixed.beta) == 4.0


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="share D"):
        CosineAttention()(torch.randn(2, 3), torch.randn(4, 5))
