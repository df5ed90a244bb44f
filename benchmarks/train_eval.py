"""LightGCN training and full-ranking evaluation on Gowalla: graphrec vs PyG, same run.

Training (batch 2048, dim 64, 3 layers, BPR, Adam 1e-3, one uniform negative per edge):

* ``graphrec``: :class:`graphrec.models.LightGCN` driven by :class:`graphrec.training.Trainer`
  exactly as a user runs it (shuffling, negative sampling, L2 on the batch's ego
  embeddings, optimiser step).
* ``pyg``: ``torch_geometric.nn.models.LightGCN`` trained the way PyG's example does
  (``model(edge_index, edge_label_index)``, ``recommendation_loss``), on its fastest CPU
  input, a pre-normalised torch sparse CSR adjacency (``normalize=False``).

Both run the same number of batches, interleaved round-robin so that load from other
processes hits them alike; the epoch time is the median batch time × batches per epoch
(396 on Gowalla). ``--full-epoch`` also times one complete graphrec epoch through
``Trainer.fit``.

Evaluation: all 29,858 test users ranked against all 40,981 items, training items masked,
Recall@20 and NDCG@20, including propagation. ``graphrec`` uses
:class:`graphrec.evaluate.Evaluator`; ``pyg`` the example's loop (propagate, then per user
batch: scores, mask training items with ``-inf``, top-20). Both score the same weights,
so their metrics must agree, which the script checks.

Usage::

    python benchmarks/train_eval.py --root ../shared/datasets
    python benchmarks/train_eval.py --root ../shared/datasets --batches 10 --quick
    python benchmarks/train_eval.py --root ../shared/datasets --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np
import scipy.sparse as sp
import torch

from graphrec import datasets
from graphrec.data.csr import csr_tensor
from graphrec.data.graph import RecGraph
from graphrec.data.sampling import NegativeSampler
from graphrec.evaluate import Evaluator
from graphrec.models import LightGCN
from graphrec.training import TrainConfig, Trainer


def pyg_model(graph: RecGraph, dim: int, layers: int):
    """PyG's LightGCN and its normalised CSR adjacency (users first, then items)."""
    from torch_geometric.nn.models import LightGCN as PygLightGCN

    model = PygLightGCN(graph.num_nodes, dim, layers, normalize=False)
    adj = graph.to_torch().norm_adj
    # PyG's sparse path takes int64 indices; give it the same matrix it would build itself.
    adj = csr_tensor(adj.crow_indices().long(), adj.col_indices().long(), adj.values(),
                     tuple(adj.shape), compact_indices=False)
    return model, adj


class PygStepper:
    """One training batch the way PyG's LightGCN example runs it."""

    def __init__(self, graph: RecGraph, dim: int, layers: int, batch_size: int, seed: int,
                 device: torch.device) -> None:
        model, adj = pyg_model(graph, dim, layers)
        self.model, self.adj = model.to(device), adj.to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        u, i = graph.edges()
        self.edges = torch.from_numpy(np.stack([u, i + graph.num_users])).to(device)
        self.device = device
        self.num_users, self.num_items = graph.num_users, graph.num_items
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def step(self) -> None:
        idx = torch.randint(self.edges.size(1), (self.batch_size,), generator=self.gen)
        pos = self.edges[:, idx.to(self.device)]
        neg = torch.randint(self.num_users, self.num_users + self.num_items, (idx.numel(),),
                            generator=self.gen).to(self.device)
        label_index = torch.cat([pos, torch.stack([pos[0], neg])], dim=1)
        pos_rank, neg_rank = self.model(self.adj, label_index).chunk(2)
        loss = self.model.recommendation_loss(pos_rank, neg_rank, node_id=label_index.unique())
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()


class GraphrecStepper:
    """One training batch of graphrec's Trainer (:meth:`Trainer.train_batch`), edges drawn
    at random as PyG's example draws them."""

    def __init__(self, graph: RecGraph, dim: int, layers: int, batch_size: int, seed: int,
                 device: torch.device) -> None:
        self.model = LightGCN(graph, dim=dim, num_layers=layers)
        self.trainer = Trainer(self.model, None, TrainConfig(lr=1e-3, l2=1e-4, batch_size=batch_size,
                                                             seed=seed, device=str(device)))
        self.sampler = NegativeSampler(graph, seed=seed)
        self.num_edges = graph.num_edges
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def step(self) -> None:
        eids = torch.randint(self.num_edges, (self.batch_size,), generator=self.gen)
        users = self.trainer.edge_users[eids].cpu().numpy()
        self.trainer.train_batch(eids, torch.from_numpy(np.asarray(self.sampler.sample(users, 1))))


