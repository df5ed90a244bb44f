import numpy as np
import pytest
import torch

from graphrec.data import Interactions, RecGraph
from graphrec.data.splits import per_user_split
from graphrec.datasets import synthetic
from graphrec.models import GFCF, AttentiveFilter, ChebyshevFilter
from graphrec.models.scoring_model import NotFittedError
from graphrec.training import TrainConfig, Trainer


def graph(seed=0, users=40, items=30, edges=300):
    rng = np.random.default_rng(seed)
    return RecGraph(Interactions.from_arrays(rng.integers(0, users, edges), rng.integers(0, items, edges),
                                             num_users=users, num_items=items))


def perturb(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g))
    return model


def test_fitted_model_is_gfcf():
    g = graph()
    ours = AttentiveFilter(g, rank=12, ideal_weight=0.4, feature_rank=6).fit()
    ref = GFCF(g, rank=12, ideal_weight=0.4).fit()
    users = torch.arange(g.num_users)
    torch.testing.assert_close(ours.score_users(users), ref.score_users(users), rtol=1e-5, atol=1e-6)
    w1, w2 = ours.edge_weights()
    u, i = g.edges()
    du, di = np.bincount(u, minlength=g.num_users), np.bincount(i, minlength=g.num_items)
    norm = 1 / np.sqrt(du[u] * di[i])
    np.testing.assert_allclose(w1.detach().numpy(), norm, rtol=1e-5)
    np.testing.assert_allclose(w2.detach().numpy(), norm, rtol=1e-5)


@pytest.mark.parametrize("power", [0.0, 0.3, 0.5])
def test_degree_normalised_fit_is_the_linear_chebyshev_filter(power):
    # ChebyCF's filter with the linear response h(p) = p at order 1 is exactly
    # R̃ᵀR̃ + α V Vᵀ inside the degree normalisation: the same closed form, other code.
    g = graph(2)
    ours = AttentiveFilter(g, rank=12, ideal_weight=0.25, feature_rank=6, degree_power=power).fit()
    ref = ChebyshevFilter(g, order=1, response=1.0, ideal_weight=0.25, rank=12,
                           degree_power=power).fit()
    users = torch.arange(g.num_users)
    torch.testing.assert_close(ours.score_users(users), ref.score_users(users), rtol=1e-4, atol=1e-5)


def test_degree_power_must_be_finite():
    with pytest.raises(ValueError, match="degree_power"):
        AttentiveFilter(graph(), rank=12, feature_rank=6, degree_power=float("nan"))


@pytest.mark.parametrize("first_hop,power", [(False, None), (True, None), (False, 0.3), (True, 0.4)])
def test_training_scores_equal_the_dense_filter_without_the_batch_edges(first_hop, power):
    g = graph(1)
    model = perturb(AttentiveFilter(g, rank=10, feature_rank=5, first_hop_attention=first_hop,
                                    degree_power=power).fit())
    users, pos = torch.tensor([0, 3, 3, 7]), torch.tensor([0, 0, 0, 0])
    u_np, i_np = g.edges()
    # positives that are training edges of their user
    for k, user in enumerate(users.tolist()):
        pos[k] = int(i_np[u_np == user][k % 2])
    neg = torch.tensor([[1, 2], [5, 6], [7, 8], [9, 29]])
    got_pos, got_neg = model.score_pairs(users, pos, neg)

    hidden = {(int(a), int(b)) for a, b in zip(users, pos)}
    keep = np.array([(a, b) not in hidden for a, b in zip(u_np, i_np)])
    w1, w2 = (w.detach().numpy().astype(np.float64) for w in model.edge_weights(torch.from_numpy(keep)))
    first = np.zeros((g.num_users, g.num_items))   # W1[v, i]: item i -> user v
    second = np.zeros((g.num_items, g.num_users))  # W2[j, v]: user v -> item j
    np.add.at(first, (u_np, i_np), w1)
    np.add.at(second, (i_np, u_np), w2)
    x = np.zeros((g.num_users, g.num_items))
    np.add.at(x, (u_np[keep], i_np[keep]), 1.0)
    v = model.item_vectors.numpy().astype(np.float64)
    d = np.bincount(i_np, minlength=g.num_items).astype(float)
    lin, ide = (0.0, 0.5) if power is None else (power, power)
    with np.errstate(divide="ignore"):
        lin_in, ide_in = (np.where(d > 0, d ** -a, 0.0) for a in (lin, ide))
        lin_out, ide_out = (np.where(d > 0, d ** a, 0.0) for a in (lin, ide))
    ideal = ((x * ide_in) @ v @ v.T) * ide_out
    scores = (second @ first @ (x * lin_in).T).T * lin_out + model.ideal_weight * ideal
    scores *= float(model.log_scale.detach().exp())  # training scores carry the learned scale
    np.testing.assert_allclose(got_pos.detach().numpy(), scores[users, pos], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got_neg.detach().numpy(), scores[users[:, None], neg], rtol=1e-4, atol=1e-6)
    got_pos.sum().backward()
    assert model.to_item.beta.grad is not None and model.user_bias.grad.abs().sum() > 0
    assert (model.to_user.beta is not None) == first_hop


