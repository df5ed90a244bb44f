import math

import numpy as np
import pytest
import torch

from graphrec.data import Interactions, RecGraph
from graphrec.models import itemknn as itemknn_module
from graphrec.models.itemknn import ItemKNN
from graphrec.models.scoring_model import NotFittedError


def random_graph(seed=0, users=30, items=20, edges=150, weight=None):
    rng = np.random.default_rng(seed)
    pairs = np.unique(np.stack([rng.integers(0, users, edges), rng.integers(0, items, edges)], 1), axis=0)
    w = None if weight is None else np.full(len(pairs), weight, dtype=np.float32)
    inter = Interactions.from_arrays(pairs[:, 0], pairs[:, 1], num_users=users + 2,
                                     num_items=items + 3, weight=w)  # isolated nodes too
    return RecGraph(inter, weighted=weight is not None)


def naive_itemknn(graph, k, similarity, shrink, alpha):
    """Similarities, neighbour lists and scores by plain Python loops over item pairs."""
    users_of = [set() for _ in range(graph.num_items)]
    items_of = [[] for _ in range(graph.num_users)]
    for u, i in zip(*graph.edges()):
        users_of[int(i)].add(int(u))
        items_of[int(u)].append(int(i))
    n = graph.num_items
    sims = []
    for i in range(n):
        row = {}
        for j in range(n):
            c = len(users_of[i] & users_of[j])
            if i == j or c == 0:
                continue
            di, dj = len(users_of[i]), len(users_of[j])
            if similarity == "cosine":
                row[j] = c / (math.sqrt(di * dj) + shrink)
            else:
                row[j] = c / (di ** alpha * dj ** (1 - alpha) + shrink)
        sims.append(row)
    # Largest first, ties (equal as float32) to the smaller index.
    tops = [sorted(row.items(), key=lambda t: (-np.float32(t[1]), t[0]))[:k] for row in sims]
    scores = np.zeros((graph.num_users, n))
    for u in range(graph.num_users):
        for i in items_of[u]:
            for j, w in tops[i]:
                scores[u, j] += w
    return sims, tops, scores


CASES = [("cosine", 0.0, 0.5), ("cosine", 3.0, 0.5), ("asymmetric", 0.0, 0.2),
         ("asymmetric", 2.5, 0.8), ("asymmetric", 10.0, 1.0), ("asymmetric", 0.0, 0.0)]


@pytest.mark.parametrize("similarity,shrink,alpha", CASES)
@pytest.mark.parametrize("k", [1, 4, 100])
def test_neighbours_and_scores_match_naive_loops(similarity, shrink, alpha, k):
    graph = random_graph(k)
    model = ItemKNN(graph, neighbours=k, similarity=similarity, shrink=shrink, alpha=alpha).fit()
    width = min(k, graph.num_items - 1)
    assert model.neighbour_index.shape == (graph.num_items, width)
    assert model.neighbour_weight.dtype == torch.float32
    sims, tops, scores = naive_itemknn(graph, k, similarity, shrink, alpha)
    index, weight = model.neighbour_index.numpy(), model.neighbour_weight.numpy()
    kept = 0
    for i in range(graph.num_items):
        m = len(tops[i])
        assert m == min(len(sims[i]), width)
        assert index[i, :m].tolist() == [j for j, _ in tops[i]], f"item {i}"
        np.testing.assert_allclose(weight[i, :m], [w for _, w in tops[i]], rtol=1e-6)
        assert np.all(index[i, m:] == 0) and np.all(weight[i, m:] == 0)  # padding
        assert i not in index[i, :m]
        kept += m
    # Not vacuous: most items have neighbours, several have more than one.
    assert kept >= 15 and (width == 1 or (weight[:, 1] > 0).sum() >= 10)
    got = model.score_users(torch.arange(graph.num_users)).double().numpy()
    np.testing.assert_allclose(got, scores, rtol=1e-5, atol=1e-6)


def test_asymmetric_with_half_alpha_is_cosine():
    graph = random_graph(5)
    cos = ItemKNN(graph, neighbours=5, shrink=1.0).fit()
    asym = ItemKNN(graph, neighbours=5, similarity="asymmetric", alpha=0.5, shrink=1.0).fit()
    torch.testing.assert_close(asym.neighbour_weight, cos.neighbour_weight)
    assert torch.equal(asym.neighbour_index, cos.neighbour_index)
    # ... and alpha matters otherwise: the direction is the user's item -> the candidate.
    one = ItemKNN(graph, neighbours=5, similarity="asymmetric", alpha=1.0).fit()
    d = graph.item_degree()
    i = int(np.argmax(d))
    j, w = int(one.neighbour_index[i, 0]), float(one.neighbour_weight[i, 0])
    c = len(set(graph.ui[:, [i]].nonzero()[0]) & set(graph.ui[:, [j]].nonzero()[0]))
    assert c > 1
    assert w == pytest.approx(c / d[i])  # P(j | i)


