import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from graphrec.data import DataError, IdMap, Interactions, RecGraph, SocialEdges, load_social
from graphrec.data.splits import per_user_split
from graphrec.datasets import synthetic
from graphrec.models.social_graphrec import GraphRec
from graphrec.training import RatingTrainConfig, RatingTrainer

# A hand-built graph: 5 users, 4 items, ratings on a 1–5 scale. Social edges point from
# the friend to the user they inform. User 2 and user 4 receive no social edges, user 4
# rates one item, item 3 is rated by one user.
USERS = [0, 0, 1, 1, 2, 2, 3, 4, 4]
ITEMS = [0, 1, 1, 2, 0, 3, 2, 0, 2]
RATINGS = [4.0, 2.0, 5.0, 3.0, 1.0, 4.0, 2.0, 5.0, 3.0]
SOCIAL = [(1, 0), (2, 0), (0, 1), (3, 1), (2, 3)]


def tiny(social=SOCIAL):
    inter = Interactions.from_arrays(USERS, ITEMS, num_users=5, num_items=4, rating=RATINGS)
    src, dst = (zip(*social) if social else ([], []))
    edges = SocialEdges.from_arrays(list(src), list(dst), num_users=5)
    return inter, RecGraph(inter, edges)


def model_for(graph, inter, seed=0, **kw):
    torch.manual_seed(seed)
    return GraphRec(graph, inter, dim=6, **kw)


def _opinion(mlp, entity, opinion):
    return F.relu(mlp.lin2(F.relu(mlp.lin1(torch.cat([entity, opinion])))))


def _attend(agg, messages, target):
    """One destination's aggregation by the formula, with W1 applied to the concatenation."""
    if messages:
        w1 = torch.cat([agg.att_message.weight, agg.att_target.weight], dim=1)
        scores = torch.stack([agg.att_out(F.relu(w1 @ torch.cat([m, target]) + agg.att_target.bias))
                              for m in messages]).reshape(-1)
        alpha = torch.softmax(scores, 0)
        summed = (alpha.unsqueeze(1) * torch.stack(messages)).sum(0)
    else:
        summed = torch.zeros_like(target)
    if agg.self_connection:
        summed = torch.cat([target, summed])
    return F.relu(agg.out(summed))


@torch.no_grad()
def naive_reference(model, inter):
    """GraphRec computed user by user and item by item with Python loops."""
    p, q, e = model.user_emb.weight, model.item_emb.weight, model.opinion_emb.weight
    levels = model.rating_levels.tolist()
    level = {r: levels.index(r) for r in RATINGS}
    h_items, h_social, h, z = {}, {}, {}, {}
    for u in range(5):
        rows = [k for k in range(len(USERS)) if USERS[k] == u]
        msgs = [_opinion(model.item_opinion, q[ITEMS[k]], e[level[RATINGS[k]]]) for k in rows]
        h_items[u] = _attend(model.item_aggregation, msgs, p[u])
    for u in range(5):
        friends = [s for s, d in SOCIAL if d == u]
        h_social[u] = _attend(model.social_aggregation, [h_items[f] for f in friends], p[u])
        h[u] = model.user_mlp(torch.cat([h_items[u], h_social[u]]))
    for i in range(4):
        rows = [k for k in range(len(ITEMS)) if ITEMS[k] == i]
        msgs = [_opinion(model.user_opinion, p[USERS[k]], e[level[RATINGS[k]]]) for k in rows]
        z[i] = _attend(model.user_aggregation, msgs, q[i])
    return h_items, h_social, h, z


@pytest.mark.parametrize("self_connection", [True, False])
def test_vectorised_equals_naive_loop(self_connection):
    inter, g = tiny()
    model = model_for(g, inter, self_connection=self_connection).eval()
    h_items, h_social, h, z = naive_reference(model, inter)
    with torch.no_grad():
        out = model.encode()
        pred = model(torch.arange(5), torch.tensor([0, 1, 2, 3, 0]))
    torch.testing.assert_close(out.user_items, torch.stack([h_items[u] for u in range(5)]))
    torch.testing.assert_close(out.user_social, torch.stack([h_social[u] for u in range(5)]))
    torch.testing.assert_close(out.user, torch.stack([h[u] for u in range(5)]))
    torch.testing.assert_close(out.item, torch.stack([z[i] for i in range(4)]))
    ref = torch.stack([model.rating_mlp(torch.cat([h[u], z[i]])).squeeze() + model.rating_mean
                       for u, i in zip(range(5), [0, 1, 2, 3, 0])])
    torch.testing.assert_close(pred, ref)