def test_trains_with_the_trainer_and_evaluates_with_the_learned_weights(tmp_path):
    inter = synthetic(num_users=60, num_items=40, seed=2).interactions
    split = per_user_split(inter, ratios=(0.8, 0.1, 0.1), seed=0)
    model = AttentiveFilter(RecGraph(split.train), rank=16, feature_rank=8).fit()
    users = torch.arange(60)
    before = model.score_users(users)
    with pytest.raises(NotFittedError):
        AttentiveFilter(RecGraph(split.train), rank=16, feature_rank=8).score_pairs(
            torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    Trainer(model, split.valid, TrainConfig(epochs=2, batch_size=128, lr=0.05, patience=0,
                                            progress=False, ks=(5,), monitor="recall@5",
                                            mask_batch_edges=True, validate_start=False)).fit()
    after = model.score_users(users)
    assert float(model.to_item.beta.detach().abs().sum()) > 0
    assert not torch.allclose(before, after)
    restored = AttentiveFilter(RecGraph(split.train), rank=16, feature_rank=8)
    restored.load_state_dict(model.state_dict())
    restored.eval()
    torch.testing.assert_close(restored.score_users(users), after)


def test_bad_ranks_are_refused():
    with pytest.raises(ValueError, match="feature_rank"):
        AttentiveFilter(graph(), rank=8, feature_rank=9)


def test_attention_feeds_the_explanations():
    from graphrec.explain.weights import model_attention

    g = graph(3)
    model = perturb(AttentiveFilter(g, rank=10, feature_rank=5, first_hop_attention=True).fit())
    (layer,) = model_attention(model)
    u, i = g.edges()
    for key, owner, n in (("item_to_user", u, g.num_users), ("user_to_item", i, g.num_items)):
        w = layer[key][:, 0].numpy()
        assert w.shape == (g.num_edges,)
        sums = np.bincount(owner, weights=w, minlength=n)
        np.testing.assert_allclose(sums[np.bincount(owner, minlength=n) > 0], 1.0, rtol=1e-5)


def test_scores_follow_every_optimiser_step():
    """Evaluation caches a weighted Gram matrix; an optimiser step (fused kernels do not
    bump version counters) must not leave it stale."""
    inter = synthetic(num_users=50, num_items=40, seed=4).interactions
    g = RecGraph(inter)
    model = AttentiveFilter(g, rank=12, feature_rank=6).fit()
    users = torch.arange(50)
    trainer = Trainer(model, None, TrainConfig(batch_size=64, lr=0.5, progress=False))
    before = model.score_users(users)
    trainer.train_batch(torch.arange(64), torch.randint(0, 40, (64, 1)))  # no mode switch
    with torch.no_grad():
        fresh = AttentiveFilter(g, rank=12, feature_rank=6)
        fresh.load_state_dict(model.state_dict())
        fresh.eval()
    after = model.score_users(users)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, fresh.score_users(users))


def test_training_scale_starts_typical_positives_at_logit_one_and_old_weights_load():
    g = graph(3)
    model = AttentiveFilter(g, rank=12, feature_rank=6, score_scale=True).fit()
    u, i = (torch.from_numpy(a) for a in g.edges())
    users = torch.arange(g.num_users)
    # The sample covers every edge of this small graph.
    mean = float(model.score_users(users)[u, i].mean())
    assert mean * float(model.log_scale.exp()) == pytest.approx(1.0, rel=1e-4)
    state = {k: v for k, v in model.state_dict().items() if k != "log_scale"}
    fresh = AttentiveFilter(g, rank=12, feature_rank=6, score_scale=True)
    fresh.load_state_dict(state)
    assert float(fresh.log_scale) == 0.0
    torch.testing.assert_close(fresh.score_users(users), model.score_users(users))


