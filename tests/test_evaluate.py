"""Tests of full-ranking evaluation against a plain per-user reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_info
from torch import nn

import graphrec.evaluate as evaluate_module
from graphrec.data.graph import RecGraph
from graphrec.data.interactions import Interactions
from graphrec.evaluate import (
    Evaluator,
    _ScoreProducts,
    dense_score_backend,
    evaluate_ratings,
    rating_metrics,
    stage_bounds,
    topk_rows,
)
from graphrec.models.base import Recommender
from graphrec.scoring import CosineScorer

METRICS = ("recall", "ndcg", "precision", "hit", "mrr")


# ---------------------------------------------------------------------- reference
def stable_ranking(row, allowed, kmax):
    """Allowed items by decreasing score, equal scores by item id."""
    return [int(i) for i in np.argsort(-row, kind="stable") if int(i) in allowed][:kmax]


def topk_ranking(row, allowed, kmax):
    """Allowed items as ``torch.topk`` orders a masked row: the evaluator's tie order on
    catalogues too narrow for the two-stage top-K."""
    masked = torch.full((1, len(row)), -torch.inf)
    masked[0, sorted(allowed)] = torch.from_numpy(row[sorted(allowed)])
    top = torch.topk(masked, min(kmax, len(row)), dim=1).indices[0].tolist()
    return [i for i in top if i in allowed]


def naive_metrics(scores, exclude, target, ks, popularity, ranking=stable_ranking):
    """Per-user loops over a full ranking; formulas written out one by one.

    ``exclude`` and ``target`` are lists of sets of items, one per user; ``ranking(row,
    allowed items, K)`` gives the best K allowed items (default: a stable argsort).
    """
    num_users, num_items = scores.shape
    per_user = {}
    top_lists = {k: [] for k in ks}
    for u in range(num_users):
        if not target[u]:
            continue
        allowed = set(range(num_items)) - exclude[u]
        ranked = ranking(scores[u], allowed, max(ks))
        row = {}
        for k in ks:
            top = ranked[:k]
            top_lists[k].append(top)
            rel = [1 if i in target[u] else 0 for i in top]
            hits = sum(rel)
            dcg = sum(r / math.log2(pos + 2) for pos, r in enumerate(rel))
            idcg = sum(1 / math.log2(pos + 2) for pos in range(min(k, len(target[u]))))
            first = next((pos for pos, r in enumerate(rel) if r), None)
            row[f"recall@{k}"] = hits / len(target[u])
            row[f"precision@{k}"] = hits / k
            row[f"ndcg@{k}"] = dcg / idcg
            row[f"hit@{k}"] = 1.0 if hits else 0.0
            row[f"mrr@{k}"] = 0.0 if first is None else 1 / (first + 1)
            row[f"avg_popularity@{k}"] = (sum(popularity[i] for i in top) / len(top)) if top else 0.0
        per_user[u] = row
    summary = {}
    for k in ks:
        for m in METRICS:
            vals = [row[f"{m}@{k}"] for row in per_user.values()]
            summary[f"{m}@{k}"] = sum(vals) / len(vals) if vals else 0.0
        shown = {i for top in top_lists[k] for i in top}
        summary[f"coverage@{k}"] = len(shown) / num_items
        recommended = [i for top in top_lists[k] for i in top]
        summary[f"avg_popularity@{k}"] = (sum(popularity[i] for i in recommended) / len(recommended)
                                          if recommended else 0.0)
    summary["users"] = float(len(per_user))
    return summary, per_user


def to_sets(m: sp.csr_matrix) -> list[set[int]]:
    return [set(m.indices[m.indptr[u]:m.indptr[u + 1]].tolist()) for u in range(m.shape[0])]


def random_csr(rng, num_users, num_items, density):
    return sp.csr_matrix((rng.random((num_users, num_items)) < density).astype(np.float32))

def seeded_case(seed, num_users, num_items, train_density, dim):
    """Random training and target matrices (target density 0.05) and seeded embeddings."""
    rng = np.random.default_rng(seed)
    train = random_csr(rng, num_users, num_items, train_density)
    target = random_csr(rng, num_users, num_items, 0.05)
    user_emb = torch.randn(num_users, dim, generator=torch.Generator().manual_seed(1))
    item_emb = torch.randn(num_items, dim, generator=torch.Generator().manual_seed(2))
    return train, target, user_emb, item_emb



def assert_close(result, expected):
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


# ---------------------------------------------------------------------- hand-computed example
def test_hand_computed_example():
    # Scores are given directly: item embeddings are the identity, so score(u, i) =
    # user_emb[u, i].
    #   user 0: scores .9 .8 .7 .6 .5, training item {0}, target {2, 4}
    #           ranking without item 0: 1, 2, 3, 4
    #   user 1: scores .5 .2 .3 .4 .1, training item {4}, target {3}
    #           ranking without item 4: 0, 3, 2, 1
    #   user 2: training {0, 1}, no target: not counted.
    # Let L = 1/log2(3) (the discount of rank 2).
    # K=1: user 0 gets [1], user 1 gets [0]: no hits, everything 0.
    #      coverage {0, 1} = 2/5; popularity (degrees 2,1,0,0,1): (deg 1 + deg 0)/2 = (1+2)/2.
    # K=2: user 0 [1, 2]: one hit at rank 2: recall 1/2, precision 1/2,
    #      ndcg L / (1 + L) (two target items, so the ideal list has 2 hits), mrr 1/2.
    #      user 1 [0, 3]: hit at rank 2: recall 1, precision 1/2, ndcg L / 1, mrr 1/2.
    #      coverage {0, 1, 2, 3} = 4/5; popularity (1 + 0 + 2 + 0)/4.
    # K=3: user 0 [1, 2, 3], user 1 [0, 3, 2]: same hits; precision 1/3 for both,
    #      ndcg unchanged (IDCG for user 0 still over min(3, 2) = 2 ranks).
    #      coverage still 4/5; popularity (1 + 0 + 0 + 2 + 0 + 0)/6.
    user_emb = torch.tensor([[.9, .8, .7, .6, .5], [.5, .2, .3, .4, .1], [.1, .2, .3, .4, .5]])
    item_emb = torch.eye(5)
    train = Interactions.from_arrays([0, 1, 2, 2], [0, 4, 0, 1], num_users=3, num_items=5)
    test = Interactions.from_arrays([0, 0, 1], [2, 4, 3], num_users=3, num_items=5)
    result = Evaluator([train], ks=(1, 2, 3)).evaluate_embeddings(user_emb, item_emb, test)
    L = 1 / math.log2(3)
    expected = {
        "recall@1": 0, "precision@1": 0, "ndcg@1": 0, "hit@1": 0, "mrr@1": 0,
        "coverage@1": 2 / 5, "avg_popularity@1": (1 + 2) / 2,
        "recall@2": (1 / 2 + 1) / 2, "precision@2": 1 / 2, "ndcg@2": (L / (1 + L) + L) / 2,
        "hit@2": 1, "mrr@2": 1 / 2, "coverage@2": 4 / 5, "avg_popularity@2": 3 / 4,
        "recall@3": (1 / 2 + 1) / 2, "precision@3": 1 / 3, "ndcg@3": (L / (1 + L) + L) / 2,
        "hit@3": 1, "mrr@3": 1 / 2, "coverage@3": 4 / 5, "avg_popularity@3": 3 / 6,
        "users": 2,
    }
    assert_close(result, expected)
    assert result["eval_seconds"] >= 0
    assert set(result) == set(expected) | {"eval_seconds"}


# ---------------------------------------------------------------------- against the reference
def draw_masks(draw, max_users, items, max_k, target_densities):
    """Sizes, cut-offs, a seeded generator and random exclude/target matrices."""
    num_users = draw(st.integers(1, max_users))
    num_items = draw(st.integers(*items))
    seed = draw(st.integers(0, 2**32 - 1))
    ks = draw(st.lists(st.integers(1, max_k), min_size=1, max_size=3))
    rng = np.random.default_rng(seed)
    exclude = random_csr(rng, num_users, num_items, draw(st.sampled_from([0.0, 0.2, 0.6, 0.95])))
    target = random_csr(rng, num_users, num_items, draw(st.sampled_from(target_densities)))
    return num_users, num_items, ks, rng, exclude, target


@st.composite
def ranking_problem(draw):
    num_users, num_items, ks, rng, exclude, target = draw_masks(draw, 12, (1, 40), 45, [0.05, 0.2, 0.5])
    user_emb = torch.from_numpy(rng.normal(size=(num_users, 6)).astype(np.float32))
    item_emb = torch.from_numpy(rng.normal(size=(num_items, 6)).astype(np.float32))
    budget = draw(st.sampled_from([1e-9, 0.001, 128.0]))
    return user_emb, item_emb, exclude, target, ks, budget


@settings(max_examples=60, deadline=None)
@given(ranking_problem())
def test_matches_naive_reference(problem):
    user_emb, item_emb, exclude, target, ks, budget = problem
    ev = Evaluator([exclude], ks=ks, memory_budget_mb=budget)
    result, frame = ev.evaluate_embeddings(user_emb, item_emb, target, per_user=True)
    scores = (user_emb @ item_emb.T).numpy()
    popularity = np.diff(exclude.tocsc().indptr)
    expected, per_user = naive_metrics(scores, to_sets(exclude), to_sets(target), sorted(set(ks)),
                                       popularity)
    assert_close(result, expected)
    # Per-user rows: exactly the users with target items, with the same values.
    assert frame["user"].tolist() == sorted(per_user)
    assert frame["num_target"].tolist() == [len(to_sets(target)[u]) for u in sorted(per_user)]
    for col in frame.columns.drop(["user", "num_target"]):
        np.testing.assert_allclose(frame[col].to_numpy(), [per_user[u][col] for u in frame["user"]],
                                   rtol=1e-9, atol=1e-12, err_msg=col)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 25))
def test_wide_catalogue_matches_naive(seed, k):
    # Enough items that the two-stage top-K (grouped maxima) is used, not plain topk.
    rng = np.random.default_rng(seed)
    num_users, num_items = 20, 900
    exclude = random_csr(rng, num_users, num_items, 0.3)
    target = random_csr(rng, num_users, num_items, 0.02)
    user_emb = torch.from_numpy(rng.normal(size=(num_users, 8)).astype(np.float32))
    item_emb = torch.from_numpy(rng.normal(size=(num_items, 8)).astype(np.float32))
    result = Evaluator([exclude], ks=(k, 2 * k)).evaluate_embeddings(user_emb, item_emb, target)
    scores = (user_emb @ item_emb.T).numpy()
    expected, _ = naive_metrics(scores, to_sets(exclude), to_sets(target), [k, 2 * k],
                                np.diff(exclude.tocsc().indptr))
    assert_close(result, expected)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 3000),
       st.sampled_from([0.0, 0.5, 0.999]))
def test_topk_rows_matches_torch_topk(seed, k, num_cols, masked):
    k = min(k, num_cols)
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(7, num_cols, generator=gen)
    scores[torch.rand(7, num_cols, generator=gen) < masked] = -torch.inf
    values, cols = topk_rows(scores, k)
    ref_values, ref_cols = torch.topk(scores, k, dim=1)
    assert torch.equal(values, ref_values)
    finite = torch.isfinite(ref_values)  # the order among -inf fillers is arbitrary
    assert torch.equal(cols[finite], ref_cols[finite])
    assert torch.equal(scores.gather(1, cols), values)


def two_stage_reference(scores, k, group=16):
    """The two-stage top-K written plainly (one concatenated column list): the order in
    which ``topk_rows`` documents that exactly equal scores come out."""
    rows, n = scores.shape
    g = n // group
    if g <= 2 * k:
        return torch.topk(scores, k, dim=1)
    group_max = scores[:, : g * group].reshape(rows, group, g).amax(1)
    best = torch.topk(group_max, k, dim=1, sorted=False).indices
    cols = torch.cat([(best.unsqueeze(2) + torch.arange(group) * g).reshape(rows, -1),
                      torch.arange(g * group, n).expand(rows, -1)], 1)
    values, pick = torch.topk(scores.gather(1, cols), k, dim=1)
    return values, cols.gather(1, pick)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.sampled_from([33, 321, 656, 2048, 2059]),
       st.sampled_from(["normal", "few values", "masked"]), st.sampled_from([2, 7, 16]))
def test_topk_rows_ties_and_leftover_columns(seed, k, num_cols, kind, group):
    # Catalogue widths with and without leftover columns (2048 = 128 * 16), scores with
    # many exact ties, and rows that are mostly -inf.
    k = min(k, num_cols)
    gen = torch.Generator().manual_seed(seed)
    if kind == "few values":
        scores = torch.randint(0, 5, (9, num_cols), generator=gen).float()
    else:
        scores = torch.randn(9, num_cols, generator=gen)
    if kind == "masked":
        scores[torch.rand(9, num_cols, generator=gen) < 0.97] = -torch.inf
    # The last column (a leftover one unless group divides the width) holds the best score.
    scores[0, -1] = 100.0
    values, cols = topk_rows(scores, k, group)
    assert torch.equal(values, torch.topk(scores, k, dim=1).values)
    assert torch.equal(scores.gather(1, cols), values)
    assert all(len(set(row)) == k for row in cols.tolist())  # k distinct columns
    assert cols[0, 0] == num_cols - 1
    ref_values, ref_cols = two_stage_reference(scores, k, group)
    assert torch.equal(values, ref_values) and torch.equal(cols, ref_cols)


@st.composite
def tied_ranking_problem(draw):
    num_users = draw(st.integers(1, 12))
    num_items = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    ks = draw(st.lists(st.integers(1, 45), min_size=1, max_size=3))
    rng = np.random.default_rng(seed)
    exclude = random_csr(rng, num_users, num_items, draw(st.sampled_from([0.0, 0.3, 0.9])))
    target = random_csr(rng, num_users, num_items, draw(st.sampled_from([0.1, 0.4])))
    # Small integer vectors: many users give many items exactly the same score, and
    # duplicate items tie for everyone.
    user_emb = torch.from_numpy(rng.integers(0, 3, size=(num_users, 2)).astype(np.float32))
    item_emb = torch.from_numpy(rng.integers(-1, 2, size=(num_items, 2)).astype(np.float32))
    popularity = rng.integers(0, 50, size=num_items).astype(np.float64)
    budget = draw(st.sampled_from([1e-9, 0.0005, 0.002, 128.0]))
    return user_emb, item_emb, exclude, target, ks, popularity, budget


@settings(max_examples=60, deadline=None)
@given(tied_ranking_problem())
def test_ties_match_naive_reference_at_any_batch_size(problem):
    # Ties are ordered by torch.topk on the masked row (the catalogue is too small for
    # the two-stage selection); every metric, per user too, matches a naive evaluator
    # ranking that way, whatever the batch size (down to one user per batch) and with K
    # beyond the number of items.
    user_emb, item_emb, exclude, target, ks, popularity, budget = problem
    ev = Evaluator([exclude], ks=ks, memory_budget_mb=budget, item_popularity=popularity)
    result, frame = ev.evaluate_embeddings(user_emb, item_emb, target, per_user=True)
    scores = (user_emb @ item_emb.T).numpy()
    expected, per_user = naive_metrics(scores, to_sets(exclude), to_sets(target), sorted(set(ks)),
                                       popularity, ranking=topk_ranking)
    assert_close(result, expected)
    assert frame["user"].tolist() == sorted(per_user)
    for col in frame.columns.drop(["user", "num_target"]):
        np.testing.assert_allclose(frame[col].to_numpy(), [per_user[u][col] for u in frame["user"]],
                                   rtol=1e-9, atol=1e-12, err_msg=col)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 25))
def test_wide_catalogue_with_ties_is_batch_independent(seed, k):
    # Two-stage top-K on tied scores: every batch size gives the same lists (a row's
    # order does not depend on its batch), and the metrics match the naive evaluator
    # ranking each user's masked row alone with topk_rows.
    rng = np.random.default_rng(seed)
    num_users, num_items = 30, 1000
    exclude = random_csr(rng, num_users, num_items, 0.3)
    target = random_csr(rng, num_users, num_items, 0.05)
    user_emb = torch.from_numpy(rng.integers(0, 3, size=(num_users, 3)).astype(np.float32))
    item_emb = torch.from_numpy(rng.integers(-2, 3, size=(num_items, 3)).astype(np.float32))
    results = [Evaluator([exclude], ks=(k, 2 * k), memory_budget_mb=budget)
               .evaluate_embeddings(user_emb, item_emb, target, per_user=True)
               for budget in (1e-9, 0.05, 128.0)]
    for result, frame in results[1:]:
        assert_close(result, {key: v for key, v in results[0][0].items() if key != "eval_seconds"})
        assert frame.equals(results[0][1])
    scores = (user_emb @ item_emb.T).numpy()

    def one_row_topk_rows(row, allowed, kmax):
        masked = torch.full((1, len(row)), -torch.inf)
        masked[0, sorted(allowed)] = torch.from_numpy(row[sorted(allowed)])
        return [i for i in topk_rows(masked, kmax)[1][0].tolist() if i in allowed]

    expected, _ = naive_metrics(scores, to_sets(exclude), to_sets(target), [k, 2 * k],
                                np.diff(exclude.tocsc().indptr), ranking=one_row_topk_rows)
    assert_close(results[0][0], expected)


def test_excluded_items_never_recommended_and_skipped_users():
    rng = np.random.default_rng(3)
    num_users, num_items = 30, 50
    train = random_csr(rng, num_users, num_items, 0.5)
    valid = random_csr(rng, num_users, num_items, 0.1)
    target_dense = rng.random((num_users, num_items)) < 0.1
    target_dense[:5] = False  # five users without test items
    target = sp.csr_matrix(target_dense.astype(np.float32))
    # Scores that favour exactly the excluded items: any leak would top the lists.
    excluded = ((train + valid) > 0).toarray()
    user_emb = torch.from_numpy(np.hstack([excluded * 10.0, rng.random((num_users, 1))]).astype(np.float32))
    item_emb = torch.from_numpy(np.hstack([np.eye(num_items), rng.random((num_items, 1))]).astype(np.float32))
    ev = Evaluator([train, valid], ks=(5, 10), metrics=("hit", "coverage"))
    result, frame = ev.evaluate_embeddings(user_emb, item_emb, target, per_user=True)
    assert result["users"] == num_users - 5
    assert 0 not in frame["user"].tolist()
    # With the excluded items removed, the lists must match the naive ranking.
    expected, _ = naive_metrics((user_emb @ item_emb.T).numpy(), to_sets(sp.csr_matrix(excluded)),
                                to_sets(target), [5, 10], np.zeros(num_items))
    assert_close({k: v for k, v in result.items() if k != "eval_seconds"},
                 {k: expected[k] for k in result if k != "eval_seconds"})
    assert "recall@5" not in result and "avg_popularity@5" not in result


def test_batch_size_independence():
    num_users, num_items = 40, 300
    train, target, user_emb, item_emb = seeded_case(7, num_users, num_items, 0.2, 16)
    big = Evaluator([train], ks=(5, 20))
    tiny = Evaluator([train], ks=(5, 20), memory_budget_mb=0.002)
    assert tiny.batch_size(num_items) == 1
    assert big.batch_size(num_items) >= num_users
    a = big.evaluate_embeddings(user_emb, item_emb, target)
    b = tiny.evaluate_embeddings(user_emb, item_emb, target)
    assert_close(a, {k: v for k, v in b.items() if k != "eval_seconds"})


def test_a_user_sample_gives_the_full_metrics_of_those_users():
    num_users, num_items = 120, 200
    train, target, user_emb, item_emb = seeded_case(11, num_users, num_items, 0.1, 8)
    full, frame = Evaluator([train], ks=(10,), metrics=METRICS).evaluate_embeddings(
        user_emb, item_emb, target, per_user=True)
    sampler = Evaluator([train], ks=(10,), metrics=METRICS, user_sample=30, sample_seed=5)
    users = sampler.counted_users(target)
    assert len(users) == 30 and set(users) <= set(frame["user"]) and np.all(np.diff(users) > 0)
    got = sampler.evaluate_embeddings(user_emb, item_emb, target)
    assert got["users"] == 30
    # A full evaluation restricted to the sampled users' targets is the reference.
    only = sp.csr_matrix(target.multiply(np.isin(np.arange(num_users), users)[:, None]))
    want = Evaluator([train], ks=(10,), metrics=METRICS).evaluate_embeddings(user_emb, item_emb, only)
    assert_close(got, {k: v for k, v in want.items() if k != "eval_seconds"})
    rows = frame.set_index("user").loc[users]
    for m in METRICS:
        assert got[f"{m}@10"] == pytest.approx(rows[f"{m}@10"].mean())
    assert got["recall@10"] != pytest.approx(full["recall@10"])  # a real sample, not all users
    # The same seed draws the same users; another seed others; a sample as large as the
    # users counts them all.
    assert np.array_equal(Evaluator([train], user_sample=30, sample_seed=5).counted_users(target), users)
    assert not np.array_equal(Evaluator([train], user_sample=30, sample_seed=6).counted_users(target), users)
    everyone = Evaluator([train], ks=(10,), metrics=METRICS, user_sample=num_users)
    assert_close(everyone.evaluate_embeddings(user_emb, item_emb, target),
                 {k: v for k, v in full.items() if k != "eval_seconds"})
    with pytest.raises(ValueError, match="user_sample"):
        Evaluator([train], user_sample=0)


def test_batch_size_follows_budget():
    ev = Evaluator(ks=(20,), metrics=METRICS, memory_budget_mb=128)
    b = ev.batch_size(40981)
    # Scores alone take 4 bytes per item; the top-K buffers add a little.
    assert 0.9 * 128 * 2**20 / (4 * 40981) < b <= 128 * 2**20 / (4 * 40981)
    assert Evaluator(ks=(20,), metrics=METRICS, memory_budget_mb=256).batch_size(40981) > 1.9 * b


def test_more_k_than_items():
    # K beyond the catalogue: lists are as long as the allowed items, precision uses K.
    user_emb = torch.tensor([[3.0, 2.0, 1.0]])
    train = sp.csr_matrix(np.array([[0, 1, 0]], dtype=np.float32))
    target = sp.csr_matrix(np.array([[0, 0, 1]], dtype=np.float32))
    result = Evaluator([train], ks=(5,)).evaluate_embeddings(user_emb, torch.eye(3), target)
    # Ranking: item 0, item 2 (item 1 excluded); the hit is at rank 2.
    assert result["recall@5"] == 1 and result["precision@5"] == pytest.approx(1 / 5)
    assert result["mrr@5"] == pytest.approx(1 / 2)
    assert result["ndcg@5"] == pytest.approx(1 / math.log2(3))
    assert result["coverage@5"] == pytest.approx(2 / 3)


class FixedEmbeddings(Recommender):
    """A model whose propagated embeddings are its parameters; counts its calls."""

    def __init__(self, graph, user_emb, item_emb, scorer="dot"):
        super().__init__(graph, user_emb.shape[1], scorer)
        self.user = nn.Parameter(user_emb.clone())
        self.item = nn.Parameter(item_emb.clone())
        self.calls = 0

    def propagate(self, edge_mask=None):
        self.calls += 1
        return self.user * 1.0, self.item * 1.0


@pytest.mark.parametrize("scorer", ["dot", "cosine"])
def test_evaluate_model_mixed_exclude_parts(scorer):
    rng = np.random.default_rng(11)
    num_users, num_items = 25, 60
    u, i = np.nonzero(rng.random((num_users, num_items)) < 0.2)
    train = Interactions.from_arrays(u, i, num_users=num_users, num_items=num_items)
    valid = random_csr(rng, num_users, num_items, 0.05)
    target = random_csr(rng, num_users, num_items, 0.1)
    user_emb = torch.from_numpy(rng.normal(size=(num_users, 8)).astype(np.float32))
    item_emb = torch.from_numpy(rng.normal(size=(num_items, 8)).astype(np.float32))
    graph = RecGraph(train)
    model = FixedEmbeddings(graph, user_emb, item_emb, scorer)
    test = Interactions.from_arrays(*target.nonzero(), num_users=num_users, num_items=num_items)
    result = Evaluator([graph, valid], ks=(3, 10)).evaluate(model, test)
    assert model.calls == 1
    if scorer == "cosine":
        scores = CosineScorer().score_all(user_emb, item_emb).numpy()
    else:
        scores = (user_emb @ item_emb.T).numpy()
    excluded = to_sets(graph.ui + valid)
    expected, _ = naive_metrics(scores, excluded, to_sets(target), [3, 10], graph.item_degree())
    assert_close(result, expected)


def test_item_popularity_argument_and_errors():
    rng = np.random.default_rng(5)
    train = random_csr(rng, 10, 20, 0.3)
    target = random_csr(rng, 10, 20, 0.2)
    user_emb, item_emb = torch.randn(10, 4), torch.randn(20, 4)
    pop = rng.random(20) * 100
    result = Evaluator([train], ks=(4,), item_popularity=pop).evaluate_embeddings(user_emb, item_emb, target)
    expected, _ = naive_metrics((user_emb @ item_emb.T).numpy(), to_sets(train), to_sets(target), [4], pop)
    assert result["avg_popularity@4"] == pytest.approx(expected["avg_popularity@4"])

    with pytest.raises(ValueError, match="unknown metric"):
        Evaluator([train], metrics=("auc",))
    with pytest.raises(ValueError, match="item_popularity"):
        Evaluator([], metrics=("avg_popularity",))
    with pytest.raises(ValueError, match="shape"):
        Evaluator([train]).evaluate_embeddings(user_emb, torch.randn(21, 4), random_csr(rng, 10, 21, 0.2))
    with pytest.raises(ValueError, match="NaN"):
        Evaluator([train]).evaluate_embeddings(user_emb * np.nan, item_emb, target)


def test_inputs_left_unchanged_and_repeated_pairs():
    # Explicit zeros and unsorted indices in a caller's matrix must survive evaluation.
    m = sp.csr_matrix((np.array([0.0, 1.0, 2.0]), np.array([2, 0, 1]), np.array([0, 2, 3])),
                      shape=(2, 3))
    before = (m.data.copy(), m.indices.copy(), m.indptr.copy())
    ev = Evaluator([m], ks=(1,))
    assert ev.exclude.toarray().tolist() == [[1, 0, 0], [0, 1, 0]]
    for a, b in zip(before, (m.data, m.indices, m.indptr)):
        np.testing.assert_array_equal(a, b)
    # A pair logged 256 times is still one interaction (no small-integer wrap-around).
    repeated = Interactions.from_arrays(np.zeros(256), np.ones(256), num_users=2, num_items=3)
    assert Evaluator([repeated]).exclude.toarray().tolist() == [[0, 1, 0], [0, 0, 0]]


def test_no_target_users():
    result, frame = Evaluator([], ks=(5,), metrics=METRICS).evaluate_embeddings(
        torch.randn(4, 3), torch.randn(6, 3), sp.csr_matrix((4, 6), dtype=np.float32), per_user=True)
    assert result["users"] == 0 and result["recall@5"] == 0
    assert len(frame) == 0 and "num_target" in frame


# ---------------------------------------------------------------------- score backends
def numpy_scores(user_emb, item_emb):
    """The float32 scores of numpy's matmul, the ``numpy`` backend's reference."""
    return user_emb.numpy() @ item_emb.numpy().T


@settings(max_examples=40, deadline=None)
@given(ranking_problem())
def test_numpy_backend_matches_naive_reference(problem):
    user_emb, item_emb, exclude, target, ks, budget = problem
    ev = Evaluator([exclude], ks=ks, memory_budget_mb=budget, score_backend="numpy")
    result, frame = ev.evaluate_embeddings(user_emb, item_emb, target, per_user=True)
    expected, per_user = naive_metrics(numpy_scores(user_emb, item_emb), to_sets(exclude),
                                       to_sets(target), sorted(set(ks)),
                                       np.diff(exclude.tocsc().indptr))
    assert_close(result, expected)
    for col in frame.columns.drop(["user", "num_target"]):
        np.testing.assert_allclose(frame[col].to_numpy(), [per_user[u][col] for u in frame["user"]],
                                   rtol=1e-9, atol=1e-12, err_msg=col)


@settings(max_examples=40, deadline=None)
@given(tied_ranking_problem())
def test_numpy_backend_ties_match_naive_reference(problem):
    # Small integer embeddings: both products are exact, so the tie order is torch.topk's
    # on the masked row, as with the torch backend.
    user_emb, item_emb, exclude, target, ks, popularity, budget = problem
    results = [Evaluator([exclude], ks=ks, memory_budget_mb=budget, item_popularity=popularity,
                         score_backend=backend).evaluate_embeddings(user_emb, item_emb, target,
                                                                    per_user=True)
               for backend in ("numpy", "torch")]
    expected, _ = naive_metrics(numpy_scores(user_emb, item_emb), to_sets(exclude), to_sets(target),
                                sorted(set(ks)), popularity, ranking=topk_ranking)
    assert_close(results[0][0], expected)
    assert results[0][1].equals(results[1][1])


def dyadic_embeddings(rng, rows, dim):
    """Multiples of 1/8 below 2 in magnitude: every dot product is exact in float32 in
    any summation order, so both backends and every batch size give the same bits
    (BLAS libraries pick kernels by matrix size, which moves the last bit of real-valued
    sums), while the scores still take thousands of distinct values."""
    return torch.from_numpy((rng.integers(-15, 16, size=(rows, dim)) / 8).astype(np.float32))


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 25))
def test_numpy_backend_wide_catalogue_is_batch_independent(seed, k):
    # Through the two-stage top-K: every batch size (one user per batch; batches split
    # over threads or not) and both backends give the same per-user frame, which matches
    # the naive ranking of the scores.
    rng = np.random.default_rng(seed)
    num_users, num_items = 70, 1000
    exclude = random_csr(rng, num_users, num_items, 0.3)
    target = random_csr(rng, num_users, num_items, 0.05)
    user_emb, item_emb = dyadic_embeddings(rng, num_users, 12), dyadic_embeddings(rng, num_items, 12)
    results = [Evaluator([exclude], ks=(k, 2 * k), memory_budget_mb=budget, score_backend=backend)
               .evaluate_embeddings(user_emb, item_emb, target, per_user=True)
               for budget in (1e-9, 0.2, 128.0) for backend in ("numpy", "torch")]
    for _, frame in results[1:]:
        assert frame.equals(results[0][1])

    def one_row_topk_rows(row, allowed, kmax):
        masked = torch.full((1, len(row)), -torch.inf)
        masked[0, sorted(allowed)] = torch.from_numpy(row[sorted(allowed)])
        return [i for i in topk_rows(masked, kmax)[1][0].tolist() if i in allowed]

    expected, _ = naive_metrics(numpy_scores(user_emb, item_emb), to_sets(exclude), to_sets(target),
                                [k, 2 * k], np.diff(exclude.tocsc().indptr),
                                ranking=one_row_topk_rows)
    assert_close(results[0][0], expected)


# ---------------------------------------------------------------------- norm-ordered stages
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 60), st.integers(1, 300))
def test_stage_bounds(num_items, k, first):
    bounds = stage_bounds(num_items, k, first)
    assert bounds[-1] == num_items and bounds == sorted(set(bounds))
    widths = np.diff([0, *bounds])
    if len(bounds) > 1:  # every stage at least as wide as the first, and as k
        assert widths.min() >= max(first, k) and bounds[0] == max(first, k)
    else:
        assert num_items < 2 * max(first, k, 1)


def test_stage_bounds_of_a_large_catalogue():
    assert stage_bounds(40981, 20) == [4096, 8192, 16384, 32768, 40981]
    assert stage_bounds(10000, 20) == [4096, 10000]  # 1,808 left after 8,192 join that stage
    assert stage_bounds(8000, 20) == [8000]
    assert stage_bounds(100, 30, first=8) == [30, 60, 100]


def skewed_embeddings(rng, num_users, num_items, dim, spread):
    """Item norms spread over ``spread`` orders of magnitude (popularity in the norm, as
    in trained embeddings), users leaning along a shared direction."""
    item = rng.normal(size=(num_items, dim)) * 10.0 ** rng.uniform(-spread, 0, size=(num_items, 1))
    user = rng.normal(size=(num_users, dim)) * 0.3
    user[:, 0] += 1.0
    item[:, 0] += np.abs(item[:, 0])
    return (torch.from_numpy(user.astype(np.float32)), torch.from_numpy(item.astype(np.float32)))


@st.composite
def staged_problem(draw):
    num_users, num_items, ks, rng, exclude, target = draw_masks(draw, 30, (2, 200), 30, [0.05, 0.3])
    user_emb, item_emb = skewed_embeddings(rng, num_users, num_items, 5, draw(st.sampled_from([0, 1, 3])))
    if draw(st.booleans()):  # negative scores for everyone
        user_emb = -user_emb
    first = draw(st.sampled_from([1, 2, 5, 16]))
    budget = draw(st.sampled_from([1e-9, 0.001, 128.0]))
    return user_emb, item_emb, exclude, target, ks, first, budget


@settings(max_examples=80, deadline=None)
@given(staged_problem())
def test_norm_stages_match_naive_reference(problem):
    # Ranked in stages of decreasing item norm (first stage down to one item, several
    # batch sizes, excluded items, users with fewer allowed items than K, negative
    # scores): every metric and every user's row equal those of the naive ranking of all
    # scores, and of the evaluator scoring every item. (Exactly equal scores, which may
    # be ordered otherwise, are the next test's.)
    user_emb, item_emb, exclude, target, ks, first, budget = problem
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluate_module, "_FIRST_STAGE", first)
        ev = Evaluator([exclude], ks=ks, memory_budget_mb=budget)
        result, frame = ev.evaluate_embeddings(user_emb, item_emb, target, per_user=True)
    every = Evaluator([exclude], ks=ks, memory_budget_mb=budget, prune_by_norm=False)
    result_all, frame_all = every.evaluate_embeddings(user_emb, item_emb, target, per_user=True)
    assert every.last_scored_fraction == 1.0 and 0 <= ev.last_scored_fraction <= 1.0
    assert frame.equals(frame_all)
    expected, _ = naive_metrics((user_emb @ item_emb.T).numpy(), to_sets(exclude), to_sets(target),
                                sorted(set(ks)), np.diff(exclude.tocsc().indptr))
    assert_close(result, expected)
    assert_close(result, {key: v for key, v in result_all.items() if key != "eval_seconds"})


def test_norm_stages_skip_most_scores_when_norms_carry_popularity(monkeypatch):
    rng = np.random.default_rng(3)
    num_users, num_items = 300, 4000
    user_emb, item_emb = skewed_embeddings(rng, num_users, num_items, 16, spread=2)
    exclude = random_csr(rng, num_users, num_items, 0.01)
    target = random_csr(rng, num_users, num_items, 0.01)
    monkeypatch.setattr(evaluate_module, "_FIRST_STAGE", 256)
    ev = Evaluator([exclude], ks=(10, 20), memory_budget_mb=1)
    result, frame = ev.evaluate_embeddings(user_emb, item_emb, target, per_user=True)
    assert ev.last_scored_fraction < 0.5
    every = Evaluator([exclude], ks=(10, 20), memory_budget_mb=1, prune_by_norm=False)
    result_all, frame_all = every.evaluate_embeddings(user_emb, item_emb, target, per_user=True)
    assert frame.equals(frame_all)
    assert_close(result, {key: v for key, v in result_all.items() if key != "eval_seconds"})


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.sampled_from([1, 3, 8]))
def test_norm_stages_return_the_top_scores_with_ties(seed, k, first):
    # Integer vectors (zero users among them): many exactly equal scores, which may be
    # ordered differently from a ranking of every item, so the lists themselves are
    # compared: the same scores, best first, and each item's score is its listed one.
    rng = np.random.default_rng(seed)
    num_users, num_items = 9, 60
    user_emb = torch.from_numpy(rng.integers(0, 3, size=(num_users, 2)).astype(np.float32))
    item_emb = torch.from_numpy(rng.integers(-2, 3, size=(num_items, 2)).astype(np.float32))
    exclude = random_csr(rng, num_users, num_items, 0.3)
    stages = evaluate_module._NormStages(user_emb, item_emb, k)
    stages.bounds = stage_bounds(num_items, k, first)
    flat = torch.from_numpy(evaluate_module._row_keys(exclude, num_items))
    excluded = lambda s, e: flat[(flat >= s * num_items) & (flat < e * num_items)] - s * num_items  # noqa: E731

    def products(items, users):
        return _ScoreProducts(user_emb, items, users, "torch")

    users = torch.arange(num_users)
    ranges = [(0, 4), (4, 9)]
    lists = list(stages.topk_batches(products, products)(users, ranges, excluded, k))
    scores = user_emb @ item_emb.T
    masked = scores.clone()
    masked[torch.from_numpy(exclude.nonzero()[0]), torch.from_numpy(exclude.nonzero()[1])] = -torch.inf
    expected = torch.topk(masked, k, dim=1).values
    for s, e, values, items in lists:
        assert torch.equal(values, expected[s:e])
        listed = masked[s:e].gather(1, items)
        assert torch.equal(listed[values > -torch.inf], values[values > -torch.inf])
        for row in range(e - s):  # no item twice among the real entries
            real = items[row][values[row] > -torch.inf].tolist()
            assert len(set(real)) == len(real)


def test_norm_stages_give_way_when_norms_do_not_prune(monkeypatch):
    # Unit-norm items: no bound ever prunes, so after the first stage the ranking scores
    # every item at once with the product chosen for that, and stays exact.
    rng = np.random.default_rng(5)
    num_users, num_items = 200, 300
    item_emb = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(num_items, 8)).astype(np.float32)))
    user_emb = torch.from_numpy(rng.normal(size=(num_users, 8)).astype(np.float32))
    exclude = random_csr(rng, num_users, num_items, 0.1)
    target = random_csr(rng, num_users, num_items, 0.05)
    made = []
    real = _ScoreProducts.__init__

    def spy(self, user_emb, item_emb, rows, backend, buffer=None):
        made.append((backend, buffer is not None))
        real(self, user_emb, item_emb, rows, backend, buffer)

    monkeypatch.setattr(_ScoreProducts, "__init__", spy)
    monkeypatch.setattr(evaluate_module, "_FIRST_STAGE", 32)
    ev = Evaluator([exclude], ks=(5, 10), memory_budget_mb=0.05, score_backend="numpy")
    result, frame = ev.evaluate_embeddings(user_emb, item_emb, target, per_user=True)
    assert ev.batch_size(num_items) < num_users and ev.last_scored_fraction == 1.0
    assert made == [("numpy", False), ("numpy", True)]  # the second shares the buffer
    every = Evaluator([exclude], ks=(5, 10), memory_budget_mb=0.05, prune_by_norm=False)
    _, frame_all = every.evaluate_embeddings(user_emb, item_emb, target, per_user=True)
    assert frame.equals(frame_all)
    # In a single batch the first stage's bounds decide it: the rest at once.
    made.clear()
    one = Evaluator([exclude], ks=(5, 10), score_backend="numpy")
    _, frame_one = one.evaluate_embeddings(user_emb, item_emb, target, per_user=True)
    assert one.batch_size(num_items) >= num_users and made == [("numpy", False), ("numpy", True)]
    assert frame_one.equals(frame_all) and one.last_scored_fraction == 1.0
    # With "auto", the stages use torch's product.
    made.clear()
    Evaluator([exclude], ks=(5, 10), memory_budget_mb=0.05).evaluate_embeddings(user_emb, item_emb, target)
    assert made[0] == ("torch", False)


def test_norm_stages_leave_non_finite_embeddings_to_the_full_ranking(monkeypatch):
    monkeypatch.setattr(evaluate_module, "_FIRST_STAGE", 2)
    rng = np.random.default_rng(0)
    user_emb, item_emb = skewed_embeddings(rng, 6, 20, 3, spread=1)
    item_emb[4, 1] = float("nan")
    ev = Evaluator([], ks=(3,), metrics=METRICS)
    with pytest.raises(ValueError, match="NaN"):
        ev.evaluate_embeddings(user_emb, item_emb, random_csr(rng, 6, 20, 0.5))
    assert evaluate_module._NormStages.build(user_emb, item_emb, 3) is None


def test_evaluate_points_ranks_each_point_as_alone():
    rng = np.random.default_rng(8)
    num_users, num_items = 30, 50
    exclude = random_csr(rng, num_users, num_items, 0.2)
    target = random_csr(rng, num_users, num_items, 0.1)
    user_emb = torch.from_numpy(rng.normal(size=(num_users, 4)).astype(np.float32))
    item_emb = torch.from_numpy(rng.normal(size=(num_items, 4)).astype(np.float32))
    scales = [1.0, -1.0, 0.5, 2.0]

    def points(users):
        buffer = torch.empty(len(users), num_items)
        for c in scales[:-1]:  # one buffer for every point, overwritten in turn
            yield torch.mul(user_emb[users] @ item_emb.T, c, out=buffer)
        # A transposed (not contiguous) view is ranked as well.
        yield (item_emb @ user_emb[users].T).mul_(scales[-1]).T

    ev = Evaluator([exclude], ks=(5, 10), memory_budget_mb=0.002)  # several batches
    got = ev.evaluate_points(points, len(scales), num_users, num_items, target)
    for c, result in zip(scales, got):
        alone = ev.evaluate_scores(lambda users, c=c: (user_emb[users] @ item_emb.T) * c,
                                   num_users, num_items, target)
        assert_close(result, {k: v for k, v in alone.items() if k != "eval_seconds"})
    with pytest.raises(ValueError, match="expected the lists of 2 points, got 4"):
        ev.evaluate_points(points, 2, num_users, num_items, target)
    with pytest.raises(ValueError, match="points must be >= 1"):
        ev.evaluate_points(points, 0, num_users, num_items, target)


def test_score_products_of_each_backend():
    rng = np.random.default_rng(4)
    user_emb, item_emb = torch.randn(50, 24), torch.randn(300, 24)
    users = torch.tensor([7, 3, 49, 0] * 10)
    with _ScoreProducts(user_emb, item_emb, 40, "torch") as products:
        # The torch backend is the plain torch.mm.
        assert torch.equal(products(users), user_emb[users] @ item_emb.T)
    with _ScoreProducts(user_emb, item_emb, 40, "numpy") as products:
        for n in (40, 33, 1):  # split over threads or not
            np.testing.assert_allclose(products(users[:n]).numpy(),
                                       numpy_scores(user_emb[users[:n]], item_emb), rtol=1e-5, atol=1e-5)
    exact_u, exact_i = dyadic_embeddings(rng, 50, 24), dyadic_embeddings(rng, 300, 24)
    with _ScoreProducts(exact_u, exact_i, 40, "numpy") as products:
        for n in (40, 33, 1):
            assert torch.equal(products(users[:n]), exact_u[users[:n]] @ exact_i.T)
    with pytest.raises(ValueError, match="backend"):
        _ScoreProducts(user_emb, item_emb, 4, "mkl")


def test_forced_backends_and_where_they_apply(monkeypatch):
    user_emb, item_emb = torch.randn(5, 4), torch.randn(9, 4)
    dot = evaluate_module.DotScorer()
    for backend in ("torch", "numpy"):
        ev = Evaluator(metrics=METRICS, score_backend=backend)
        assert ev.products_backend(dot, user_emb, item_emb) == backend
        # Other scorers and dtypes keep scorer.score_all.
        assert ev.products_backend(CosineScorer(), user_emb, item_emb) is None
        assert ev.products_backend(dot, user_emb.double(), item_emb.double()) is None
    # A small ranking uses torch untimed; a large one the timed choice.
    assert Evaluator(metrics=METRICS).products_backend(dot, user_emb, item_emb) == "torch"
    monkeypatch.setattr(evaluate_module, "_CALIBRATE_ABOVE", 0)
    assert Evaluator(metrics=METRICS).products_backend(dot, user_emb, item_emb) == dense_score_backend(4)
    with pytest.raises(ValueError, match="score_backend"):
        Evaluator(metrics=METRICS, score_backend="mkl")


def test_calibration_is_cached_and_deterministic(monkeypatch):
    calls = []
    timings = {"torch": 1.0, "numpy": 0.5}

    def fake_timing(dim):
        calls.append(dim)
        return dict(timings)

    monkeypatch.setattr(evaluate_module, "_BACKEND_CHOICE", {})
    monkeypatch.setattr(evaluate_module, "_time_backends", fake_timing)
    assert dense_score_backend(16) == "numpy"
    timings.update(numpy=2.0)  # a later timing would say torch: the first answer stays
    assert dense_score_backend(16) == "numpy" and calls == [16]
    # A new dimension is timed afresh; torch unless numpy is clearly faster.
    timings.update(numpy=0.95)
    assert dense_score_backend(17) == "torch" and calls == [16, 17]

    train, target, user_emb, item_emb = seeded_case(3, 60, 700, 0.2, 16)
    monkeypatch.setattr(evaluate_module, "_CALIBRATE_ABOVE", 0)  # this small case uses the choice
    auto = [Evaluator([train], ks=(5, 20)).evaluate_embeddings(user_emb, item_emb, target,
                                                                per_user=True) for _ in range(2)]
    forced = Evaluator([train], ks=(5, 20), score_backend="numpy").evaluate_embeddings(
        user_emb, item_emb, target, per_user=True)
    assert calls == [16, 17]
    for _, frame in auto[1:] + [forced]:
        assert frame.equals(auto[0][1])


def test_real_calibration_picks_a_backend_once(monkeypatch):
    monkeypatch.setattr(evaluate_module, "_BACKEND_CHOICE", {})
    seconds = evaluate_module._time_backends(8, items=512, repeats=2)
    assert set(seconds) == {"torch", "numpy"} and all(0 < t < 10 for t in seconds.values())
    first = dense_score_backend(8)
    assert first in ("torch", "numpy") and dense_score_backend(8) == first


def test_numpy_backend_restores_blas_threads():
    # The one-thread limit on numpy's BLAS lasts only while an evaluation runs, also
    # when it fails.
    before = [(i["filepath"], i["num_threads"]) for i in threadpool_info()]
    train, target, user_emb, item_emb = seeded_case(5, 40, 300, 0.2, 8)
    Evaluator([train], score_backend="numpy").evaluate_embeddings(user_emb, item_emb, target)
    assert [(i["filepath"], i["num_threads"]) for i in threadpool_info()] == before
    with pytest.raises(ValueError, match="NaN"):
        Evaluator([train], score_backend="numpy").evaluate_embeddings(user_emb * np.nan, item_emb,
                                                                      target)
    assert [(i["filepath"], i["num_threads"]) for i in threadpool_info()] == before


# ---------------------------------------------------------------------- ratings
def test_rating_metrics_against_numpy():
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=50), rng.normal(size=50)
    expected = {"rmse": np.sqrt(np.mean((pred - target) ** 2)), "mae": np.mean(np.abs(pred - target))}
    assert rating_metrics(pred, target) == pytest.approx(expected)
    assert rating_metrics(torch.from_numpy(pred), torch.from_numpy(target)) == pytest.approx(expected)
    assert rating_metrics([1.0, 2.0], [2.0, 4.0]) == pytest.approx({"rmse": math.sqrt(2.5), "mae": 1.5})
    with pytest.raises(ValueError, match="shape"):
        rating_metrics(pred[:3], target)


def test_evaluate_ratings_batches():
    rng = np.random.default_rng(1)
    users, items = rng.integers(0, 8, 37), rng.integers(0, 9, 37)
    ratings = rng.integers(1, 6, 37).astype(np.float32)
    target = Interactions.from_arrays(users, items, num_users=8, num_items=9, rating=ratings)
    bias_u, bias_i = torch.randn(8), torch.randn(9)
    seen = []

    def predict(u, i):
        seen.append(len(u))
        return 3.0 + bias_u[u] + bias_i[i]

    result = evaluate_ratings(predict, target, batch_size=10)
    assert seen == [10, 10, 10, 7]
    pred = 3.0 + bias_u.numpy()[users] + bias_i.numpy()[items]
    assert result == pytest.approx(rating_metrics(pred, ratings), rel=1e-6)
    assert evaluate_ratings(pred, target) == pytest.approx(result, rel=1e-6)
    with pytest.raises(ValueError, match="no ratings"):
        evaluate_ratings(predict, Interactions.from_arrays(users, items))
