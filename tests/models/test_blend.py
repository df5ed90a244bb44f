import numpy as np
import pytest
import torch

from graphrec.data import Interactions, RecGraph
from graphrec.evaluate import Evaluator
from graphrec.models.blend import Blend
from graphrec.models.graph_filter import GFCF, LinearFilter
from graphrec.models.ials import IALS
from graphrec.models.mf import MF
from graphrec.models.scoring_model import NotFittedError


def random_graph(seed=0, users=40, items=30, edges=260):
    rng = np.random.default_rng(seed)
    inter = Interactions.from_arrays(rng.integers(0, users, edges), rng.integers(0, items, edges),
                                     num_users=users, num_items=items)
    return RecGraph(inter)


def naive_blend(rows, weights):
    """Σ_m w_m s_m / std(s_m), one user at a time, in float64."""
    out = np.zeros_like(rows[0], dtype=np.float64)
    for u in range(out.shape[0]):
        for s, w in zip(rows, weights):
            x = s[u].astype(np.float64)
            sd = np.sqrt(((x - x.mean()) ** 2).mean())
            out[u] += w * x / max(sd, 1e-12)
    return out


def test_scores_match_a_naive_loop_over_users_and_members():
    graph = random_graph()
    filt = LinearFilter(graph)
    ials = IALS(graph, factors=4, iterations=3)
    mf = MF(graph, dim=8)
    blend = Blend(graph, [filt, ials, mf], [1.0, 0.7, 0.2]).fit()
    assert bool(filt.fitted) and bool(ials.fitted)  # fitted by the blend
    users = torch.arange(graph.num_users)
    members = [filt.score_users(users).numpy(), ials.score_users(users).numpy(),
               (mf.user_emb.weight @ mf.item_emb.weight.T).detach().numpy()]
    want = naive_blend(members, [1.0, 0.7, 0.2])
    np.testing.assert_allclose(blend.score_users(users).numpy(), want, rtol=1e-5, atol=1e-4)


def test_one_member_keeps_its_ranking_and_the_scale_of_a_member_does_not_matter():
    graph = random_graph(seed=1)
    gfcf = GFCF(graph, rank=4, svd_iters=8).fit()
    users = torch.arange(graph.num_users)
    alone = Blend(graph, [gfcf], [3.0]).fit().score_users(users)
    ref = gfcf.score_users(users)
    assert torch.equal(alone.argsort(dim=1, stable=True), ref.argsort(dim=1, stable=True))
    # A member that scores 1000 times larger counts the same in the blend.
    big = LinearFilter(graph).fit()
    small = LinearFilter(graph).fit()
    small.score_users = lambda u: 1e-3 * big.score_users(u)  # same model, other scale
    a = Blend(graph, [gfcf, big], [1.0, 0.5]).fit().score_users(users)
    b = Blend(graph, [gfcf, small], [1.0, 0.5]).fit().score_users(users)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_a_zero_weight_member_is_not_scored_and_fitted_members_are_not_refitted():
    graph = random_graph(seed=2)
    filt = LinearFilter(graph).fit()
    ials = IALS(graph, factors=4, iterations=2, seed=3).fit()
    before = ials.user_factors.clone()
    calls = []
    ials.score_users = lambda u: calls.append(u) or torch.zeros(len(u), graph.num_items)
    users = torch.arange(graph.num_users)
    blend = Blend(graph, [filt, ials], [1.0, 0.0]).fit()
    torch.testing.assert_close(blend.score_users(users),
                               Blend(graph, [filt], [1.0]).fit().score_users(users))
    assert calls == []
    assert torch.equal(ials.user_factors, before)


def test_state_dict_round_trip_and_evaluator():
    graph = random_graph(seed=4)
    blend = Blend(graph, [GFCF(graph, rank=4, svd_iters=8), IALS(graph, factors=4, iterations=2)],
                  [1.0, 0.5]).fit()
    fresh = Blend(graph, [GFCF(graph, rank=4, svd_iters=8), IALS(graph, factors=4, iterations=2)],
                  [1.0, 0.5])
    fresh.load_state_dict(blend.state_dict())
    users = torch.arange(graph.num_users)
    torch.testing.assert_close(fresh.score_users(users), blend.score_users(users))
    rng = np.random.default_rng(5)
    target = Interactions.from_arrays(rng.integers(0, 40, 80), rng.integers(0, 30, 80),
                                      num_users=graph.num_users, num_items=graph.num_items)
    ev = Evaluator(exclude=[graph], ks=(5, 10), memory_budget_mb=0.01)  # several batches
    got = ev.evaluate(blend, target)
    ref = ev.evaluate_embeddings(blend.score_users(users), torch.eye(graph.num_items), target)
    for key in ("recall@5", "ndcg@10", "mrr@10"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12)
    frame = blend.recommend([graph.user_map.raw[0]], k=5)
    assert len(frame) == 5 and frame["score"].is_monotonic_decreasing


