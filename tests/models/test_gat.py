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


def embeddings_of(model):
    return {k: v for k, v in model.state_dict().items() if k.endswith("_emb.weight")}


def copied_pair(g, heads=1, **kwargs):
    gat = GATRecommender(g, dim=8, num_layers=3, heads=heads, **kwargs)
    light = LightGCN(g, dim=8, num_layers=3)
    light.load_state_dict(embeddings_of(gat))
    return gat, light


def set_beta(model, value=None, std=None):
    with torch.no_grad():
        for beta in model.attention_parameters():
            beta.fill_(value) if std is None else beta.normal_(0, std)


def freeze_beta(model, frozen=True):
    for beta in model.attention_parameters():
        beta.requires_grad_(not frozen)


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
    freeze_beta(gat)
    assert gat.is_lightgcn()
    fast, fast_rows = run(), run(rows=True)
    for a, b, c, d in zip(attention, attention_rows, fast, fast_rows):
        for other in (b, c, d):
            torch.testing.assert_close(other, a, rtol=1e-5, atol=1e-6)
    set_beta(gat, 2.0)
    assert not gat.is_lightgcn()  # a frozen non-zero β still attends
    freeze_beta(gat, False)


def test_attention_changes_weights_but_not_row_mass():
    """With β ≠ 0 the output differs from LightGCN, yet each node's weights still sum
    to LightGCN's row sum (attention redistributes mass, it does not add any)."""
    g = graph(2)
    gat, light = copied_pair(g)
    set_beta(gat, 3.0)
    with torch.no_grad():
        gat.user_emb.weight.fill_(1.0)
        gat.item_emb.weight.fill_(1.0)
        light.user_emb.weight.fill_(1.0)
        light.item_emb.weight.fill_(1.0)
    # constant embeddings: cosines are all 1, so attention equals the prior again
    for a, b in zip(gat.propagate(), light.propagate()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    gat.reset_parameters()
    set_beta(gat, 3.0)
    light.load_state_dict(embeddings_of(gat))
    assert not torch.allclose(gat.propagate()[0], light.propagate()[0], atol=1e-4)


def test_gradients_reach_beta_and_embeddings():
    g = graph(3)
    gat = GATRecommender(g, dim=8, num_layers=2, heads=2)
    u, i = gat.propagate()
    (u[:5] @ i[:5].T).sum().backward()
    for beta in gat.attention_parameters():
        assert beta.grad is not None and beta.grad.abs().sum() > 0
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
    set_beta(gat, 5.0)
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
    from graphrec.training import TrainConfig, Trainer

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
                on_epoch_end=lambda t, row: betas.append(
                    sum(b.detach().abs().sum().item() for b in t.model.attention_parameters()))).fit()
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
    set_beta(gat, std=2)
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
    with pytest.raises(ValueError, match="attention_score must be one of"):
        GATRecommender(graph(), dim=8, attention_score="centroid")
    with pytest.raises(ValueError, match="layer must be one of"):
        GATRecommender(graph(), dim=8, layer="gcn")


