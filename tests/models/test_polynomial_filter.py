import numpy as np
import pytest
import scipy.sparse as sp
import torch
from numpy.polynomial import chebyshev as npcheb

from graphrec.data import Interactions, RecGraph
from graphrec.evaluate import Evaluator
from graphrec.models.polynomial_filter import (
    ChebyshevFilter,
    chebyshev_coefficients,
    chebyshev_nodes,
    plateau,
    row_split_matmul,
)
from graphrec.models.scoring_model import NotFittedError


def random_graph(seed=0, users=40, items=30, edges=260):
    rng = np.random.default_rng(seed)
    inter = Interactions.from_arrays(rng.integers(0, users, edges), rng.integers(0, items, edges),
                                     num_users=users + 2, num_items=items + 2)  # isolated nodes too
    return RecGraph(inter)


def logistic(p):
    """A smooth (analytic) low-pass response: Chebyshev interpolation converges geometrically."""
    return 1.0 / (1.0 + np.exp(-10.0 * (np.asarray(p) - 0.5)))


def dense_parts(graph, a=0.5, b=0.5):
    """Binary R, item degrees and P~ = R~ᵀ R~, densely in float64, with
    R~ = D_U^-a R D_I^-b scaled to unit spectral norm."""
    r = (graph.ui.toarray() > 0).astype(np.float64)
    du, di = r.sum(1), r.sum(0)
    su = np.where(du > 0, np.maximum(du, 1) ** -a, 0)
    si = np.where(di > 0, np.maximum(di, 1) ** -b, 0)
    rn = su[:, None] * r * si[None, :]
    rn /= np.linalg.norm(rn, 2)
    return r, di, rn, rn.T @ rn


def dense_exact_response(p_mat, h):
    """h(P~) from the eigendecomposition of the dense P~ (spectrum clipped to [0, 1])."""
    lam, q = np.linalg.eigh(p_mat)
    return (q * h(np.clip(lam, 0.0, 1.0))) @ q.T


def dense_polynomial(p_mat, c):
    """sum_k c_k T_k(I - 2 P~), densely by the recurrence."""
    lap = np.eye(len(p_mat)) - 2.0 * p_mat
    t_prev, t_cur = np.eye(len(p_mat)), lap
    out = c[0] * t_prev + c[1] * t_cur
    for ck in c[2:]:
        t_prev, t_cur = t_cur, 2.0 * lap @ t_cur - t_prev
        out += ck * t_cur
    return out


def dense_chebycf(graph, filt, alpha=0.0, rank=0, beta=0.0, norms=(0.5, 0.5)):
    """Scores [U, I] = ((r D^-β) (filt + α V Vᵀ)) * d^β, V from an exact SVD of R~."""
    r, di, rn, _ = dense_parts(graph, *norms)
    pre = np.where(di > 0, np.maximum(di, 1) ** -beta, 0)
    post = np.where(di > 0, np.maximum(di, 1) ** beta, 0)
    m = filt.copy()
    if alpha:
        _, _, vt = np.linalg.svd(rn)
        m += alpha * vt[:rank].T @ vt[:rank]
    return (r * pre) @ m * post


def all_scores(model):
    return model.score_users(torch.arange(model.num_users)).numpy()


# --------------------------------------------------------------------- coefficients
@pytest.mark.parametrize("order", [1, 2, 5, 8, 13])
@pytest.mark.parametrize("h", [plateau(1.5), plateau(0.5), plateau(3.0), logistic])
def test_coefficients_reproduce_the_response_at_the_nodes(order, h):
    c = chebyshev_coefficients(h, order)
    x = chebyshev_nodes(order)
    assert c.shape == (order + 1,) and c.dtype == np.float64
    # The nodes are the roots of T_{K+1}, and the interpolant passes through h there.
    np.testing.assert_allclose(npcheb.chebval(x, np.eye(order + 2)[order + 1]), 0, atol=1e-12)
    np.testing.assert_allclose(npcheb.chebval(x, c), h((1 - x) / 2), atol=1e-12)


