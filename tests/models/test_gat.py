import numpy as np
import pytest
import torch

from graphrec.data import Interactions, RecGraph
from graphrec.models import LightGCN
from graphrec.models.gat import GATRecommender


def graph(seed=0, users=25, items=18, edges=110):
    rng = np.random.default_rng(seed)
    return RecGraph(Interactions.from_arrays(rng.integers(0, users, edges), rng.integers(0, items, edges),
                                             num_users=users + 1, num_items=items + 2))


def copied_pair(g, heads=1):
    gat = GATRecommender(g, dim=8, num_layers=3, heads=heads)
    light = LightGCN(g, dim=8, num_layers=3)
    light.load_state_dict({k: v for k, v in gat.state_dict().items() if k != "beta"})
    return gat, light


def test_starts_exactly_as_lightgcn():
    g = graph()
    gat, light = copied_pair(g, heads=2)
    for a, b in zip(gat.propagate(), light.propagate()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_mask_matches_lightgcn_mask():
    g = graph(1)
    gat, light = copied_pair(g)
    mask = torch.from_numpy(np.random.default_rng(0).random(g.num_edges) > 0.4)
    for a, b in zip(gat.propagate(mask), light.propagate(mask)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_frozen_zero_beta_takes_the_lightgcn_path_with_the_same_values_and_gradients(rows_pass):
    g = graph(1)
    gat, _ = copied_pair(g)
    mask = torch.from_numpy(np.random.default_rng(1).random(g.num_edges) > 0.3)
    users, items = torch.tensor([0, 2, 5]), torch.tensor([1, 3, 4])

    def run(rows=False):
        return rows_pass(gat, users, items, mask, rows, lambda u, i: (u * i).sum())

    assert not gat.is_lightgcn()
    attention, attention_rows = run(), run(rows=True)
    gat.beta.requires_grad_(False)
    assert gat.is_lightgcn()
    fast, fast_rows = run(), run(rows=True)
    for a, b, c, d in zip(attention, attention_rows, fast, fast_rows):
        for other in (b, c, d):
            torch.testing.assert_close(other, a, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        gat.beta.fill_(2.0)
    assert not gat.is_lightgcn()  # a frozen non-zero β still attends
    gat.beta.requires_grad_(True)


def test_attention_changes_weights_but_not_row_mass():
    """With β ≠ 0 the output differs from LightGCN, yet each node's weights still sum
    to LightGCN's row sum (attention redistributes mass, it does not add any)."""
    g = graph(2)
    gat, light = copied_pair(g)
    with torch.no_grad():
        gat.beta.fill_(3.0)
        gat.user_emb.weight.fill_(1.0)
        gat.item_emb.weight.fill_(1.0)
        light.user_emb.weight.fill_(1.0)
        light.item_emb.weight.fill_(1.0)
    # constant embeddings: cosines are all 1, so attention equals the prior again
    for a, b in zip(gat.propagate(), light.propagate()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    gat.reset_parameters()
    with torch.no_grad():
        gat.beta.fill_(3.0)
    light.load_state_dict({k: v for k, v in gat.state_dict().items() if k != "beta"})
    assert not torch.allclose(gat.propagate()[0], light.propagate()[0], atol=1e-4)


def test_gradients_reach_beta_and_embeddings():
    g = graph(3)
    gat = GATRecommender(g, dim=8, num_layers=2, heads=2)
    u, i = gat.propagate()
    (u[:5] @ i[:5].T).sum().backward()
    assert gat.beta.grad is not None and gat.beta.grad.abs().sum() > 0
    assert torch.isfinite(gat.user_emb.weight.grad).all()


def test_attention_weights_in_edge_order_match_lightgcn_at_init():
    """At β = 0 the item → user attention of edge (u, i) is d_i^{-1/2} / Σ_k d_k^{-1/2}
    over u's items; every user's weights sum to 1 in every layer and head."""
    g = graph(3)
    gat = GATRecommender(g, dim=8, num_layers=2, heads=2)
    layers = gat.attention()
    assert len(layers) == 2
    users, items = g.edges()
    d_i = np.bincount(items, minlength=g.num_items).astype(float)
    w = d_i[items] ** -0.5
    expected = w / np.bincount(users, weights=w, minlength=g.num_users)[users]
    for layer in layers:
        a = layer["item_to_user"].numpy()
        assert a.shape == (g.num_edges, 2)
        np.testing.assert_allclose(a[:, 0], expected, rtol=1e-5)
        np.testing.assert_allclose(a[:, 1], expected, rtol=1e-5)
        sums = np.bincount(items, weights=layer["user_to_item"][:, 0].numpy(), minlength=g.num_items)
        np.testing.assert_allclose(sums[d_i > 0], 1.0, rtol=1e-5)
    assert gat.training  # the call restores the module's mode


def test_attention_follows_beta():
    g = graph(4)
    gat = GATRecommender(g, dim=8, num_layers=1)
    with torch.no_grad():
        gat.beta.fill_(5.0)
    a = gat.attention()[0]["item_to_user"][:, 0].numpy()
    users, items = g.edges()
    ue, ie = (torch.nn.functional.normalize(e, dim=-1) for e in (gat.user_emb.weight, gat.item_emb.weight))
    cos = (ue[users] * ie[items]).sum(-1).detach().numpy()
    d_i = np.bincount(items, minlength=g.num_items).astype(float)
    logits = 5.0 * cos - 0.5 * np.log(d_i[items])
    expected = np.exp(logits) / np.bincount(users, weights=np.exp(logits), minlength=g.num_users)[users]
    np.testing.assert_allclose(a, expected, rtol=1e-4)


def test_attention_warmup_trains_lightgcn_first_and_resumes_exactly(tmp_path):
    from graphrec.data.splits import per_user_split
    from graphrec.models.gat import attention_warmup
    from graphrec.train import TrainConfig, Trainer

    g = graph(3)
    inter = Interactions.from_arrays(*g.edges(), num_users=g.num_users, num_items=g.num_items)
    split = per_user_split(inter, ratios=(0.8, 0.1, 0.1), seed=0)
    betas = []

    def trained(epochs, run_dir=None, resume=False):
        torch.manual_seed(0)
        model = GATRecommender(RecGraph(split.train), dim=8, num_layers=2)
        cfg = TrainConfig(epochs=epochs, batch_size=32, lr=0.05, patience=0, progress=False,
                          run_dir=run_dir, resume=resume, ks=(5,), monitor="recall@5")
        Trainer(model, split.valid, cfg, on_epoch_start=attention_warmup(2),
                on_epoch_end=lambda t, row: betas.append(t.model.beta.detach().abs().sum().item())).fit()
        return model

    full = trained(4)
    assert betas[:2] == [0.0, 0.0] and betas[2] > 0  # β learned from epoch 3 on
    trained(2, run_dir=str(tmp_path))
    resumed = trained(4, run_dir=str(tmp_path), resume=True)
    for name, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("layers,heads,masked", [(3, 2, True), (2, 1, False), (1, 2, True), (0, 1, False)])
def test_propagate_rows_with_attention_equals_full_propagation(layers, heads, masked, rows_pass):
    g = graph(4)
    gat = GATRecommender(g, dim=8, num_layers=layers, heads=heads)
    with torch.no_grad():
        gat.beta.normal_(0, 2)
    rng = np.random.default_rng(layers)
    mask = torch.from_numpy(rng.random(g.num_edges) > 0.3) if masked else None
    users = torch.tensor([0, 4, 4, 25, 9])  # a repeat and the isolated user
    items = torch.tensor([2, 18, 2, 7, 19, 11])  # isolated items too
    gu, gi = torch.randn(users.numel(), 8), torch.randn(items.numel(), 8)

    def run(rows):
        return rows_pass(gat, users, items, mask, rows, lambda u, i: (u * gu).sum() + (i * gi).sum())

    assert not gat.is_lightgcn() or layers == 0
    for got, want in zip(run(True), run(False)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_unknown_score_is_refused():
    with pytest.raises(ValueError, match="score must be one of"):
        GATRecommender(graph(), dim=8, score="centroid")


def test_neighbourhood_score_starts_as_lightgcn():
    g = graph(5)
    gat = GATRecommender(g, dim=8, num_layers=3, heads=2, score="neighbourhood")
    light = LightGCN(g, dim=8, num_layers=3)
    light.load_state_dict({k: v for k, v in gat.state_dict().items() if k != "beta"})
    mask = torch.from_numpy(np.random.default_rng(5).random(g.num_edges) > 0.3)
    for a, b in zip(gat.propagate(mask), light.propagate(mask)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
def test_neighbourhood_score_by_hand(masked):
    """Item → user weights of the first layer: the cosine of each item with the mean of
    the user's (unmasked) items, plus the degree prior, softmax over the user's items."""
    g = graph(6)
    gat = GATRecommender(g, dim=8, num_layers=1, score="neighbourhood")
    with torch.no_grad():
        gat.beta.fill_(4.0)
    users, items = g.edges()
    keep = np.random.default_rng(6).random(g.num_edges) > 0.3 if masked else np.ones(g.num_edges, bool)
    ie = gat.item_emb.weight.detach().numpy().astype(np.float64)
    mean = np.zeros((g.num_users, 8))
    np.add.at(mean, users[keep], ie[items[keep]])
    mean /= np.maximum(np.bincount(users[keep], minlength=g.num_users), 1)[:, None]
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # noqa: E731
    cos = (unit(mean)[users] * unit(ie)[items]).sum(1)
    d_i = np.bincount(items[keep], minlength=g.num_items).astype(float)
    logit = 4.0 * cos - 0.5 * np.log(np.maximum(d_i[items], 1))
    w = np.where(keep, np.exp(logit), 0.0)
    expected = w / np.bincount(users, weights=w, minlength=g.num_users)[users]
    (to_user, prior, _, mask), _ = gat._constants(torch.from_numpy(keep) if masked else None)
    alpha = gat._alpha(to_user, gat.user_emb.weight, gat.item_emb.weight, gat.beta[0, 0], prior, mask)
    got = to_user.to_edge_order(alpha)[:, 0].detach().numpy()
    np.testing.assert_allclose(got[keep], expected[keep], rtol=1e-4, atol=1e-7)
    if masked:
        assert np.all(got[~keep] == 0)


@pytest.mark.parametrize("masked", [False, True])
def test_neighbourhood_score_rows_equal_full_propagation(masked, rows_pass):
    g = graph(7)
    gat = GATRecommender(g, dim=8, num_layers=2, heads=2, score="neighbourhood")
    with torch.no_grad():
        gat.beta.normal_(0, 2)
    mask = torch.from_numpy(np.random.default_rng(7).random(g.num_edges) > 0.3) if masked else None
    users, items = torch.tensor([1, 3, 3, 25]), torch.tensor([0, 5, 19])
    gu, gi = torch.randn(users.numel(), 8), torch.randn(items.numel(), 8)

    def run(rows):
        return rows_pass(gat, users, items, mask, rows, lambda u, i: (u * gu).sum() + (i * gi).sum())

    for got, want in zip(run(True), run(False)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
