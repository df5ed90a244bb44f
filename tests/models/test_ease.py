import numpy as np
import pytest
import torch

from graphrec.data import Interactions, RecGraph
from graphrec.models import ease as ease_module
from graphrec.models.ease import EASE
from graphrec.models.scoring_model import NotFittedError


def random_graph(seed=0, users=40, items=25, edges=220, weight=None):
    rng = np.random.default_rng(seed)
    pairs = np.unique(np.stack([rng.integers(0, users, edges), rng.integers(0, items, edges)], 1), axis=0)
    w = None if weight is None else np.full(len(pairs), weight, dtype=np.float32)
    inter = Interactions.from_arrays(pairs[:, 0], pairs[:, 1], num_users=users + 2,
                                     num_items=items + 3, weight=w)  # isolated nodes too
    return RecGraph(inter, weighted=weight is not None)


def dense_x(graph):
    x = np.zeros((graph.num_users, graph.num_items))
    u, i = graph.edges()
    x[u, i] = 1.0
    return x


def naive_ease(x, l2):
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    return np.eye(x.shape[1]) - p @ np.diag(1.0 / np.diag(p))


@pytest.mark.parametrize("l2", [2.0, 50.0, 500.0])
@pytest.mark.parametrize("block_bytes", [None, 12 * 28 * 3])  # one block / blocks of 3 rows
def test_weights_and_scores_match_float64_closed_form(monkeypatch, l2, block_bytes):
    if block_bytes is not None:
        monkeypatch.setattr(ease_module, "_BLOCK_BYTES", block_bytes)
    graph = random_graph()
    assert graph.num_items == 28
    x = dense_x(graph)
    ref = naive_ease(x, l2)
    model = EASE(graph, l2=l2).fit()
    b = model.weights.double().numpy()
    scale = np.abs(ref).max()
    np.testing.assert_allclose(b, ref, rtol=1e-4, atol=1e-5 * scale)
    assert np.all(np.diag(b) == 0)
    # Isolated items are neither predicted from nor predictive of anything.
    assert np.all(b[-3:] == 0) and np.all(b[:, -3:] == 0)
    scores = model.score_users(torch.arange(graph.num_users)).double().numpy()
    np.testing.assert_allclose(scores, x @ ref, rtol=1e-4, atol=1e-5 * np.abs(x @ ref).max())
    # A batch in another order gives the same rows.
    users = torch.tensor([5, 0, 41, 17])
    torch.testing.assert_close(model.score_users(users), model.score_users(torch.arange(42))[users])


@pytest.mark.parametrize("item", [0, 7, 24])
def test_each_column_is_a_ridge_regression_on_the_other_items(item):
    l2 = 10.0
    graph = random_graph(3)
    x = dense_x(graph)
    model = EASE(graph, l2=l2).fit()
    others = np.delete(np.arange(graph.num_items), item)
    # min ||x_j - X_{-j} b||^2 + l2 ||b||^2 as least squares on the augmented system.
    a = np.vstack([x[:, others], np.sqrt(l2) * np.eye(len(others))])
    y = np.concatenate([x[:, item], np.zeros(len(others))])
    coef = np.linalg.lstsq(a, y, rcond=None)[0]
    col = model.weights[:, item].double().numpy()
    assert col[item] == 0
    assert np.abs(coef).max() > 1e-2  # the check is not vacuous
    np.testing.assert_allclose(col[others], coef, rtol=1e-4, atol=1e-6)


def test_interaction_values_are_binarised():
    plain = EASE(random_graph(1), l2=20.0).fit()
    weighted_graph = random_graph(1, weight=3.5)
    assert np.all(weighted_graph.ui.data == 3.5)
    weighted = EASE(weighted_graph, l2=20.0).fit()
    torch.testing.assert_close(weighted.weights, plain.weights)
    torch.testing.assert_close(weighted.score_users(torch.arange(10)), plain.score_users(torch.arange(10)))


def test_state_dict_round_trip():
    graph = random_graph(2)
    model = EASE(graph, l2=30.0).fit()
    fresh = EASE(graph, l2=30.0)
    with pytest.raises(NotFittedError):
        fresh.score_users(torch.arange(3))
    fresh.load_state_dict(model.state_dict())
    users = torch.arange(graph.num_users)
    torch.testing.assert_close(fresh.score_users(users), model.score_users(users), rtol=0, atol=0)
    assert set(model.state_dict()) == {"fitted", "weights"}


def test_scoring_before_fit_raises():
    with pytest.raises(NotFittedError, match="fit"):
        EASE(random_graph()).score_users(torch.tensor([0]))


@pytest.mark.parametrize("kwargs", [{"l2": 0.0}, {"l2": -1.0}, {"l2": float("nan")},
                                    {"l2": float("inf")}, {"memory_budget_mb": 0},
                                    {"memory_budget_mb": -5}])
def test_bad_hyper_parameters(kwargs):
    with pytest.raises(ValueError):
        EASE(random_graph(), **kwargs)


def test_refuses_a_matrix_over_the_memory_budget():
    graph = random_graph()  # 28 items: 28 * 28 * 4 = 3136 bytes
    EASE(graph, memory_budget_mb=3136 / 2**20)  # exactly fits
    with pytest.raises(ValueError, match=r"28 x 28.*memory_budget_mb=0.*ItemKNN.*filter"):
        EASE(graph, memory_budget_mb=3000 / 2**20)


def test_recommend_excludes_training_items_and_follows_scores():
    graph = random_graph(4)
    model = EASE(graph, l2=5.0).fit()
    users = [0, 3, 8]
    rec = model.recommend(users, k=5, raw_ids=False)
    scores = model.score_users(torch.tensor(users)).numpy()
    for row, u in enumerate(users):
        got = rec[rec.user == u].sort_values("rank")
        seen = set(graph.ui[u].indices)
        assert len(got) == 5 and not seen & set(got.item)
        s = scores[row].copy()
        s[list(seen)] = -np.inf
        np.testing.assert_allclose(got.score.to_numpy(), np.sort(s)[::-1][:5], rtol=1e-6)
        np.testing.assert_allclose(s[got.item.to_numpy()], got.score.to_numpy(), rtol=1e-6)