def reference_coefficients(order, flatness):
    """ChebyCF's reference recipe, transcribed as a loop (without its rounding to three
    decimals): the plateau at cos((K - j) pi / K), j = 0..K, combined with T_k at the
    nodes cos((K + 1.5 - j) pi / (K + 1)), j = 1..K+1."""
    out = np.zeros(order + 1)
    for k in range(order + 1):
        for j in range(order + 1):
            e = np.cos((order - j) * np.pi / order)
            target = 0.5 + 0.5 * abs(e) ** flatness if e < 0 else 0.5 - 0.5 * e ** flatness
            node = np.cos((order + 1.5 - (j + 1)) * np.pi / (order + 1))
            out[k] += target * np.cos(k * np.arccos(node)) * 2 / (order + 1)
    out[0] /= 2
    return out


@pytest.mark.parametrize("order", [1, 2, 6, 8, 12])
@pytest.mark.parametrize("flatness", [1.0, 1.5, 3.0])
def test_extrema_sampling_is_chebycf_s_reference_recipe(order, flatness):
    got = chebyshev_coefficients(plateau(flatness), order, sampling="extrema")
    np.testing.assert_allclose(got, reference_coefficients(order, flatness), atol=1e-12)
    if order > 1 and flatness != 1.0:  # a line is the same line however it is sampled
        assert np.abs(got - chebyshev_coefficients(plateau(flatness), order)).max() > 1e-3
    graph = random_graph()
    model = ChebyshevFilter(graph, order=order, response=flatness, ideal_weight=0.0,
                            degree_power=0.3, sampling="extrema").fit()
    _, _, _, p_mat = dense_parts(graph)
    expect = dense_chebycf(graph, dense_polynomial(p_mat, got), beta=0.3)
    np.testing.assert_allclose(all_scores(model), expect, atol=2e-5)
    with pytest.raises(ValueError, match="sampling must be one of"):
        chebyshev_coefficients(plateau(flatness), order, sampling="lobatto")


def test_plateau_special_cases():
    p = np.linspace(0, 1, 11)
    np.testing.assert_allclose(plateau(1.0)(p), p, atol=1e-15)  # GF-CF's linear filter
    h = plateau(1.5)(p)
    assert h[0] == 0 and h[-1] == 1 and h[5] == pytest.approx(0.5)
    assert np.all(np.diff(h) > 0)
    # φ = 1 at order 1: (I - L~)/2 = P~ exactly.
    np.testing.assert_allclose(chebyshev_coefficients(plateau(1.0), 1), [0.5, -0.5], atol=1e-15)


# --------------------------------------------------------------------- filtering
@pytest.mark.parametrize("backend", ["scipy", "torch"])
@pytest.mark.parametrize("order,phi,beta", [(1, 1.5, 0.0), (2, 1.5, 0.4), (5, 0.7, 0.5), (8, 1.5, 0.4)])
def test_low_order_matches_the_dense_polynomial(backend, order, phi, beta):
    graph = random_graph()
    model = ChebyshevFilter(graph, order=order, response=phi, ideal_weight=0.0,
                            degree_power=beta, backend=backend).fit()
    _, _, _, p_mat = dense_parts(graph)
    c = chebyshev_coefficients(plateau(phi), order)
    expect = dense_chebycf(graph, dense_polynomial(p_mat, c), beta=beta)
    got = all_scores(model)
    assert got.shape == (graph.num_users, graph.num_items) and got.dtype == np.float32
    np.testing.assert_allclose(got, expect, atol=2e-5)


