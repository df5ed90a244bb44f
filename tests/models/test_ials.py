import numpy as np
import pytest
import torch

from graphrec.data import Interactions, RecGraph
from graphrec.data.splits import per_user_split
from graphrec.datasets import synthetic
from graphrec.evaluate import Evaluator
from graphrec.linalg import to_torch_csr
from graphrec.models.ials import IALS, ials_loss, solve_cg
from graphrec.models.scoring_model import NotFittedError


def random_graph(seed=0, users=40, items=30, edges=300):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, users, edges), rng.integers(0, items, edges)
    # A repeated pair must count once: its value (2) is binarised.
    inter = Interactions.from_arrays(np.r_[u, u[:5]], np.r_[i, i[:5]],
                                     num_users=users + 2, num_items=items + 2)  # isolated nodes
    return RecGraph(inter)


def dense(graph):
    return (graph.ui.toarray() > 0).astype(np.float64)


def naive_reg(r, l2, alpha, nu):
    """λ_u and λ_i from the definition: λ (Σ_i c_ui)^ν with c = 1 + α r."""
    c = 1.0 + alpha * r
    return l2 * c.sum(1) ** nu, l2 * c.sum(0) ** nu


def naive_solve(r, y, alpha, reg):
    """Each row's normal equations of Σ_i c_ui (p_ui - x·y_i)² + λ_u |x|², one by one."""
    out = []
    for u in range(r.shape[0]):
        c = 1.0 + alpha * r[u]
        a = y.T @ (c[:, None] * y) + reg[u] * np.eye(y.shape[1])
        out.append(np.linalg.solve(a, y.T @ (c * r[u])))
    return np.array(out)


def naive_loss(r, x, y, alpha, reg_u, reg_i):
    c = 1.0 + alpha * r
    return float((c * (r - x @ y.T) ** 2).sum() + reg_u @ (x**2).sum(1) + reg_i @ (y**2).sum(1))


@pytest.mark.parametrize("alpha,nu", [(4.0, 1.0), (0.0, 0.0), (20.0, 0.5)])
def test_exact_half_sweep_matches_naive_solve(alpha, nu):
    graph = random_graph()
    r = dense(graph)
    f = 5
    reg_u, reg_i = naive_reg(r, 1e-2, alpha, nu)
    model = IALS(graph, factors=f, l2=1e-2, alpha=alpha, reg_exponent=nu)
    got_u, got_i = model.regularization()
    np.testing.assert_allclose(got_u.numpy(), reg_u, rtol=1e-6)
    np.testing.assert_allclose(got_i.numpy(), reg_i, rtol=1e-6)

    rng = np.random.default_rng(1)
    x0, y = rng.normal(size=(r.shape[0], f)), rng.normal(size=(r.shape[1], f))
    csr = to_torch_csr(model._ui).double()
    # f CG steps solve an f-dimensional SPD system exactly (float64, in blocks of 7 rows).
    got = solve_cg(torch.from_numpy(x0), torch.from_numpy(y), csr, alpha,
                   torch.from_numpy(reg_u), steps=f, block_rows=7).numpy()
    np.testing.assert_allclose(got, naive_solve(r, y, alpha, reg_u), rtol=0, atol=1e-9)
    # Item side: the same solve on the transposed matrix.
    csr_t = to_torch_csr(model._ui.T.tocsr()).double()
    got = solve_cg(torch.from_numpy(y), torch.from_numpy(x0), csr_t, alpha,
                   torch.from_numpy(reg_i), steps=f).numpy()
    np.testing.assert_allclose(got, naive_solve(r.T, x0, alpha, reg_i), rtol=0, atol=1e-9)


def test_fit_solves_the_item_side_given_the_users():
    """After one exact sweep the items are the float32 solve given the new users: the
    model wires the transposed matrix and the item regulariser correctly."""
    graph = random_graph()
    r = dense(graph)
    model = IALS(graph, factors=4, l2=3e-3, alpha=5.0, iterations=1, cg_steps=4).fit()
    _, reg_i = naive_reg(r, 3e-3, 5.0, 1.0)
    x = model.user_factors.double().numpy()
    np.testing.assert_allclose(model.item_factors.numpy(), naive_solve(r.T, x, 5.0, reg_i),
                               rtol=1e-3, atol=1e-5)