def test_neighbourhood_score_starts_as_lightgcn():
    g = graph(5)
    gat = GATRecommender(g, dim=8, num_layers=3, heads=2, attention_score="neighbourhood")
    light = LightGCN(g, dim=8, num_layers=3)
    light.load_state_dict(embeddings_of(gat))
    mask = torch.from_numpy(np.random.default_rng(5).random(g.num_edges) > 0.3)
    for a, b in zip(gat.propagate(mask), light.propagate(mask)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
def test_neighbourhood_score_by_hand(masked):
    """Item → user weights of the first layer: the cosine of each item with the mean of
    the user's (unmasked) items, plus the degree prior, softmax over the user's items."""
    g = graph(6)
    gat = GATRecommender(g, dim=8, num_layers=1, attention_score="neighbourhood")
    set_beta(gat, 4.0)
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
    tg = gat.torch_graph()
    _, alpha = gat.convs[0]["item_to_user"]((gat.item_emb.weight, gat.user_emb.weight), tg.item_to_user,
                                            edge_mask=torch.from_numpy(keep) if masked else None,
                                            return_attention=True)
    got = alpha[:, 0].detach().numpy()
    np.testing.assert_allclose(got[keep], expected[keep], rtol=1e-4, atol=1e-7)
    if masked:
        assert np.all(got[~keep] == 0)


@pytest.mark.parametrize("masked", [False, True])
def test_neighbourhood_score_rows_equal_full_propagation(masked, rows_pass):
    g = graph(7)
    gat = GATRecommender(g, dim=8, num_layers=2, heads=2, attention_score="neighbourhood")
    set_beta(gat, std=2)
    mask = torch.from_numpy(np.random.default_rng(7).random(g.num_edges) > 0.3) if masked else None
    users, items = torch.tensor([1, 3, 3, 25]), torch.tensor([0, 5, 19])
    gu, gi = torch.randn(users.numel(), 8), torch.randn(items.numel(), 8)

    def run(rows):
        return rows_pass(gat, users, items, mask, rows, lambda u, i: (u * gu).sum() + (i * gi).sum())

    for got, want in zip(run(True), run(False)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def dense_lightgcn_pp(g, user, item, layers, a, b, gamma, normalize, keep):
    """LightGCN++ by dense matrices: D^{-a} A D^{-b} over the (U + I) graph, unit-length
    inputs to every layer when ``normalize``, ``γ e0 + (1 - γ) mean(e1..eL)``."""
    users, items = g.edges()
    n_u = g.num_users
    n = n_u + g.num_items
    adj = np.zeros((n, n))
    adj[users[keep], n_u + items[keep]] = 1
    adj[n_u + items[keep], users[keep]] = 1
    deg = adj.sum(1)
    with np.errstate(divide="ignore"):
        left, right = np.where(deg > 0, deg ** -a, 0), np.where(deg > 0, deg ** -b, 0)
    norm = left[:, None] * adj * right[None, :]
    e = np.concatenate([user, item]).astype(np.float64)
    x, total = e, np.zeros_like(e)
    for _ in range(layers):
        if normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        x = norm @ x
        total += x
    out = gamma * e + (1 - gamma) * total / layers
    return out[:n_u], out[n_u:]


@pytest.mark.parametrize("normalize", [False, True])
def test_without_attention_is_lightgcn_pp(normalize):
    g = graph(8)
    model = GATRecommender(g, dim=8, num_layers=3, attention=False, dst_power=0.6, src_power=0.3,
                           normalize=normalize, pool_weight=0.2)
    assert model.attention_parameters() == [] and not model.is_lightgcn()
    keep = np.random.default_rng(8).random(g.num_edges) > 0.3
    want = dense_lightgcn_pp(g, model.user_emb.weight.detach().numpy(),
                             model.item_emb.weight.detach().numpy(), 3, 0.6, 0.3, 0.2, normalize, keep)
    got = model.propagate(torch.from_numpy(keep))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.detach().numpy(), b, rtol=1e-5, atol=1e-6)


def test_learned_exponents_and_pooling_get_gradients_and_the_embeddings_rate():
    g = graph(9)
    model = GATRecommender(g, dim=8, num_layers=2, learn_powers=True, learn_pool=True,
                           attention_lr_scale=10.0)
    u, i = model.propagate()
    (u[:6] @ i[:6].T).sum().backward()
    powers = [p for name, p in model.named_parameters() if name.endswith("powers")]
    assert len(powers) == 4
    for p in (*powers, model.pool_weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    groups = model.param_groups()
    assert groups[1]["lr_scale"] == 10.0 and len(groups[1]["params"]) == 4  # the βs only
    assert any(p is model.pool_weight for p in groups[0]["params"])


@pytest.mark.parametrize("kind", ["gat", "gatv2", "dot", "custom"])
def test_any_attention_layer_propagates_with_exact_rows_and_edge_order_attention(kind, rows_pass):
    from graphrec.nn import GATConv

    made = []

    def factory(dim, heads):
        made.append((dim, heads))
        return GATConv(dim, dim // heads, heads, add_self_loops=False, negative_slope=0.1)

    g = graph(10)
    gat = GATRecommender(g, dim=8, num_layers=2, heads=2, layer=factory if kind == "custom" else kind)
    assert made == ([(8, 2)] * 4 if kind == "custom" else [])
    assert not gat.is_lightgcn()
    mask = torch.from_numpy(np.random.default_rng(10).random(g.num_edges) > 0.3)
    users, items = torch.tensor([0, 3, 3, 25]), torch.tensor([1, 19, 4])
    gu, gi = torch.randn(users.numel(), 8), torch.randn(items.numel(), 8)

    def run(rows):
        return rows_pass(gat, users, items, mask, rows, lambda u, i: (u * gu).sum() + (i * gi).sum())

    full, rows = run(False), run(True)
    assert len(full) > 4  # the layers' weights got gradients too
    for got, want in zip(rows, full):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    users_of_edges, _ = g.edges()
    for layer in gat.attention():
        w = layer["item_to_user"]
        assert w.shape == (g.num_edges, 2)
        sums = torch.zeros(g.num_users, 2).index_add_(0, torch.from_numpy(users_of_edges), w)
        has = torch.from_numpy(np.bincount(users_of_edges, minlength=g.num_users) > 0)
        torch.testing.assert_close(sums[has], torch.ones(int(has.sum()), 2))


def test_weights_saved_before_the_layers_load():
    """A state dict of the former layout (one β tensor [L, 2, H]) loads into the model."""
    g = graph(11)
    model = GATRecommender(g, dim=8, num_layers=2, heads=2)
    old = {k: v.clone() for k, v in embeddings_of(model).items()}
    old["beta"] = torch.arange(8.0).view(2, 2, 2)
    fresh = GATRecommender(g, dim=8, num_layers=2, heads=2)
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh.convs[1]["user_to_item"].beta, torch.tensor([6.0, 7.0]))
    torch.testing.assert_close(fresh.user_emb.weight, model.user_emb.weight)


def test_score_is_the_recommender_method():
    gat = GATRecommender(graph(), dim=8, num_layers=1)
    u, i = gat.embeddings()
    users, items = torch.tensor([0, 1]), torch.tensor([2, 3])
    torch.testing.assert_close(gat.score(users, items, u, i), (u[users] * i[items]).sum(-1))


def test_node_importance_is_a_learned_per_node_logit(rows_pass):
    """With attention off, node importances t make the item → user weight of edge (u, i)
    s_u · softmax_i(t_i − ½ log d_i): checked by hand; rows equal full propagation."""
    g = graph(12)
    model = GATRecommender(g, dim=8, num_layers=1, attention=False, node_importance=True)
    with torch.no_grad():
        model.item_importance.normal_(0, 1)
        model.user_importance.normal_(0, 1)
    assert not model.is_lightgcn()
    users, items = g.edges()
    t = model.item_importance.detach().numpy().astype(np.float64)
    d_i = np.bincount(items, minlength=g.num_items).astype(float)
    d_u = np.bincount(users, minlength=g.num_users).astype(float)
    logit = np.exp(t[items] - 0.5 * np.log(d_i[items]))
    alpha = logit / np.bincount(users, weights=logit, minlength=g.num_users)[users]
    scale = np.bincount(users, weights=d_i[items] ** -0.5, minlength=g.num_users)
    scale = scale / np.sqrt(np.maximum(d_u, 1))
    ie = model.item_emb.weight.detach().numpy().astype(np.float64)
    first = np.zeros((g.num_users, 8))
    np.add.at(first, users, (scale[users] * alpha)[:, None] * ie[items])
    u_out, _ = model.propagate()
    want = (model.user_emb.weight.detach().numpy() + first) / 2
    np.testing.assert_allclose(u_out.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    mask = torch.from_numpy(np.random.default_rng(12).random(g.num_edges) > 0.3)
    sel_u, sel_i = torch.tensor([0, 5, 5]), torch.tensor([3, 1])
    gu, gi = torch.randn(3, 8), torch.randn(2, 8)

    def run(rows):
        return rows_pass(model, sel_u, sel_i, mask, rows, lambda u, i: (u * gu).sum() + (i * gi).sum())

    full, part = run(False), run(True)
    assert len(full) == 6  # both importance vectors got gradients
    for a, b in zip(part, full):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="light attention layer"):
        GATRecommender(g, dim=8, layer="gat", node_importance=True)
