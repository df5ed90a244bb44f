import json

import numpy as np
import pytest
import torch

from graphrec.data import Interactions, RecGraph
from graphrec.data.splits import per_user_split
from graphrec.evaluate import Evaluator
from graphrec.models import MF, LightGCN
from graphrec.training import TrainConfig, Trainer


def community_log(seed=0, users=120, items=80, groups=4, per_user=12):
    """Users like items of their own group: a personalised model must beat chance."""
    rng = np.random.default_rng(seed)
    ug = rng.integers(0, groups, users)
    ig = np.arange(items) % groups
    rows = []
    for u in range(users):
        own = np.flatnonzero(ig == ug[u])
        rows += [(u, i) for i in rng.choice(own, per_user, replace=False)]
    u, i = np.array(rows).T
    return Interactions.from_arrays(u, i, num_users=users, num_items=items)


@pytest.fixture(scope="module")
def split():
    return per_user_split(community_log(), ratios=(0.7, 0.15, 0.15), seed=0)


def config(**kw):
    base = dict(epochs=4, batch_size=128, lr=0.01, patience=0, progress=False, seed=3, ks=(10,))
    base.update(kw)
    return TrainConfig(monitor="recall@10", **base)


def test_training_beats_untrained_model(split):
    graph = RecGraph(split.train)
    ev = Evaluator(exclude=[split.train, split.valid], ks=(10,))
    model = LightGCN(graph, dim=16, num_layers=2)
    before = ev.evaluate(model, split.test)["recall@10"]
    Trainer(model, split.valid, config(epochs=15)).fit()
    after = ev.evaluate(model, split.test)["recall@10"]
    assert after > before + 0.1