def test_bad_arguments_are_refused_clearly():
    graph = random_graph()
    other = random_graph(users=41)
    filt = LinearFilter(graph)
    with pytest.raises(ValueError, match="at least one member"):
        Blend(graph, [], [])
    with pytest.raises(ValueError, match="2 members need 2 weights"):
        Blend(graph, [filt, LinearFilter(graph)], [1.0])
    for bad in ([-1.0], [float("nan")], [0.0]):
        with pytest.raises(ValueError, match="weights must be finite"):
            Blend(graph, [filt], bad)
    with pytest.raises(ValueError, match="41 users"):
        Blend(graph, [LinearFilter(other)], [1.0])
    with pytest.raises(TypeError, match="ScoringModel or a Recommender"):
        Blend(graph, [torch.nn.Linear(2, 2)], [1.0])
    with pytest.raises(NotFittedError):
        Blend(graph, [filt], [1.0]).score_users(torch.arange(3))


def test_shared_members_are_built_once_per_graph():
    from graphrec.models.blend import shared_members
    built = []
    members = shared_members(lambda g: built.append(g) or [LinearFilter(g)])
    a, b = random_graph(seed=0), random_graph(seed=1)
    first = members(a)
    assert members(a) is first and len(built) == 1
    assert members(b) is not first and built == [a, b]
    assert members(b)[0].graph is b


WEIGHT_GRID = [[1.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 1.0, 2.0], [1.0, 1.5, 0.3], [0.0, 0.0, 1.0]]


def test_score_users_points_gives_each_blend_bit_for_bit():
    graph = random_graph(seed=2)
    members = [LinearFilter(graph), IALS(graph, factors=4, iterations=3), MF(graph, dim=6)]
    users = torch.arange(graph.num_users)
    blends = [Blend(graph, members, w).fit() for w in WEIGHT_GRID]
    got = [s.clone() for s in blends[0].score_users_points(users, WEIGHT_GRID)]
    assert len(got) == len(WEIGHT_GRID)
    for blend, scores in zip(blends, got):
        assert torch.equal(scores, blend.score_users(users))
    with pytest.raises(ValueError, match="weights must be finite"):
        next(blends[0].score_users_points(users, [[0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="3 members need 3 weights"):
        next(blends[0].score_users_points(users, [[1.0]]))
    with pytest.raises(NotFittedError):
        next(Blend(graph, [LinearFilter(graph)], [1.0]).score_users_points(users, [[1.0]]))


def test_evaluate_blends_ranks_a_weight_grid_in_one_pass(monkeypatch):
    from graphrec.models.blend import evaluate_blends

    graph = random_graph(seed=3)
    filt, ials = LinearFilter(graph), IALS(graph, factors=4, iterations=3)
    calls = []
    real = filt.score_users
    monkeypatch.setattr(filt, "score_users", lambda users: calls.append(len(users)) or real(users))
    rng = np.random.default_rng(6)
    target = Interactions.from_arrays(rng.integers(0, 40, 90), rng.integers(0, 30, 90),
                                      num_users=graph.num_users, num_items=graph.num_items)
    grid = [[1.0, 0.0], [1.0, 0.5], [1.0, 2.0], [0.0, 1.0]]
    blends = [Blend(graph, [filt, ials], w).fit() for w in grid]
    ev = Evaluator(exclude=[graph], ks=(5, 10))  # one batch either way: the same bits
    together = evaluate_blends(ev, blends, target)
    assert len(calls) == 1  # the filter scored once for all four points
    for blend, got in zip(blends, together):
        alone = ev.evaluate(blend, target)
        assert {k: v for k, v in got.items() if k != "eval_seconds"} == \
            {k: v for k, v in alone.items() if k != "eval_seconds"}
    # Several batches: each point's metrics are still its own ranking's.
    small = Evaluator(exclude=[graph], ks=(5, 10), memory_budget_mb=0.005)
    for blend, got in zip(blends, evaluate_blends(small, blends, target)):
        assert got["recall@10"] == pytest.approx(small.evaluate(blend, target)["recall@10"], abs=1e-12)
    with pytest.raises(ValueError, match="share their member objects"):
        evaluate_blends(ev, [blends[0], Blend(graph, [LinearFilter(graph), ials], [1.0, 1.0])],
                        target)