def test_truncated_cg_lowers_each_rows_objective():
    """Every CG step lowers ½xᵀAx − bᵀx row by row (what makes truncated sweeps safe)."""
    graph = random_graph(seed=3)
    r = dense(graph)
    alpha, f = 3.0, 6
    reg_u, _ = naive_reg(r, 1e-2, alpha, 1.0)
    rng = np.random.default_rng(0)
    x0, y = rng.normal(size=(r.shape[0], f)), rng.normal(size=(r.shape[1], f))
    csr = to_torch_csr(IALS(graph)._ui).double()

    def objective(x):
        c = 1.0 + alpha * r
        return (c * (r - x @ y.T) ** 2).sum(1) + reg_u * (x**2).sum(1)

    prev = objective(x0)
    exact = objective(naive_solve(r, y, alpha, reg_u))
    for steps in range(1, f + 1):
        x = solve_cg(torch.from_numpy(x0), torch.from_numpy(y), csr, alpha,
                     torch.from_numpy(reg_u), steps).numpy()
        cur = objective(x)
        assert np.all(cur <= prev + 1e-9)
        prev = cur
    np.testing.assert_allclose(prev, exact, rtol=1e-10, atol=1e-12)
    assert (objective(x0) - exact).min() > 1e-3  # the start was not already optimal


def test_loss_matches_dense_definition():
    graph = random_graph()
    r = dense(graph)
    model = IALS(graph, factors=3, l2=1e-2, alpha=7.0, iterations=2).fit()
    reg_u, reg_i = naive_reg(r, 1e-2, 7.0, 1.0)
    x, y = model.user_factors.double().numpy(), model.item_factors.double().numpy()
    expect = naive_loss(r, x, y, 7.0, reg_u, reg_i)
    assert model.loss() == pytest.approx(expect, rel=1e-6)
    csr = to_torch_csr(model._ui)
    assert ials_loss(torch.zeros(42, 3), torch.zeros(32, 3), csr, 7.0, torch.ones(42),
                     torch.ones(32)) == pytest.approx(8.0 * r.sum())  # c·(1 − 0)² per pair


@pytest.mark.parametrize("cg_steps", [1, 3, 8])
def test_loss_decreases_over_iterations(cg_steps):
    graph = random_graph(seed=2)
    losses = [IALS(graph, factors=8, l2=1e-3, alpha=10.0, iterations=it, cg_steps=cg_steps,
                   seed=4).fit().loss() for it in range(1, 7)]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.8 * losses[0]


def test_seed_determines_factors():
    graph = random_graph()
    a = IALS(graph, factors=6, seed=5, iterations=3).fit()
    b = IALS(graph, factors=6, seed=5, iterations=3).fit()
    c = IALS(graph, factors=6, seed=6, iterations=3).fit()
    assert torch.equal(a.user_factors, b.user_factors)
    assert torch.equal(a.item_factors, b.item_factors)
    assert not torch.allclose(a.item_factors, c.item_factors)


def test_state_dict_round_trip():
    graph = random_graph()
    model = IALS(graph, factors=6, iterations=3).fit()
    users = torch.arange(graph.num_users)
    restored = IALS(graph, factors=6)
    restored.load_state_dict(model.state_dict())
    assert bool(restored.fitted)
    assert torch.equal(restored.score_users(users), model.score_users(users))
    with pytest.raises(RuntimeError, match="size mismatch"):
        IALS(graph, factors=7).load_state_dict(model.state_dict())


def test_scores_are_dot_products_and_recommend_excludes_training_items():
    graph = random_graph()
    model = IALS(graph, factors=6, iterations=4).fit()
    users = torch.tensor([3, 0, 41, 3])
    scores = model.score_users(users)
    expect = model.user_factors[users] @ model.item_factors.T
    assert scores.shape == (4, graph.num_items) and scores.dtype == torch.float32
    torch.testing.assert_close(scores, expect)

    r = dense(graph)
    rec = model.recommend(np.arange(graph.num_users), k=5)
    assert len(rec) == 5 * graph.num_users
    assert not any(r[u, i] for u, i in zip(rec["user"], rec["item"]))
    # The top unseen items of user 0, from the raw scores.
    full = model.score_users(torch.arange(graph.num_users)).numpy().astype(np.float64)
    full[r > 0] = -np.inf
    top0 = rec[rec["user"] == 0].sort_values("rank")["item"].to_numpy()
    np.testing.assert_array_equal(top0, np.argsort(-full[0], kind="stable")[:5])


