import numpy as np
import pytest
import torch

from graphrec.data import Interactions, RecGraph
from graphrec.evaluate import Evaluator
from graphrec.models.graph_filter import GFCF, IdealLowPassFilter, LinearFilter
from graphrec.models.scoring_model import NotFittedError


def random_graph(seed=0, users=40, items=30, edges=260):
    rng = np.random.default_rng(seed)
    inter = Interactions.from_arrays(rng.integers(0, users, edges), rng.integers(0, items, edges),
                                     num_users=users + 2, num_items=items + 2)  # isolated nodes too
    return RecGraph(inter)


def dense_gfcf(graph, rank, alpha, linear=1.0, a=0.5, b=0.5):
    """GF-CF computed densely in float64 from its definition, with an exact SVD, over
    R~ = D_U^-a R D_I^-b scaled to unit spectral norm."""
    r = (graph.ui.toarray() > 0).astype(np.float64)
    du, di = r.sum(1), r.sum(0)
    su = np.where(du > 0, np.maximum(du, 1) ** -a, 0)
    si = np.where(di > 0, np.maximum(di, 1) ** -b, 0)
    rn = su[:, None] * r * si[None, :]
    rn /= np.linalg.norm(rn, 2)
    out = linear * r @ rn.T @ rn
    if rank:
        _, _, vt = np.linalg.svd(rn)
        v = vt[:rank].T
        unscale = np.where(di > 0, np.maximum(di, 1) ** b, 0)
        out = out + alpha * (r * si[None, :]) @ v @ v.T * unscale[None, :]
    return out


@pytest.mark.parametrize("model_fn,rank,alpha,linear,norms", [
    (lambda g: GFCF(g, rank=6, ideal_weight=0.3, svd_iters=10), 6, 0.3, 1.0, (0.5, 0.5)),
    (lambda g: GFCF(g, rank=4, ideal_weight=1.5, linear_weight=0.5, svd_iters=10), 4, 1.5, 0.5,
     (0.5, 0.5)),
    (lambda g: LinearFilter(g), 0, 0.0, 1.0, (0.5, 0.5)),
    (lambda g: IdealLowPassFilter(g, rank=5, svd_iters=10), 5, 1.0, 0.0, (0.5, 0.5)),
    # Generalised normalisations: the spectral scaling matters to the mix of the two parts.
    (lambda g: GFCF(g, rank=6, ideal_weight=0.3, svd_iters=10, user_norm=0.3, item_norm=0.4),
     6, 0.3, 1.0, (0.3, 0.4)),
    (lambda g: LinearFilter(g, user_norm=0.0, item_norm=0.7), 0, 0.0, 1.0, (0.0, 0.7)),
    (lambda g: IdealLowPassFilter(g, rank=5, svd_iters=10, user_norm=0.6, item_norm=0.4),
     5, 1.0, 0.0, (0.6, 0.4)),
])
def test_scores_match_dense_reference(model_fn, rank, alpha, linear, norms):
    graph = random_graph()
    model = model_fn(graph).fit()
    users = torch.arange(graph.num_users)
    got = model.score_users(users).numpy()
    expect = dense_gfcf(graph, rank, alpha, linear, *norms)
    assert got.shape == (graph.num_users, graph.num_items) and got.dtype == np.float32
    np.testing.assert_allclose(got, expect, atol=2e-5)
    # Any subset of users, in any order, gets the same rows.
    sub = torch.tensor([5, 0, 41, 5])
    np.testing.assert_allclose(model.score_users(sub).numpy(), got[sub.numpy()], atol=1e-6)


def test_not_fitted_bad_args_and_out_of_range_users():
    graph = random_graph()
    with pytest.raises(NotFittedError):
        GFCF(graph, rank=4).score_users(torch.tensor([0]))
    with pytest.raises(ValueError, match="rank"):
        GFCF(graph, rank=1000)
    with pytest.raises(ValueError, match="rank"):
        GFCF(graph, rank=0, ideal_weight=0.3)
    with pytest.raises(ValueError, match="switched off"):
        GFCF(graph, rank=0, ideal_weight=0.0, linear_weight=0.0)
    with pytest.raises(ValueError, match="user_norm"):
        GFCF(graph, rank=4, user_norm=-0.1)
    with pytest.raises(ValueError, match="item_norm"):
        LinearFilter(graph, item_norm=float("nan"))
    model = GFCF(graph, rank=4).fit()
    with pytest.raises(IndexError, match="user indices"):
        model.score_users(torch.tensor([graph.num_users]))
    with pytest.raises(IndexError, match="out of range"):
        model.recommend([-1], raw_ids=False)


def test_state_dict_round_trip_and_recommend():
    graph = random_graph()
    model = GFCF(graph, rank=5, svd_iters=8).fit()
    fresh = GFCF(graph, rank=5, svd_iters=8)
    fresh.load_state_dict(model.state_dict())
    users = torch.arange(graph.num_users)
    torch.testing.assert_close(fresh.score_users(users), model.score_users(users))
    raw_user = graph.user_map.raw[3]
    frame = model.recommend([raw_user], k=5)
    seen = set(graph.item_map.raw[graph.ui[3].indices])
    assert len(frame) == 5 and not seen & set(frame["item"])
    assert frame["score"].is_monotonic_decreasing


def test_evaluator_scores_models_like_given_scores():
    """The Evaluator's scoring path gives the metrics of the same scores handed in
    through the embedding path (scores = U @ I.T with I the identity)."""
    graph = random_graph(seed=2)
    rng = np.random.default_rng(5)
    target = Interactions.from_arrays(rng.integers(0, 40, 80), rng.integers(0, 30, 80),
                                      num_users=graph.num_users, num_items=graph.num_items)
    model = GFCF(graph, rank=4, svd_iters=8).fit()
    ev = Evaluator(exclude=[graph], ks=(5, 10), memory_budget_mb=0.01)  # several batches
    got = ev.evaluate(model, target)
    scores = model.score_users(torch.arange(graph.num_users))
    ref = ev.evaluate_embeddings(scores, torch.eye(graph.num_items), target)
    for key in ("recall@5", "ndcg@10", "precision@10", "mrr@10", "coverage@5"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12)