def test_ties_go_to_the_smaller_index():
    # Items 1, 2, 3 share the same two users; item 0 has all four; item 4 one user;
    # item 5 nobody.
    pairs = [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 4)]
    u, i = np.array(pairs).T
    graph = RecGraph(Interactions.from_arrays(u, i, num_users=4, num_items=6))
    model = ItemKNN(graph, neighbours=2).fit()
    index, weight = model.neighbour_index.numpy(), model.neighbour_weight.numpy()
    assert index[0].tolist() == [1, 2]  # 1, 2, 3 tie at 2 / sqrt(4 * 2)
    np.testing.assert_allclose(weight[0], [2 / math.sqrt(8)] * 2, rtol=1e-6)
    assert index[3].tolist() == [1, 2]  # 1 and 2 tie at 1, above item 0
    np.testing.assert_allclose(weight[3], [1, 1])
    assert index[2].tolist() == [1, 3]
    assert index[4].tolist() == [0, 0] and weight[4].tolist() == [pytest.approx(0.5), 0]
    assert index[5].tolist() == [0, 0] and weight[5].tolist() == [0, 0]


@pytest.mark.parametrize("chunk", [1, 40])
def test_chunked_fit_matches_one_chunk(monkeypatch, chunk):
    graph = random_graph(7, items=40, edges=400)
    whole = ItemKNN(graph, neighbours=6, similarity="asymmetric", alpha=0.3, shrink=1.0).fit()
    monkeypatch.setattr(itemknn_module, "_CHUNK_ENTRIES", chunk)
    parts = ItemKNN(graph, neighbours=6, similarity="asymmetric", alpha=0.3, shrink=1.0).fit()
    assert torch.equal(parts.neighbour_index, whole.neighbour_index)
    assert torch.equal(parts.neighbour_weight, whole.neighbour_weight)


def test_interaction_values_are_binarised():
    plain = ItemKNN(random_graph(1), neighbours=5).fit()
    weighted_graph = random_graph(1, weight=4.0)
    assert np.all(weighted_graph.ui.data == 4.0)
    weighted = ItemKNN(weighted_graph, neighbours=5).fit()
    assert torch.equal(weighted.neighbour_index, plain.neighbour_index)
    torch.testing.assert_close(weighted.score_users(torch.arange(20)), plain.score_users(torch.arange(20)))


def test_state_dict_round_trip_and_cached_matrix_follows_the_buffers():
    graph = random_graph(2)
    users = torch.arange(graph.num_users)
    model = ItemKNN(graph, neighbours=3, shrink=2.0).fit()
    fresh = ItemKNN(graph, neighbours=3, shrink=2.0)
    with pytest.raises(NotFittedError):
        fresh.score_users(users)
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh.score_users(users), model.score_users(users), rtol=0, atol=0)
    assert set(model.state_dict()) == {"fitted", "neighbour_index", "neighbour_weight"}
    # Loading other weights into a model that has scored (and cached its matrix) uses them.
    other = ItemKNN(graph, neighbours=3, similarity="asymmetric", alpha=0.9).fit()
    assert not torch.allclose(other.score_users(users), model.score_users(users))
    model.load_state_dict(other.state_dict())
    torch.testing.assert_close(model.score_users(users), other.score_users(users), rtol=0, atol=0)
    # Scoring leaves the buffers as they were.
    assert torch.equal(model.neighbour_index, other.neighbour_index)
    assert torch.equal(model.neighbour_weight, other.neighbour_weight)
    model.fit()  # refitting restores its own hyper-parameters' neighbours
    torch.testing.assert_close(model.score_users(users), fresh.score_users(users), rtol=0, atol=0)


def test_scoring_before_fit_raises():
    with pytest.raises(NotFittedError, match="fit"):
        ItemKNN(random_graph()).score_users(torch.tensor([0]))


@pytest.mark.parametrize("kwargs", [{"neighbours": 0}, {"neighbours": -3}, {"neighbours": 2.5},
                                    {"neighbours": True}, {"similarity": "jaccard"},
                                    {"shrink": -1.0}, {"shrink": float("nan")},
                                    {"alpha": -0.1}, {"alpha": 1.5}, {"alpha": float("nan")}])
def test_bad_hyper_parameters(kwargs):
    with pytest.raises(ValueError):
        ItemKNN(random_graph(), **kwargs)


def test_recommend_excludes_training_items_and_follows_scores():
    graph = random_graph(4)
    model = ItemKNN(graph, neighbours=10).fit()
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