def test_same_seed_same_weights_and_resume_is_exact(split, tmp_path):
    graph = RecGraph(split.train)

    def trained(epochs, run_dir=None, resume=False, model=None):
        torch.manual_seed(0)
        model = model or MF(graph, dim=8)
        Trainer(model, split.valid, config(epochs=epochs, run_dir=run_dir, resume=resume)).fit()
        return model

    a = trained(4)
    b = trained(4)
    assert torch.equal(a.user_emb.weight, b.user_emb.weight)

    # "kill" after 2 epochs, then resume the same run to 4 epochs
    trained(2, run_dir=str(tmp_path))
    torch.manual_seed(123)  # a different global state must not matter
    fresh = MF(graph, dim=8)
    resumed = trained(4, run_dir=str(tmp_path), resume=True, model=fresh)
    # the trainer restores the best epoch's weights in both runs
    torch.testing.assert_close(resumed.user_emb.weight, a.user_emb.weight, rtol=0, atol=0)
    history = json.loads((tmp_path / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,")
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 4
    assert not list(tmp_path.glob(".*.tmp"))


def test_best_epoch_is_restored(split):
    graph = RecGraph(split.train)
    model = MF(graph, dim=8)
    result = Trainer(model, split.valid, config(epochs=5)).fit()
    best = max(r["valid_recall@10"] for r in result.history)
    assert result.best_metrics["recall@10"] == pytest.approx(best)
    ev = Evaluator(exclude=[split.train], ks=(10,))
    assert ev.evaluate(model, split.valid)["recall@10"] == pytest.approx(best)


def test_early_stopping_stops(split):
    graph = RecGraph(split.train)
    # A learning rate of zero never improves after the first validation.
    result = Trainer(MF(graph, dim=8), split.valid, config(epochs=50, lr=0.0, patience=2)).fit()
    assert result.stopped == "early"
    assert len(result.history) == 3


def test_diverging_loss_raises_clear_error(split):
    graph = RecGraph(split.train)
    model = MF(graph, dim=8)
    with torch.no_grad():
        model.user_emb.weight[0] = float("nan")
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        Trainer(model, split.valid, config(epochs=1, batch_size=100000)).fit()


def test_masking_batch_edges_trains(split):
    graph = RecGraph(split.train)
    model = LightGCN(graph, dim=8, num_layers=2)
    result = Trainer(model, split.valid, config(epochs=2, mask_batch_edges=True)).fit()
    assert np.isfinite(result.history[-1]["loss"])


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="batch_sampling must be 'edges' or 'users'"):
        TrainConfig(batch_sampling="items")
    with pytest.raises(ValueError, match="eval_users must be >= 1"):
        TrainConfig(eval_users=0)


def test_validation_on_a_user_sample_counts_those_users_every_epoch(split):
    model = LightGCN(RecGraph(split.train), dim=8, num_layers=2)
    fit = Trainer(model, split.valid, config(epochs=2, eval_users=25)).fit()
    assert [row["valid_users"] for row in fit.history] == [25.0, 25.0]
    # The metric is the full evaluation's on the same seeded users (of the restored best
    # epoch's weights).
    sample = Evaluator(exclude=[model.graph.ui], ks=(10,), user_sample=25, sample_seed=3)
    users = sample.counted_users(split.valid)
    keep = np.isin(split.valid.user, users)
    only = Interactions(split.valid.user[keep], split.valid.item[keep], split.valid.user_map,
                        split.valid.item_map)
    want = Evaluator(exclude=[model.graph.ui], ks=(10,)).evaluate(model, only)
    assert want["users"] == 25
    assert fit.best_metrics["recall@10"] == pytest.approx(want["recall@10"])


def test_time_budget_counts_training_time_only(split, monkeypatch):
    import time

    # A fake clock, so the test does not depend on the machine's speed: every reading
    # advances it by a millisecond, and the hook jumps it a minute ahead, as a long idle
    # wait between epochs would. Were idle time counted, the second epoch would stop at
    # its first batch.
    now = [0.0]

    def clock() -> float:
        now[0] += 1e-3
        return now[0]

    def idle(trainer, row) -> None:
        now[0] += 60.0

    monkeypatch.setattr(time, "perf_counter", clock)
    model = MF(RecGraph(split.train), dim=8)
    fit = Trainer(model, split.valid, config(epochs=3, max_minutes=0.05), on_epoch_end=idle).fit()
    assert fit.stopped == "epochs" and len(fit.history) == 3
    assert fit.train_seconds < 3


def test_learning_rate_decays_per_epoch(split, tmp_path):
    seen = []
    model = MF(RecGraph(split.train), dim=8)
    trainer = Trainer(model, split.valid, config(epochs=3, lr=0.01, lr_decay=0.5),
                      on_epoch_end=lambda t, row: seen.append(t.optimizer.param_groups[0]["lr"]))
    trainer.fit()
    assert seen == pytest.approx([0.01, 0.005, 0.0025])
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(lr_decay=0.0)


def test_attention_lr_scale_sets_the_group_rates_and_the_first_adam_step(split):
    from graphrec.models.gat import GATRecommender

    model = GATRecommender(RecGraph(split.train), dim=8, num_layers=2, attention_lr_scale=20.0)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rates = []
    trainer = Trainer(model, None, config(epochs=2, lr=0.01, lr_decay=0.5),
                      on_epoch_end=lambda t, row: rates.append([g["lr"] for g in t.optimizer.param_groups]))
    eids = torch.arange(64)
    neg = torch.from_numpy(np.random.default_rng(0).integers(0, model.num_items, (64, 1)))
    for group in trainer.optimizer.param_groups:  # what fit() sets at epoch 1
        group["lr"] = 0.01 * group["lr_scale"]
    trainer.train_batch(eids, neg)
    # Adam's first step moves every parameter with a gradient by lr · sign(-gradient)
    step_beta = torch.stack([(beta.detach() - before[f"convs.{name}"].to(trainer.device)).abs()
                             for name, beta in model.convs.named_parameters() if name.endswith("beta")])
    step_emb = (model.user_emb.weight.detach() - before["user_emb.weight"].to(trainer.device)).abs()
    assert torch.allclose(step_beta, torch.full_like(step_beta, 0.2), rtol=1e-3)
    moved = step_emb[step_emb > 0]  # (elements with a gradient near Adam's eps move less)
    assert moved.numel() > 0 and moved.max() <= 0.01 * 1.001
    assert moved.median().item() == pytest.approx(0.01, rel=1e-3)
    trainer.fit()
    assert rates == [pytest.approx([0.01, 0.2]), pytest.approx([0.005, 0.1])]
    with pytest.raises(ValueError, match="attention_lr_scale"):
        GATRecommender(RecGraph(split.train), dim=8, attention_lr_scale=0.0)


def test_train_batch_masks_exactly_its_edges_and_returns_the_loss(split):
    from graphrec.scoring import bpr_loss

    graph = RecGraph(split.train)
    model = LightGCN(graph, dim=8, num_layers=2)
    trainer = Trainer(model, None, config(mask_batch_edges=True, l2=1e-3))
    seen = {}
    propagate_rows = model.propagate_rows

    def recording(users, items, edge_mask=None):
        seen["mask"] = edge_mask.edge_mask.clone()
        return propagate_rows(users, items, edge_mask)

    model.propagate_rows = recording
    eids = torch.tensor([0, 5, 7])
    neg = torch.tensor([[1], [2], [3]])
    # the reference is computed where the trainer put the model (CUDA when present)
    dev = trainer.device
    users, pos, ref_neg = trainer.edge_users[eids].to(dev), trainer.edge_items[eids].to(dev), neg.to(dev)
    with torch.no_grad():
        u, i = model.propagate(edge_mask=~torch.isin(torch.arange(graph.num_edges), eids).to(dev))
        reg = model.regularized(users, torch.cat([pos, ref_neg[:, 0]]))
        expected = bpr_loss((u[users] * i[pos]).sum(1), (u[users] * i[ref_neg[:, 0]]).sum(1))
        expected = expected + 1e-3 * 0.5 * sum(t.pow(2).sum() for t in reg) / 3
    loss = trainer.train_batch(eids, neg)
    assert torch.equal(torch.nonzero(~seen["mask"]).flatten().cpu(), eids)
    assert loss == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("loss", ["softmax", "bpr", "bce"])
def test_shared_negatives_score_every_user_against_every_item(split, loss):
    from graphrec.scoring import CosineScorer

    graph = RecGraph(split.train)
    model = LightGCN(graph, dim=8, num_layers=2, scorer=CosineScorer(0.2))
    trainer = Trainer(model, None, config(loss=loss, shared_negatives=True, num_negatives=3, l2=0))
    eids = torch.tensor([0, 5, 7, 11])
    users, pos = trainer.edge_users[eids], trainer.edge_items[eids]
    # The second user's positive is among the shared items: that entry is no negative.
    neg = torch.tensor([(pos[0] + 1) % graph.num_items, pos[1], (pos[2] + 2) % graph.num_items])
    dev = trainer.device  # the reference is computed where the model is
    users, pos, ref_neg = users.to(dev), pos.to(dev), neg.to(dev)
    with torch.no_grad():
        u, i = model.propagate()
        u, i = torch.nn.functional.normalize(u, dim=1), torch.nn.functional.normalize(i, dim=1)
        pos_s = (u[users] * i[pos]).sum(1) / 0.2
        neg_s = u[users] @ i[ref_neg].T / 0.2
        keep = ref_neg.unsqueeze(0) != pos.unsqueeze(1)
        assert not keep[1, 1]
        if loss == "softmax":
            logits = torch.cat([pos_s[:, None], neg_s.masked_fill(~keep, -torch.inf)], 1)
            expected = -torch.log_softmax(logits, 1)[:, 0].mean()
        elif loss == "bpr":
            expected = (torch.nn.functional.softplus(neg_s - pos_s[:, None]) * keep).sum() / keep.numel()
        else:
            expected = (torch.nn.functional.softplus(-pos_s)
                        + (torch.nn.functional.softplus(neg_s) * keep).mean(1)).mean()
    before = [p.detach().clone() for p in model.parameters()]
    assert trainer.train_batch(eids, neg) == pytest.approx(expected.item(), rel=1e-5)
    for old, new in zip(before, model.parameters()):
        assert torch.isfinite(new).all() and not torch.equal(old, new)


def test_shared_negatives_train_a_good_model(split):
    from graphrec.scoring import CosineScorer

    graph = RecGraph(split.train)
    ev = Evaluator(exclude=[split.train, split.valid], ks=(10,))
    torch.manual_seed(0)
    model = LightGCN(graph, dim=16, num_layers=2, scorer=CosineScorer(0.1))
    before = ev.evaluate(model, split.test)["recall@10"]
    Trainer(model, split.valid, config(loss="softmax", shared_negatives=True, num_negatives=32,
                                       epochs=15, l2=0)).fit()
    after = ev.evaluate(model, split.test)["recall@10"]
    assert after > before + 0.1, (before, after)


def test_user_batches_draw_users_uniformly_then_their_edges_uniformly():
    # user 0 has 40 edges, users 1-3 have 2 each, user 4 none
    users = np.array([0] * 40 + [1, 1, 2, 2, 3, 3])
    items = np.concatenate([np.arange(40), [0, 1, 2, 3, 4, 5]])
    log = Interactions.from_arrays(users, items, num_users=5, num_items=40)
    trainer = Trainer(MF(RecGraph(log), dim=4), None, config(batch_sampling="users"))
    draws = torch.cat([trainer._epoch_edges(torch.Generator().manual_seed(e)) for e in range(2000)])
    assert draws.numel() == 2000 * 46  # an epoch has as many draws as edges
    drawn_users = trainer.edge_users[draws]
    share = torch.bincount(drawn_users, minlength=5).double() / draws.numel()
    torch.testing.assert_close(share, torch.tensor([0.25, 0.25, 0.25, 0.25, 0.0], dtype=torch.float64),
                               atol=0.01, rtol=0)
    # within user 0, each of the 40 edges equally often (edges shuffled: 1/46 of draws each)
    of_zero = torch.bincount(draws[drawn_users == 0], minlength=46)[:40].double()
    assert of_zero.min() > 0.8 * of_zero.mean() and of_zero.max() < 1.2 * of_zero.mean()
    # the same epoch seed gives the same draws
    g = torch.Generator()
    assert torch.equal(trainer._epoch_edges(g.manual_seed(7)), trainer._epoch_edges(g.manual_seed(7)))
    edges = Trainer(MF(RecGraph(log), dim=4), None, config())._epoch_edges(g.manual_seed(7))
    assert torch.equal(torch.sort(edges).values, torch.arange(46))


def test_user_batches_train_a_good_model(split):
    graph = RecGraph(split.train)
    ev = Evaluator(exclude=[split.train, split.valid], ks=(10,))
    torch.manual_seed(0)
    model = LightGCN(graph, dim=16, num_layers=2)
    before = ev.evaluate(model, split.test)["recall@10"]
    Trainer(model, split.valid, config(batch_sampling="users", epochs=15)).fit()
    after = ev.evaluate(model, split.test)["recall@10"]
    assert after > before + 0.1, (before, after)


def test_hardest_negatives_pick_the_top_scored_candidate_of_each_group(split):
    graph = RecGraph(split.train)
    torch.manual_seed(0)
    model = MF(graph, dim=8)
    trainer = Trainer(model, None, config(num_negatives=2, hard_negatives=3))
    eids = torch.arange(0, 40, 3)
    cand = torch.randint(0, graph.num_items, (eids.numel(), 6))
    picked = trainer.hardest_negatives(eids, cand)
    assert picked.shape == (eids.numel(), 2)
    users = trainer.edge_users[eids]
    for row in range(eids.numel()):
        u = model.user_emb.weight[users[row]]
        for g in range(2):
            group = cand[row, 3 * g:3 * g + 3]
            scores = model.item_emb.weight[group] @ u
            assert picked[row, g] == group[scores.argmax()]


def test_hard_negatives_reach_the_step_and_train_a_good_model(split, monkeypatch):
    graph = RecGraph(split.train)
    ev = Evaluator(exclude=[split.train, split.valid], ks=(10,))
    torch.manual_seed(0)
    model = MF(graph, dim=16)
    shapes = []
    original = Trainer.hardest_negatives

    def spy(self, eids, candidates, masked=None):
        out = original(self, eids, candidates, masked)
        shapes.append((tuple(candidates.shape), tuple(out.shape)))
        return out

    monkeypatch.setattr(Trainer, "hardest_negatives", spy)
    before = ev.evaluate(model, split.test)["recall@10"]
    Trainer(model, split.valid, config(hard_negatives=4, epochs=15)).fit()
    after = ev.evaluate(model, split.test)["recall@10"]
    assert after > before + 0.1, (before, after)
    assert shapes and all(c[1] == 4 and o[1] == 1 and c[0] == o[0] for c, o in shapes)


def test_hard_negatives_config_is_checked():
    with pytest.raises(ValueError, match="hard_negatives must be >= 1"):
        TrainConfig(hard_negatives=0)
    with pytest.raises(ValueError, match="use one or the other"):
        TrainConfig(hard_negatives=4, shared_negatives=True)


def test_validate_start_keeps_a_warm_start_that_no_epoch_beats(split):
    from graphrec.models import AttentiveFilter

    model = AttentiveFilter(RecGraph(split.train), rank=8, feature_rank=4).fit()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    # A learning rate so large that every trained epoch is worse than GF-CF.
    fit = Trainer(model, split.valid, config(epochs=2, lr=50.0)).fit()
    assert [row["epoch"] for row in fit.history] == [0, 1, 2]
    assert fit.best_epoch == 0
    assert max(r["valid_recall@10"] for r in fit.history[1:]) <= fit.history[0]["valid_recall@10"]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, start[k])
    off = Trainer(AttentiveFilter(RecGraph(split.train), rank=8, feature_rank=4).fit(), split.valid,
                  config(epochs=1, validate_start=False)).fit()
    assert [row["epoch"] for row in off.history] == [1]