def test_attention_sums_to_one_per_destination():
    inter, g = tiny()
    out = model_for(g, inter).eval().encode()
    users, items = g.edges()
    per_user = torch.zeros(5).index_add_(0, torch.from_numpy(users), out.item_attention)
    per_item = torch.zeros(4).index_add_(0, torch.from_numpy(items), out.user_attention)
    torch.testing.assert_close(per_user, torch.ones(5))
    torch.testing.assert_close(per_item, torch.ones(4))
    _, dst = g.social_edges()
    per_dst = torch.zeros(5).index_add_(0, torch.from_numpy(dst), out.social_attention)
    has_friends = torch.from_numpy(np.bincount(dst, minlength=5) > 0).float()
    torch.testing.assert_close(per_dst, has_friends)
    # The attention is not uniform: it depends on the messages.
    assert out.item_attention.std() > 1e-4


def test_users_without_friends_get_finite_predictions():
    inter, g = tiny()
    model = model_for(g, inter).eval()
    out = model.encode()
    for u in (2, 4):  # no incoming social edges
        torch.testing.assert_close(out.user_social[u], F.relu(model.social_aggregation.out.bias))
    pred = model.predict(torch.tensor([2, 4, 4]), torch.tensor([1, 1, 3]))
    assert torch.isfinite(pred).all()
    # A graph with no social edges at all works too.
    inter2, g2 = tiny(social=[])
    pred = model_for(g2, inter2).predict(torch.arange(5), torch.zeros(5, dtype=torch.long))
    assert torch.isfinite(pred).all()


def test_social_mask_equals_removed_edges():
    keep = [True, False, True, False, True]
    inter, g = tiny()
    src, dst = g.social_edges()
    kept = [(int(s), int(d)) for s, d, k in zip(src, dst, keep) if k]
    _, g_small = tiny(social=kept)
    full = model_for(g, inter).eval()
    small = model_for(g_small, inter, seed=1).eval()
    small.load_state_dict(full.state_dict())
    full.social_mask = torch.tensor(keep)
    a, b = full.encode(), small.encode()
    torch.testing.assert_close(a.user, b.user)
    torch.testing.assert_close(a.item, b.item)
    torch.testing.assert_close(a.social_attention[torch.tensor(keep)], b.social_attention)
    assert (a.social_attention[~torch.tensor(keep)] == 0).all()
    # Without social edges the model equals use_social=False.
    full.social_mask = torch.zeros(len(keep), dtype=torch.bool)
    off = model_for(g, inter, use_social=False).eval()
    off.load_state_dict(full.state_dict())
    torch.testing.assert_close(full.encode().user, off.encode().user)


def test_edge_mask_equals_removed_interactions():
    inter, g = tiny()
    mask = torch.ones(g.num_edges, dtype=torch.bool)
    mask[[0, 7]] = False  # (0, 0, 4.0) and (4, 0, 5.0); every rating level stays in use
    sub = inter.subset(mask.numpy())
    g_sub = RecGraph(sub, SocialEdges.from_arrays(*zip(*SOCIAL), num_users=5))
    full = model_for(g, inter).eval()
    small = model_for(g_sub, sub).eval()
    state = {k: v for k, v in full.state_dict().items() if k not in ("edge_rating", "edge_level")}
    small.load_state_dict(state, strict=False)
    a, b = full.encode(edge_mask=mask), small.encode()
    torch.testing.assert_close(a.user, b.user)
    torch.testing.assert_close(a.item, b.item)