@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_chebyshev_terms_are_the_dense_terms(backend):
    """Each yielded term is T_k(I - 2 P~) applied to the signals D^-β r_u (column form), and
    it is not modified by later terms (so callers may keep and reweigh them)."""
    graph = random_graph()
    model = ChebyshevFilter(graph, order=5, ideal_weight=0.0, degree_power=0.3, backend=backend)
    r, di, _, p_mat = dense_parts(graph)
    users = np.array([3, 0, 7, 41])
    x0 = model.signals(users)
    np.testing.assert_allclose(x0.toarray(), r[users] * np.where(di > 0, np.maximum(di, 1) ** -0.3, 0),
                               rtol=1e-6)
    terms = list(model.chebyshev_terms(x0))
    assert len(terms) == 6
    for k, term in enumerate(terms):
        expect = dense_polynomial(p_mat, np.eye(6)[k]) @ x0.toarray().T if k else x0.toarray().T
        assert term.shape == (graph.num_items, len(users))
        np.testing.assert_allclose(term.numpy(), expect, atol=2e-5)


@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_high_order_matches_the_exact_response(backend):
    graph = random_graph(seed=1)
    _, _, _, p_mat = dense_parts(graph)
    # An analytic response: geometric convergence, float32 round-off is all that is left.
    model = ChebyshevFilter(graph, order=40, response=logistic, ideal_weight=0.0,
                            degree_power=0.0, backend=backend).fit()
    np.testing.assert_allclose(all_scores(model),
                               dense_chebycf(graph, dense_exact_response(p_mat, logistic)), atol=3e-5)
    # A cubic plateau (φ = 3) is a polynomial of degree 3: exact from order 3 on.
    for order in (3, 6):
        model = ChebyshevFilter(graph, order=order, response=3.0, ideal_weight=0.0,
                                degree_power=0.3, backend=backend).fit()
        expect = dense_chebycf(graph, dense_exact_response(p_mat, plateau(3.0)), beta=0.3)
        np.testing.assert_allclose(all_scores(model), expect, atol=2e-5)


def test_plateau_error_is_bounded_by_the_uniform_interpolation_error():
    """For the non-smooth plateau φ = 1.5 the filtered rows differ from h(P~) r by at most
    the interpolant's uniform error on [-1, 1] times |r| (P~ is symmetric), and that error
    shrinks with the order."""
    graph = random_graph(seed=2)
    r, _, _, p_mat = dense_parts(graph)
    exact = dense_chebycf(graph, dense_exact_response(p_mat, plateau(1.5)))
    grid = np.linspace(-1, 1, 20001)
    errors = []
    for order in (8, 32, 96):
        c = chebyshev_coefficients(plateau(1.5), order)
        sup = np.abs(npcheb.chebval(grid, c) - plateau(1.5)((1 - grid) / 2)).max()
        model = ChebyshevFilter(graph, order=order, response=1.5, ideal_weight=0.0,
                                degree_power=0.0).fit()
        row_err = np.linalg.norm(all_scores(model) - exact, axis=1)
        assert np.all(row_err <= sup * np.linalg.norm(r, axis=1) * 1.001 + 1e-5)
        errors.append(sup)
    assert errors[0] > errors[1] > errors[2] and errors[2] < 5e-3


@pytest.mark.parametrize("backend", ["scipy", "torch"])
@pytest.mark.parametrize("norms", [(0.5, 0.5), (0.35, 0.45), (0.7, 0.0)])
def test_chebycf_with_ideal_part_and_degree_norm_matches_dense(backend, norms):
    graph = random_graph()
    _, _, _, p_mat = dense_parts(graph, *norms)
    model = ChebyshevFilter(graph, order=6, response=1.5, ideal_weight=0.3, rank=5,
                            degree_power=0.4, svd_iters=10, backend=backend,
                            user_norm=norms[0], item_norm=norms[1]).fit()
    c = chebyshev_coefficients(plateau(1.5), 6)
    expect = dense_chebycf(graph, dense_polynomial(p_mat, c), alpha=0.3, rank=5, beta=0.4,
                           norms=norms)
    got = all_scores(model)
    np.testing.assert_allclose(got, expect, atol=3e-5)
    # Isolated users and items score 0; any subset of users, in any order, gets the same rows.
    assert not got[-2:].any() and not got[:, -2:].any()
    sub = torch.tensor([5, 0, 41, 5])
    np.testing.assert_allclose(model.score_users(sub).numpy(), got[sub.numpy()], atol=1e-6)


