import math

import pytest
import torch
import torch.nn.functional as F

from graphrec.scoring import (
    BilinearScorer,
    CosineScorer,
    DotScorer,
    MLPScorer,
    bce_loss,
    bpr_loss,
    make_scorer,
    sampled_softmax_loss,
)


@pytest.mark.parametrize("scorer", [DotScorer(), CosineScorer(0.5), BilinearScorer(8), MLPScorer(8, 16)])
def test_score_all_equals_pairwise(scorer):
    torch.manual_seed(0)
    if isinstance(scorer, BilinearScorer):
        torch.nn.init.normal_(scorer.weight)
    u, items = torch.randn(5, 8), torch.randn(7, 8)
    full = scorer.score_all(u, items)
    assert full.shape == (5, 7)
    for b in range(5):
        pair = scorer(u[b].expand(7, -1), items)
        torch.testing.assert_close(full[b], pair, rtol=1e-5, atol=1e-5)


def test_bilinear_starts_as_dot():
    u, v = torch.randn(4, 6), torch.randn(4, 6)
    torch.testing.assert_close(BilinearScorer(6)(u, v), DotScorer()(u, v))


def test_losses_by_hand():
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    expected = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(1.0))) / 2
    assert bpr_loss(pos, neg).item() == pytest.approx(expected, rel=1e-6)
    expected_bce = sum(-math.log(torch.sigmoid(p).item()) - math.log(1 - torch.sigmoid(n).item())
                       for p, n in zip(pos, neg)) / 2
    assert bce_loss(pos, neg).item() == pytest.approx(expected_bce, rel=1e-6)


def test_sampled_softmax_is_cross_entropy_on_first_column():
    torch.manual_seed(1)
    pos, neg = torch.randn(6), torch.randn(6, 4)
    logits = torch.cat([pos[:, None], neg], 1) / 0.2
    ref = F.cross_entropy(logits, torch.zeros(6, dtype=torch.long))
    torch.testing.assert_close(sampled_softmax_loss(pos, neg, 0.2), ref)


def test_bpr_with_several_negatives_pairs_each_with_its_positive():
    pos = torch.tensor([3.0, -1.0])
    neg = torch.tensor([[1.0, 2.0], [0.0, -2.0]])
    ref = F.softplus(neg - pos[:, None]).mean()
    torch.testing.assert_close(bpr_loss(pos, neg), ref)


def test_unknown_scorer_is_named():
    with pytest.raises(ValueError, match="unknown scorer 'nope'"):
        make_scorer("nope", 4)