@pytest.mark.parametrize("use_social, self_connection", [(True, True), (True, False), (False, True)])
def test_batch_rows_equal_the_full_pass_in_values_and_gradients(use_social, self_connection):
    data = synthetic(num_users=80, num_items=60, seed=3)
    split = per_user_split(data.interactions, ratios=(0.8, 0.1, 0.1), seed=0)
    g = RecGraph(split.train, data.social)
    model = model_for(g, split.train, use_social=use_social, self_connection=self_connection,
                      biases=True).eval()
    gen = torch.Generator().manual_seed(0)
    edge_mask = torch.rand(g.num_edges, generator=gen) > 0.2
    model.social_mask = torch.rand(len(data.social), generator=gen) > 0.3
    users = torch.tensor([5, 0, 5, 17, 42, 79])
    items = torch.tensor([3, 3, 59, 0, 11, 7])

    def grads(pred):
        model.zero_grad()
        ((pred - 3.0) ** 2).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    rows = model(users, items, edge_mask=edge_mask)
    rows_grads = grads(rows)
    full = model.rate(model.encode(edge_mask), users, items)
    full_grads = grads(full)
    torch.testing.assert_close(rows, full)
    assert rows_grads.keys() == full_grads.keys()
    for name in full_grads:
        torch.testing.assert_close(rows_grads[name], full_grads[name], msg=name)
    h, z = model.encode_rows(torch.tensor([1, 2]), torch.tensor([4]), edge_mask)
    enc = model.encode(edge_mask)
    torch.testing.assert_close(h, enc.user[[1, 2]])
    torch.testing.assert_close(z, enc.item[[4]])


def test_gradients_reach_every_part():
    inter, g = tiny()
    model = model_for(g, inter)
    pred = model(torch.tensor([0, 1, 3]), torch.tensor([2, 0, 1]))
    ((pred - 3.0) ** 2).sum().backward()
    for name, param in model.named_parameters():
        if name.endswith("att_out.weight") or name.startswith(("user_emb", "opinion_emb")):
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), name


def test_ratings_must_come_from_the_training_graph():
    data = synthetic(num_users=40, num_items=30, num_communities=3, avg_degree=6, seed=1)
    split = per_user_split(data.interactions, seed=0)
    g = RecGraph(split.train, data.social)
    with pytest.raises(DataError, match="not edges of the graph"):
        GraphRec(g, split.test)
    no_ratings = Interactions(split.train.user, split.train.item, split.train.user_map,
                              split.train.item_map)
    with pytest.raises(DataError, match="no rating"):
        GraphRec(g, no_ratings)
    with pytest.raises(ValueError, match="social"):
        GraphRec(RecGraph(split.train), split.train, use_social=True)


def test_bad_social_input_is_cleaned_and_the_model_runs():
    inter, _ = tiny()
    raw = pd.DataFrame({"src": [1, 2, 2, 3, 7, 4, 0], "dst": [0, 0, 0, 3, 1, 9, 1]})
    social = load_social(raw, IdMap.identity(5, "user"))
    report = social.report
    assert (report.unknown_users, report.self_loops, report.duplicates) == (2, 1, 1)
    g = RecGraph(inter, social)
    assert g.num_social_edges == 3
    model = model_for(g, inter)
    assert torch.isfinite(model.predict(torch.arange(5), torch.tensor([0, 1, 2, 3, 3]))).all()


def test_training_lowers_the_mse_on_synthetic_ratings():
    data = synthetic(num_users=100, num_items=80, num_communities=4, avg_degree=10, seed=0)
    split = per_user_split(data.interactions, seed=0)
    g = RecGraph(split.train, data.social)
    torch.manual_seed(0)
    model = GraphRec(g, split.train, dim=16)
    fit = RatingTrainer(model, split.valid, RatingTrainConfig(
        epochs=10, batch_size=64, lr=1e-2, patience=0, progress=False, device="cpu")).fit()
    mse = [row["train_mse"] for row in fit.history]
    assert mse[-1] < 0.8 * mse[0]
    baseline = float(np.sqrt(np.mean((split.valid.rating - split.train.rating.mean()) ** 2)))
    assert fit.best_metrics["rmse"] < baseline


@pytest.mark.slow
def test_filmtrust_graphrec_learns(data_folder):
    from graphrec.data.splits import random_split
    from graphrec.datasets import filmtrust

    data = filmtrust(root=data_folder("filmtrust"))
    split = random_split(data.interactions, (0.8, 0.1, 0.1), seed=0)
    g = RecGraph(split.train, data.social)
    torch.manual_seed(0)
    model = GraphRec(g, split.train, dim=32)
    trainer = RatingTrainer(model, split.valid, RatingTrainConfig(
        epochs=2, batch_size=1024, lr=2e-3, patience=0, progress=False, device="cpu"))
    trainer.fit()
    test = trainer.evaluate(split.test)
    baseline = float(np.sqrt(np.mean((split.test.rating - split.train.rating.mean()) ** 2)))
    assert test["rmse"] < baseline
