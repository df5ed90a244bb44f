import numpy as np
import pandas as pd
import pytest
import torch

from graphrec.data import IdMap, Interactions, RecGraph, SocialEdges, load_social
from graphrec.data.splits import random_split
from graphrec.datasets import synthetic
from graphrec.evaluate import Evaluator
from graphrec.models.gat import GATRecommender
from graphrec.models.social_gat import SocialGATRecommender
from graphrec.training import TrainConfig, Trainer

U, NUM_ITEMS = 30, 20


def interactions(seed=0):
    rng = np.random.default_rng(seed)
    # The last three users have no interactions.
    return Interactions.from_arrays(rng.integers(0, U - 3, 160), rng.integers(0, NUM_ITEMS, 160),
                                    num_users=U, num_items=NUM_ITEMS)


def social_pairs(seed=0):
    rng = np.random.default_rng(seed + 100)
    # Users U-6..U-4 receive no social edges; the item-less users U-3..U-1 do.
    dst = rng.integers(0, U - 3, 70)
    dst[dst >= U - 6] += 3
    return rng.integers(0, U, 70), dst


def build(seed=0, keep=None):
    src, dst = social_pairs(seed)
    social = SocialEdges.from_arrays(src, dst, num_users=U)
    if keep is not None:
        social = SocialEdges.from_arrays(social.src[keep], social.dst[keep], num_users=U)
    return RecGraph(interactions(seed), social)