def test_an_earlier_run_is_never_trained_over(split, tmp_path):
    from graphrec.run_folder import RunError

    model = MF(RecGraph(split.train), dim=8)
    Trainer(model, split.valid, config(epochs=1, run_dir=str(tmp_path))).fit()
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(RunError, match="earlier run"):
        Trainer(MF(RecGraph(split.train), dim=8), split.valid,
                config(epochs=1, run_dir=str(tmp_path))).fit()
    assert (tmp_path / "last.pt").read_bytes() == before


def test_a_bad_monitor_is_refused_before_any_epoch(split):
    with pytest.raises(ValueError, match="not a validation metric"):
        Trainer(MF(RecGraph(split.train), dim=8), split.valid,
                TrainConfig(epochs=1, ks=(10,), monitor="recall@7", progress=False))


def test_validation_scores_with_the_configured_score_backend(split, evaluator_backends):
    graph = RecGraph(split.train)
    best = {}
    for backend in ("numpy", "torch"):
        torch.manual_seed(0)
        trainer = Trainer(MF(graph, dim=8), split.valid, config(epochs=1, score_backend=backend))
        assert trainer.evaluator.score_backend == backend
        best[backend] = trainer.fit().best_metrics
    assert evaluator_backends == ["numpy", "torch"]
    for key in ("recall@10", "ndcg@10"):
        assert best["numpy"][key] == pytest.approx(best["torch"][key], abs=1e-6)
    with pytest.raises(ValueError, match="score_backend"):
        config(score_backend="gpu")