def test_raw_training_scores_without_the_scale():
    g = graph(3)
    model = AttentiveFilter(g, rank=12, feature_rank=6).fit()
    assert float(model.log_scale) == 0.0 and not model.log_scale.requires_grad
    u, i = (torch.from_numpy(a[:5]) for a in g.edges())
    scaled = AttentiveFilter(g, rank=12, feature_rank=6, score_scale=True).fit()
    raw_pos, _ = model.score_pairs(u, i, i[:, None])
    pos, _ = scaled.score_pairs(u, i, i[:, None])
    torch.testing.assert_close(pos, raw_pos * scaled.log_scale.exp())


def _user_attention_reference(model, x):
    """softmax_v(β cos(p_u, p_v)) @ x, in float64 from the model's own features."""
    p = model.user_features.numpy().astype(np.float64)
    p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    logits = float(model.user_attention.beta) * (p @ p.T)
    w = np.exp(logits - logits.max(1, keepdims=True))
    return (w / w.sum(1, keepdims=True)) @ x


def test_user_attention_ranks_by_attention_over_all_users():
    g = graph(4)
    model = AttentiveFilter(g, rank=8, feature_rank=8, user_attention=3.0).fit()
    u, i = g.edges()
    x = np.zeros((g.num_users, g.num_items))
    x[u, i] = 1.0
    got = model.score_users(torch.arange(g.num_users)).numpy()
    np.testing.assert_allclose(got, _user_attention_reference(model, x), rtol=1e-4, atol=1e-6)
    # Not the filter: the mode replaces its scores.
    filt = AttentiveFilter(g, rank=8, feature_rank=8).fit().score_users(torch.arange(g.num_users))
    assert not np.allclose(got, filt.numpy(), atol=1e-3)


def test_user_attention_training_scores_hide_the_batch_edges_and_learn_beta():
    g = graph(5)
    model = AttentiveFilter(g, rank=8, feature_rank=6, user_attention=2.0).fit()
    u_np, i_np = g.edges()
    users = torch.tensor([1, 4, 4])
    pos = torch.tensor([int(i_np[u_np == 1][0]), int(i_np[u_np == 4][0]), int(i_np[u_np == 4][1])])
    neg = torch.tensor([[3, 5], [6, 7], [8, 29]])
    got_pos, got_neg = model.score_pairs(users, pos, neg)
    hidden = {(int(a), int(b)) for a, b in zip(users, pos)}
    x = np.zeros((g.num_users, g.num_items))
    for a, b in zip(u_np, i_np):
        if (a, b) not in hidden:
            x[a, b] = 1.0
    scores = _user_attention_reference(model, x)
    np.testing.assert_allclose(got_pos.detach().numpy(), scores[users, pos], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got_neg.detach().numpy(), scores[users[:, None], neg], rtol=1e-4, atol=1e-6)
    (got_pos.sum() - got_neg.sum()).backward()
    assert float(model.user_attention.beta.grad.abs()) > 0


def test_user_attention_trains_saves_and_restores(tmp_path):
    inter = synthetic(num_users=60, num_items=40, seed=3).interactions
    split = per_user_split(inter, ratios=(0.8, 0.1, 0.1), seed=0)
    model = AttentiveFilter(RecGraph(split.train), rank=8, feature_rank=8, user_attention=2.0).fit()
    Trainer(model, split.valid, TrainConfig(epochs=2, batch_size=128, lr=0.1, patience=0,
                                            progress=False, ks=(5,), monitor="recall@5",
                                            mask_batch_edges=True, validate_start=False)).fit()
    assert float(model.user_attention.beta) != 2.0
    restored = AttentiveFilter(RecGraph(split.train), rank=8, feature_rank=8, user_attention=2.0)
    restored.load_state_dict(model.state_dict())
    users = torch.arange(60)
    torch.testing.assert_close(restored.score_users(users), model.score_users(users))


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_user_attention_must_be_a_finite_sharpness(bad):
    with pytest.raises(ValueError, match="user_attention"):
        AttentiveFilter(graph(), rank=8, feature_rank=6, user_attention=bad)