def perturbed(model, seed=0):
    """Move every parameter off its neutral start, so equalities are not trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("_emb.weight"):
                p.add_(torch.randn(p.shape, generator=g))
    return model


def test_without_social_equals_gat_recommender():
    g = build()
    gat = perturbed(GATRecommender(RecGraph(interactions()), dim=8, heads=2))
    model = perturbed(SocialGATRecommender(g, dim=8, heads=2, use_social=False), seed=1)
    model.load_state_dict(gat.state_dict(), strict=False)
    mask = torch.from_numpy(np.random.default_rng(0).random(g.num_edges) > 0.3)
    for m in (None, mask):
        for a, b in zip(model.propagate(m), gat.propagate(m)):
            torch.testing.assert_close(a, b)
    # With every social edge masked the social model also reduces to it.
    social = perturbed(SocialGATRecommender(g, dim=8, heads=2), seed=2)
    social.load_state_dict(gat.state_dict(), strict=False)
    social.social_mask = torch.zeros(g.num_social_edges, dtype=torch.bool)
    for a, b in zip(social.propagate(mask), gat.propagate(mask)):
        torch.testing.assert_close(a, b)
    social.social_mask = None
    assert not torch.allclose(social.propagate()[0], gat.propagate()[0], atol=1e-4)


def test_social_mask_equals_removed_edges():
    g = build()
    keep = np.random.default_rng(1).random(g.num_social_edges) > 0.4
    src, dst = g.social_edges()
    g_small = RecGraph(interactions(), SocialEdges.from_arrays(src[keep], dst[keep], num_users=U))
    full = perturbed(SocialGATRecommender(g, dim=8, heads=2))
    small = SocialGATRecommender(g_small, dim=8, heads=2)
    small.load_state_dict(full.state_dict())
    full.social_mask = torch.from_numpy(keep)
    for a, b in zip(full.propagate(), small.propagate()):
        torch.testing.assert_close(a, b)
    att_full, att_small = full.attention(), small.attention()
    for lf, ls in zip(att_full, att_small):
        torch.testing.assert_close(lf["user_to_user"][torch.from_numpy(keep)], ls["user_to_user"])
        assert (lf["user_to_user"][torch.from_numpy(~keep)] == 0).all()
        torch.testing.assert_close(lf["item_to_user"], ls["item_to_user"])


def test_attention_is_normalised_per_destination_and_relation():
    g = build()
    model = perturbed(SocialGATRecommender(g, dim=8, num_layers=2, heads=2)).train()
    att = model.attention()
    assert model.training  # restored
    assert len(att) == 2 and set(att[0]) == {"item_to_user", "user_to_item", "user_to_user"}
    users, items = (torch.from_numpy(a) for a in g.edges())
    _, dst = (torch.from_numpy(a) for a in g.social_edges())
    for layer in att:
        for key, index, n in (("item_to_user", users, U), ("user_to_item", items, NUM_ITEMS),
                              ("user_to_user", dst, U)):
            w = layer[key]
            assert w.shape == (index.numel(), 2) and not w.requires_grad
            sums = torch.zeros(n, 2).index_add_(0, index, w)
            has = (torch.bincount(index, minlength=n) > 0).float().unsqueeze(1).expand(-1, 2)
            torch.testing.assert_close(sums, has)
    # Rows follow edge ids: the weight of user u's edge to item i moves with that edge.
    gat_model = SocialGATRecommender(g, dim=8, num_layers=1, heads=1)
    w = gat_model.attention()[0]["user_to_user"][:, 0]
    src, dst_np = g.social_edges()
    out_deg = np.bincount(src, minlength=U).astype(float)
    expected = out_deg[src] ** -0.5
    expected /= np.bincount(dst_np, weights=expected, minlength=U)[dst_np]
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5)


def test_cold_and_friendless_users_are_finite():
    g = build()
    model = perturbed(SocialGATRecommender(g, dim=8, heads=2))
    u, i = model.propagate()
    assert torch.isfinite(u).all() and torch.isfinite(i).all()
    _, dst = g.social_edges()
    assert not set(dst.tolist()) & {U - 6, U - 5, U - 4}
    # Users U-3..U-1 have no items but friends: without the social graph only their
    # ego embedding is left (a quarter of it, averaged over 3 layers + ego); with it,
    # their friends describe them.
    no_social = SocialGATRecommender(g, dim=8, heads=2, use_social=False)
    no_social.load_state_dict(model.state_dict())
    u0, _ = no_social.propagate()
    torch.testing.assert_close(u0[U - 3:], model.user_emb.weight[U - 3:] / 4)
    assert (u[U - 3:] - u0[U - 3:]).abs().sum(1).min() > 1e-3


def test_gradients_reach_all_relations():
    g = build()
    model = SocialGATRecommender(g, dim=8, num_layers=2, heads=2)
    with torch.no_grad():
        for beta in model.attention_parameters():
            beta.fill_(0.5)
    u, i = model.propagate()
    (u[:10] @ i[:10].T).sum().backward()
    betas = [f"convs.{layer}.{relation}.beta" for layer in range(2)
             for relation in ("item_to_user", "user_to_item", "user_to_user")]
    for name in (*betas, "gate_weight", "gate_bias", "user_emb.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_bad_social_input_is_dropped_and_counted():
    inter = interactions()
    raw = pd.DataFrame({"src": [1, 2, 2, 5, 40, 3, 0, 7],
                        "dst": [0, 0, 0, 5, 1, 99, 1, 29]})
    social = load_social(raw, IdMap.identity(U, "user"))
    rep = social.report
    assert (rep.rows_read, rep.unknown_users, rep.self_loops, rep.duplicates) == (8, 2, 1, 1)
    g = RecGraph(inter, social)
    assert g.num_social_edges == 4
    model = SocialGATRecommender(g, dim=8)
    u, i = model.propagate()
    assert torch.isfinite(u).all()
    assert model.recommend([0, 29], k=3)["item"].notna().all()


def test_trains_with_trainer_and_evaluator():
    data = synthetic(num_users=120, num_items=90, num_communities=4, avg_degree=8, seed=0)
    split = random_split(data.interactions, seed=0)
    g = RecGraph(split.train, data.social)
    torch.manual_seed(0)
    model = SocialGATRecommender(g, dim=16, num_layers=2, heads=2)
    fit = Trainer(model, split.valid, TrainConfig(epochs=3, batch_size=256, lr=1e-2, patience=0,
                                                  mask_batch_edges=True, progress=False,
                                                  device="cpu")).fit()
    assert fit.history[-1]["loss"] < fit.history[0]["loss"]
    metrics, frame = Evaluator(exclude=[split.train, split.valid], ks=(20,)).evaluate(
        model, split.test, per_user=True)
    assert 0 < metrics["recall@20"] <= 1 and len(frame) == metrics["users"]


def test_rejects_social_without_graph():
    with pytest.raises(ValueError, match="social"):
        SocialGATRecommender(RecGraph(interactions()), use_social=True)
    assert SocialGATRecommender(RecGraph(interactions())).use_social is False


@pytest.mark.slow
def test_lastfm_social_gat_runs(data_folder):
    from graphrec.data.splits import holdout_valid
    from graphrec.datasets import lastfm

    data = lastfm(root=data_folder("lastfm"))
    split = holdout_valid(data.split, ratio=0.1, seed=0)
    g = RecGraph(split.train, data.social)
    model = SocialGATRecommender(g, dim=32, num_layers=2)
    att = model.attention()
    assert att[0]["user_to_user"].shape == (g.num_social_edges, 1)
    Trainer(model, None, TrainConfig(epochs=1, batch_size=4096, lr=5e-3, progress=False,
                                     device="cpu")).fit()
    test = Evaluator(exclude=[split.train, split.valid], ks=(20,)).evaluate(model, split.test)
    assert 0.01 < test["recall@20"] < 1