def test_not_fitted_and_bad_hyper_parameters():
    graph = random_graph()
    with pytest.raises(NotFittedError):
        IALS(graph).score_users(torch.tensor([0]))
    for kwargs, match in [({"factors": 0}, "factors must be a positive integer"),
                          ({"factors": 2.5}, "factors must be a positive integer"),
                          ({"l2": 0.0}, "l2 must be positive"),
                          ({"l2": float("nan")}, "l2 must be positive"),
                          ({"alpha": -1.0}, "alpha must be >= 0"),
                          ({"iterations": 0}, "iterations must be a positive integer"),
                          ({"cg_steps": 0}, "cg_steps must be a positive integer"),
                          ({"init_std": 0.0}, "init_std must be positive"),
                          ({"reg_exponent": -1.0}, "reg_exponent must be >= 0")]:
        with pytest.raises(ValueError, match=match):
            IALS(graph, **kwargs)


@pytest.mark.filterwarnings("ignore:OpenBLAS is configured:RuntimeWarning")
def test_matches_implicit_cg_sweep():
    """One iteration with 3 CG steps equals ``implicit``'s, started from the same factors
    (its confidence is α·r, ours 1 + α·r; its λ is unscaled: ν = 0)."""
    implicit_als = pytest.importorskip("implicit.cpu.als")
    graph = random_graph(seed=4)
    model = IALS(graph, factors=5, l2=0.05, alpha=9.0, iterations=1, cg_steps=3,
                 reg_exponent=0.0, seed=1).fit()
    x0, y0 = model.initial_factors()
    theirs = implicit_als.AlternatingLeastSquares(factors=5, regularization=0.05, alpha=10.0,
                                                  iterations=1, use_cg=True, num_threads=1)
    theirs.cg_steps = 3
    theirs.user_factors, theirs.item_factors = x0.numpy().copy(), y0.numpy().copy()
    theirs.fit(model._ui, show_progress=False)
    np.testing.assert_allclose(model.user_factors.numpy(), theirs.user_factors,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.item_factors.numpy(), theirs.item_factors,
                               rtol=1e-4, atol=1e-6)


def test_beats_popularity_on_synthetic_communities():
    data = synthetic(num_users=400, num_items=300, num_communities=6, avg_degree=20,
                     social=False, ratings=False, timestamps=False, seed=0)
    split = per_user_split(data.interactions, ratios=(0.8, 0.0, 0.2), seed=0)
    graph = RecGraph(split.train)
    ev = Evaluator(exclude=[split.train], ks=(20,), metrics=("recall",))
    model = IALS(graph, factors=16, l2=1e-3, alpha=10.0, iterations=8).fit()
    got = ev.evaluate(model, split.test)["recall@20"]
    pop = torch.from_numpy(np.bincount(graph.ui.indices, minlength=graph.num_items)).float()
    base = ev.evaluate_embeddings(torch.ones(graph.num_users, 1), pop[:, None],
                                  split.test)["recall@20"]
    assert got > 1.3 * base, (got, base)


def test_embeddings_are_the_factors_and_rank_like_the_scores(monkeypatch):
    # The Evaluator ranks iALS by its embeddings (norm-ordered stages, forced on here for
    # a small catalogue) with the same per-user metrics as ranking its scores directly.
    import graphrec.evaluate as evaluate_module

    data = synthetic(num_users=300, num_items=250, num_communities=5, avg_degree=15,
                     social=False, ratings=False, timestamps=False, seed=1)
    split = per_user_split(data.interactions, ratios=(0.8, 0.0, 0.2), seed=0)
    graph = RecGraph(split.train)
    model = IALS(graph, factors=8, iterations=4)
    with pytest.raises(NotFittedError):
        model.embeddings()
    model.fit()
    user_emb, item_emb = model.embeddings()
    assert torch.equal(user_emb @ item_emb.T, model.score_users(torch.arange(graph.num_users)))
    monkeypatch.setattr(evaluate_module, "_FIRST_STAGE", 16)
    ev = Evaluator(exclude=[split.train], ks=(10, 20))
    result, frame = ev.evaluate(model, split.test, per_user=True)
    assert ev.last_scored_fraction is not None  # ranked from the embeddings
    direct, direct_frame = ev.evaluate_scores(model.score_users, graph.num_users, graph.num_items,
                                              split.test, per_user=True)
    for col in frame.columns:
        np.testing.assert_allclose(frame[col].to_numpy(), direct_frame[col].to_numpy(),
                                   rtol=1e-9, atol=1e-12, err_msg=col)