def pyg_example_eval(model, adj, graph: RecGraph, test, k: int = 20,
                     batch_size: int = 2048) -> dict[str, float]:
    """PyG example-style full ranking: propagate, score user batches, mask, top-k."""
    with torch.no_grad():
        emb = model.get_embedding(adj)
    user_emb, item_emb = emb[: graph.num_users], emb[graph.num_users:]
    device = user_emb.device
    train = graph.ui
    test_csr = sp.csr_matrix((np.ones(len(test)), (test.user, test.item)),
                             shape=(graph.num_users, graph.num_items))
    recalls, ndcgs = [], []
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64))
    for start in range(0, graph.num_users, batch_size):
        stop = min(start + batch_size, graph.num_users)
        logits = user_emb[start:stop] @ item_emb.t()
        rows = train[start:stop].tocoo()
        logits[torch.from_numpy(rows.row).long().to(device),
               torch.from_numpy(rows.col).long().to(device)] = -torch.inf
        top = logits.topk(k, dim=1).indices.cpu()
        t = test_csr[start:stop]
        truth = torch.from_numpy(t.toarray()).bool()
        hit = torch.gather(truth, 1, top).double()
        n_true = truth.sum(1).double()
        has = n_true > 0
        recalls.append((hit.sum(1) / n_true.clamp(min=1))[has])
        ideal = torch.cumsum(discounts, 0)[(n_true.clamp(max=k) - 1).clamp(min=0).long()]
        ndcgs.append(((hit * discounts).sum(1) / ideal)[has])
    return {f"recall@{k}": torch.cat(recalls).mean().item(), f"ndcg@{k}": torch.cat(ndcgs).mean().item()}


def _clock(device: torch.device) -> float:
    """Wall time after the device has finished its queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="datasets directory (default: GRAPHREC_DATA)")
    p.add_argument("--batches", type=int, default=30, help="timed batches per library")
    p.add_argument("--eval-reps", type=int, default=3, help="timed evaluations per library")
    p.add_argument("--full-epoch", action="store_true", help="also time one full Trainer epoch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="small smoke run (3 batches, 1 eval)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, … (both libraries run there)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if args.quick:
        args.batches, args.eval_reps = 3, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ds = datasets.gowalla(root=args.root)
    graph = RecGraph(ds.split.train)
    test = ds.split.test
    dim, layers, bs = 64, 3, 2048
    batches_per_epoch = math.ceil(graph.num_edges / bs)

    ours = GraphrecStepper(graph, dim, layers, bs, 0, device)
    pyg = PygStepper(graph, dim, layers, bs, 0, device)
    for s in (ours, pyg):  # warm-up: caches, allocator
        s.step()
    times: dict[str, list[float]] = {"graphrec": [], "pyg": []}
    for _ in range(args.batches):
        for name, s in (("graphrec", ours), ("pyg", pyg)):
            t0 = _clock(device)
            s.step()
            times[name].append(_clock(device) - t0)
    batch_s = {k: statistics.median(v) for k, v in times.items()}

    # Same weights in both models, so both evaluations must report the same metrics.
    with torch.no_grad():
        pyg.model.embedding.weight.copy_(torch.cat([ours.model.user_emb.weight,
                                                    ours.model.item_emb.weight]))
    evaluator = Evaluator(exclude=[graph.ui], ks=(20,), metrics=("recall", "ndcg"))
    eval_times: dict[str, list[float]] = {"graphrec": [], "pyg": []}
    metrics: dict[str, dict[str, float]] = {}
    for _ in range(args.eval_reps):
        t0 = _clock(device)
        metrics["graphrec"] = evaluator.evaluate(ours.model, test)
        eval_times["graphrec"].append(_clock(device) - t0)
        t0 = _clock(device)
        metrics["pyg"] = pyg_example_eval(pyg.model, pyg.adj, graph, test)
        eval_times["pyg"].append(_clock(device) - t0)
    eval_s = {k: statistics.median(v) for k, v in eval_times.items()}
    agree = all(abs(metrics["graphrec"][m] - metrics["pyg"][m]) < 1e-5 for m in ("recall@20", "ndcg@20"))

    full_epoch = None
    if args.full_epoch:
        model = LightGCN(graph, dim=dim, num_layers=layers)
        fit = Trainer(model, None, TrainConfig(epochs=1, batch_size=bs, progress=False,
                                              device=str(device))).fit()
        full_epoch = fit.train_seconds

    print(f"Gowalla: {graph.num_users:,} users, {graph.num_items:,} items, "
          f"{graph.num_edges:,} training edges; batch {bs} → {batches_per_epoch} batches/epoch; "
          f"{args.threads} threads, {device}; median of {args.batches} interleaved batches")
    print(f"| {'':28} | {'graphrec':>10} | {'PyG (CSR)':>10} | {'ratio':>6} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 12}|{'-' * 8}|")
    rows = [("batch (s)", batch_s["graphrec"], batch_s["pyg"]),
            ("epoch (s, batch × batches)", batch_s["graphrec"] * batches_per_epoch,
             batch_s["pyg"] * batches_per_epoch),
            ("full-ranking eval (s)", eval_s["graphrec"], eval_s["pyg"])]
    for label, a, b in rows:
        print(f"| {label:28} | {a:10.3f} | {b:10.3f} | {a / b:5.2f}× |")
    if full_epoch is not None:
        print(f"graphrec full Trainer epoch: {full_epoch:.1f} s")
    print(f"metrics (same weights): graphrec {metrics['graphrec']} | PyG loop {metrics['pyg']} | "
          f"{'agree' if agree else 'DISAGREE'}")
    print(json.dumps({
        "benchmark": "train_eval", "device": str(device), "threads": args.threads,
        "batches": args.batches,
        "batch_s": batch_s, "epoch_s": {k: v * batches_per_epoch for k, v in batch_s.items()},
        "epoch_ratio": batch_s["graphrec"] / batch_s["pyg"], "eval_s": eval_s,
        "eval_ratio": eval_s["graphrec"] / eval_s["pyg"], "full_epoch_s": full_epoch,
        "metrics_agree": agree, "metrics": metrics,
    }))


if __name__ == "__main__":
    main()