def test_threads_split_the_sparse_products_without_changing_results():
    m = sp.random(50, 30, density=0.2, format="csr", dtype=np.float32, random_state=0)
    y = np.random.default_rng(0).random((30, 7), dtype=np.float32)
    for threads in (1, 2, 3, 40):
        np.testing.assert_allclose(row_split_matmul(m, y, threads), m @ y, rtol=1e-6)
    graph = random_graph()
    model = ChebyshevFilter(graph, order=6, rank=4, svd_iters=8).fit()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = all_scores(model)
        torch.set_num_threads(2)
        two = all_scores(model)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(two, one, atol=1e-6)


# --------------------------------------------------------------------- protocol
def test_state_dict_round_trip_and_recommend():
    graph = random_graph()
    model = ChebyshevFilter(graph, order=5, response=1.5, rank=4, svd_iters=8).fit()
    fresh = ChebyshevFilter(graph, order=5, response=1.5, rank=4, svd_iters=8)
    assert set(model.state_dict()) == {"fitted", "coefficients", "ideal.fitted",
                                       "ideal.singular_values", "ideal.item_vectors"}
    fresh.load_state_dict(model.state_dict())
    users = torch.arange(graph.num_users)
    torch.testing.assert_close(fresh.score_users(users), model.score_users(users))
    raw_user = graph.user_map.raw[3]
    frame = model.recommend([raw_user], k=5)
    seen = set(graph.item_map.raw[graph.ui[3].indices])
    assert len(frame) == 5 and not seen & set(frame["item"])
    assert frame["score"].is_monotonic_decreasing
    # Without an ideal part nothing but the coefficients is saved.
    assert set(ChebyshevFilter(graph, ideal_weight=0.0).state_dict()) == {"fitted", "coefficients"}


def test_not_fitted_and_bad_hyper_parameters():
    graph = random_graph()
    with pytest.raises(NotFittedError):
        ChebyshevFilter(graph, rank=4).score_users(torch.tensor([0]))
    bad = [
        (dict(order=0), "order"), (dict(order=2.5), "order"), (dict(order=True), "order"),
        (dict(order="8"), "order"), (dict(order=None), "order"),
        (dict(response=0.0), "flatness"), (dict(response=-1.0), "flatness"),
        (dict(response=float("nan")), "flatness"), (dict(response="plateau"), "response"),
        (dict(response=lambda p: np.full(3, 0.5)), "response"),
        (dict(response=lambda p: np.full_like(p, np.nan)), "finite"),
        (dict(ideal_weight=-0.1), "ideal_weight"), (dict(ideal_weight=float("inf")), "ideal_weight"),
        (dict(rank=0, ideal_weight=0.2), "rank"), (dict(rank=1000), "rank"),
        (dict(degree_power=float("nan")), "degree_power"), (dict(backend="cuda"), "backend"),
    ]
    for kwargs, match in bad:
        with pytest.raises(ValueError, match=match):
            ChebyshevFilter(graph, **kwargs)
    model = ChebyshevFilter(graph, rank=4).fit()
    with pytest.raises(IndexError, match="user indices"):
        model.score_users(torch.tensor([graph.num_users]))


def test_evaluator_scores_the_model_like_given_scores():
    graph = random_graph(seed=2)
    rng = np.random.default_rng(5)
    target = Interactions.from_arrays(rng.integers(0, 40, 80), rng.integers(0, 30, 80),
                                      num_users=graph.num_users, num_items=graph.num_items)
    model = ChebyshevFilter(graph, order=6, rank=4, svd_iters=8).fit()
    ev = Evaluator(exclude=[graph], ks=(5, 10), memory_budget_mb=0.05)  # several batches
    assert ev.batch_size(graph.num_items, extra_bytes=model.workspace_bytes_per_user()) < 40
    got = ev.evaluate(model, target)
    scores = model.score_users(torch.arange(graph.num_users))
    ref = ev.evaluate_embeddings(scores, torch.eye(graph.num_items), target)
    for key in ("recall@5", "ndcg@10", "precision@10", "mrr@10", "coverage@5"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12)

