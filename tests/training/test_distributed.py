"""Data-parallel training and sharded evaluation on 2 CPU ranks (gloo), spawned here.

The workers are module-level functions, so that the spawned processes can import them;
each writes what it computed to a file that the test, in this process, compares with
one process doing the same work.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.multiprocessing import ProcessExitedException

from graphrec.data import Interactions, RecGraph
from graphrec.data.social import SocialEdges
from graphrec.data.splits import per_user_split
from graphrec.distributed import Ranks, current_ranks, spawn
from graphrec.evaluate import Evaluator
from graphrec.models import MF, GATRecommender, GraphRec, LightGCN, SocialGATRecommender
from graphrec.training import RatingTrainConfig, RatingTrainer, TrainConfig, Trainer

NPROC = 2


def tiny_split(seed: int = 0, users: int = 60, items: int = 40, per_user: int = 8):
    """A small log with ratings, split per user, and a social network."""
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(users), per_user)
    i = np.concatenate([rng.choice(items, per_user, replace=False) for _ in range(users)])
    r = rng.integers(1, 6, u.size).astype(np.float32)
    inter = Interactions.from_arrays(u, i, rating=r, num_users=users, num_items=items)
    split = per_user_split(inter, ratios=(0.7, 0.15, 0.15), seed=seed)
    src, dst = rng.integers(0, users, 150), rng.integers(0, users, 150)
    keep = src != dst
    social = SocialEdges.from_arrays(src[keep], dst[keep], num_users=users)
    return split, social


def build(name: str, graph: RecGraph, split):
    torch.manual_seed(7)
    if name == "mf":
        return MF(graph, dim=8)
    if name == "lightgcn":
        return LightGCN(graph, dim=8, num_layers=2)
    if name == "gat":
        return GATRecommender(graph, dim=8, num_layers=2, learn_powers=True, node_importance=True)
    if name == "social_gat":
        return SocialGATRecommender(graph, dim=8, num_layers=2)
    return GraphRec(graph, split.train, dim=8)


RANKING_CONFIG = TrainConfig(epochs=2, batch_size=75, lr=0.02, l2=1e-3, num_negatives=2,
                             hard_negatives=2, mask_batch_edges=True, patience=0, progress=False,
                             device="cpu", seed=5, ks=(5,), monitor="recall@5")
MODELS = ("mf", "lightgcn", "gat", "social_gat", "graphrec")


def train(name: str, run_dir: str | None = None, epochs: int = 2, resume: bool = False,
          stop_after: int | None = None):
    """Train model ``name`` on the tiny data; returns the model and the edge ids each step
    trained on here."""
    split, social = tiny_split()
    graph = RecGraph(split.train, social)
    model = build(name, graph, split)
    steps: list[torch.Tensor] = []

    def hook(trainer, row):
        if stop_after is not None and row["epoch"] == stop_after:
            os._exit(3)  # a kill: no clean-up, last.pt is the previous epoch's

    if name == "graphrec":
        cfg = RatingTrainConfig(epochs=epochs, batch_size=75, lr=0.01, patience=0, progress=False,
                                device="cpu", seed=5, run_dir=run_dir, resume=resume)
        trainer = RatingTrainer(model, split.valid, cfg, on_epoch_end=hook)
        original = type(model).forward

        def forward(users, items, edge_mask=None):
            steps.append(torch.stack([users, items]))
            return original(model, users, items, edge_mask)

        model.forward = forward
    else:
        cfg = dataclasses.replace(RANKING_CONFIG, epochs=epochs, run_dir=run_dir, resume=resume)
        trainer = Trainer(model, split.valid, cfg, on_epoch_end=hook)
        original = trainer.train_batch

        def train_batch(eids, neg, where="batch", masked=None, share=1.0):
            steps.append(eids.clone())
            return original(eids, neg, where, masked, share)

        trainer.train_batch = train_batch
    fit = trainer.fit()
    return model, steps, fit


def _train_worker(out: str) -> None:
    ranks = current_ranks()
    assert ranks is not None and ranks.world_size == NPROC
    result = {}
    for name in MODELS:
        model, steps, fit = train(name)
        result[name] = {"state": model.state_dict(), "steps": steps, "history": fit.history}
    torch.save(result, Path(out) / f"rank{ranks.rank}.pt")


def test_two_ranks_take_the_steps_of_one_process_on_the_same_batches(tmp_path):
    spawn(_train_worker, NPROC, (str(tmp_path),))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(NPROC)]
    for name in MODELS:
        model, steps, fit = train(name)
        # Each step of one process is the concatenation of the ranks' disjoint shares.
        shares = [ranks[r][name]["steps"] for r in range(NPROC)]
        assert all(len(s) == len(steps) for s in shares)
        for k, whole in enumerate(steps):
            assert torch.equal(torch.cat([s[k] for s in shares], dim=-1), whole), (name, k)
        # The ranks end with identical weights, those of one process to float rounding.
        one = model.state_dict()
        for key, value in one.items():
            assert torch.equal(ranks[0][name]["state"][key], ranks[1][name]["state"][key]), key
            torch.testing.assert_close(ranks[0][name]["state"][key], value, rtol=1e-4, atol=1e-5,
                                       msg=f"{name}: {key}")
        # The same validation metrics and mean losses are recorded.
        for row_d, row_1 in zip(ranks[0][name]["history"], fit.history):
            for key in row_1:
                if "seconds" not in key:
                    assert row_d[key] == pytest.approx(row_1[key], rel=1e-4, abs=1e-6), (name, key)


def _resume_worker(out: Path, names: list[str], resume: bool, stop_after: int | None) -> None:
    ranks = current_ranks()
    assert ranks is not None
    for name in names:
        model, _, _ = train("lightgcn", str(out / name), epochs=3, resume=resume,
                            stop_after=stop_after)
        if ranks.is_main:
            torch.save(model.state_dict(), out / f"{name}.pt")


def test_a_seeded_two_rank_run_is_reproducible_and_resumes_exactly_after_a_kill(tmp_path):
    def run(*names, stop_after=None, resume=False):
        spawn(_resume_worker, NPROC, (tmp_path, list(names), resume, stop_after))
        return [torch.load(tmp_path / f"{name}.pt", weights_only=True) for name in names]

    a, b = run("a", "b")  # two runs from the same seed
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # Killed after its second epoch (before that epoch's checkpoint), then resumed.
    with pytest.raises(ProcessExitedException):
        run("c", stop_after=2)
    assert torch.load(tmp_path / "c" / "last.pt", weights_only=True)["epoch"] == 1
    (c,) = run("c", resume=True)
    for key in a:
        assert torch.equal(a[key], c[key]), key
    # Files are written once, by rank 0: the metrics hold each epoch once.
    metrics = pd.read_csv(tmp_path / "a" / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "best.pt", "last.pt", "metrics.csv", "metrics.json", "metrics.jsonl"]


def evaluation_inputs():
    split, _ = tiny_split(seed=1, users=90, items=70)
    graph = RecGraph(split.train)
    torch.manual_seed(2)
    model = LightGCN(graph, dim=8, num_layers=2)
    # A small budget: many batches of users, so that each rank scores several.
    evaluator = Evaluator(exclude=[split.train, split.valid], ks=(3, 10),
                          memory_budget_mb=0.02)
    return split, model, evaluator


def evaluate_all(evaluator, model, split):
    emb = evaluator.evaluate(model, split.test, per_user=True)
    user_emb, item_emb = model.embeddings()
    scores = evaluator.evaluate_scores(lambda u: user_emb[u] @ item_emb.T, model.num_users,
                                       model.num_items, split.test, per_user=True)
    return emb, scores


def _evaluate_worker(out: str) -> None:
    ranks = current_ranks()
    assert ranks is not None
    split, model, evaluator = evaluation_inputs()
    assert evaluator.ranks == ranks
    torch.save(evaluate_all(evaluator, model, split), Path(out) / f"rank{ranks.rank}.pt")


def test_sharded_evaluation_equals_one_process_exactly(tmp_path):
    spawn(_evaluate_worker, NPROC, (str(tmp_path),))
    split, model, evaluator = evaluation_inputs()
    assert evaluator.ranks is None
    assert evaluator.batch_size(model.num_items) * 4 < len(np.unique(split.test.user))
    single = evaluate_all(evaluator, model, split)
    for r in range(NPROC):
        sharded = torch.load(tmp_path / f"rank{r}.pt", weights_only=False)
        for (m_d, frame_d), (m_1, frame_1) in zip(sharded, single):
            # exactly, every metric including coverage and popularity
            assert {k: v for k, v in m_d.items() if k != "eval_seconds"} == \
                {k: v for k, v in m_1.items() if k != "eval_seconds"}
            pd.testing.assert_frame_equal(frame_d, frame_1, check_exact=True)


def test_a_rank_takes_a_contiguous_disjoint_share():
    for n in (0, 1, 5, 37):
        parts = [Ranks(r, 3).part(n) for r in range(3)]
        assert [i for p in parts for i in range(n)[p]] == list(range(n))
        assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


def test_graphrec_train_nproc_2_gives_the_numbers_of_one_process(tmp_path, capsys):
    import json

    from graphrec.cli import main

    common = ["train", "--set", "data.synthetic_users=150", "--set", "data.synthetic_items=90",
              "--set", "train.epochs=2", "--set", "train.batch_size=256", "--set", "model.dim=8",
              "--set", "model.layers=2", "--set", "train.progress=false", "--set", "train.device=cpu"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--nproc", "2", "--out", str(tmp_path / "two")]) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert one["best_epoch"] == two["best_epoch"]
    for part in ("valid", "test"):
        for key, value in one[part].items():
            if key != "eval_seconds":
                assert two[part][key] == pytest.approx(value, rel=1e-6, abs=1e-9), (part, key)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())
    assert main([*common, "--nproc", "0", "--out", str(tmp_path / "none")]) == 2
    assert "--nproc" in capsys.readouterr().err
