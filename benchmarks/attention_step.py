"""Cost of one training step of the attention recommenders, as a multiple of LightGCN's.

Every model trains through :meth:`graphrec.training.Trainer.train_batch` exactly as a user's
run does (BPR, one uniform negative, L2 on the batch's ego embeddings, Adam), on the same
random batches of training edges, interleaved round-robin so that load from other
processes hits all models alike. The table reports the median step time and its ratio
to LightGCN's; the aim is at most 2× for the attention recommenders.

Usage::

    python benchmarks/attention_step.py --root ../shared/datasets            # Gowalla
    python benchmarks/attention_step.py --dataset lastfm --steps 20

Prints a table, then one JSON line per model with ``{"dataset", "model", "step_ms",
"ratio_to_lightgcn", "masked", "threads"}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from graphrec import datasets
from graphrec.data.graph import RecGraph
from graphrec.data.sampling import NegativeSampler
from graphrec.models import AttentiveFilter, LightGCN
from graphrec.models.gat import GATRecommender
from graphrec.training import TrainConfig, Trainer

VARIANTS = {
    "lightgcn": lambda g, d, layers: LightGCN(g, dim=d, num_layers=layers),
    "lightgcn_pp": lambda g, d, layers: GATRecommender(g, dim=d, num_layers=layers, attention=False,
                                                       normalize=True, dst_power=0.6, src_power=0.4),
    "lightgcn_pp_learned": lambda g, d, layers: GATRecommender(
        g, dim=d, num_layers=layers, attention=False, learn_powers=True, learn_pool=True),
    "node_attention": lambda g, d, layers: GATRecommender(
        g, dim=d, num_layers=layers, attention=False, learn_powers=True, learn_pool=True,
        node_importance=True),
    "gat_light": lambda g, d, layers: GATRecommender(g, dim=d, num_layers=layers),
    "gat_light_4heads": lambda g, d, layers: GATRecommender(g, dim=d, num_layers=layers, heads=4),
    "gat_light_neighbourhood": lambda g, d, layers: GATRecommender(
        g, dim=d, num_layers=layers, attention_score="neighbourhood"),
    "gat_gatconv": lambda g, d, layers: GATRecommender(g, dim=d, num_layers=layers, layer="gat"),
    # The graph filter with learned attention on its edges, as trained on Gowalla: the
    # closed form (rank 256, α = 0.1, γ = 0.25) fitted first, then β learned.
    "attentive_filter": lambda g, d, layers: AttentiveFilter(
        g, rank=256, feature_rank=d, ideal_weight=0.1, degree_power=0.25, node_bias=False).fit(),
}
# Models that always train with the batch's edges hidden (their own training recipe).
ALWAYS_MASKED = {"attentive_filter"}


def load(name: str, root: str | None) -> RecGraph:
    if name == "gowalla":
        return RecGraph(datasets.gowalla(root=root).split.train)
    loader = {"lastfm": datasets.lastfm, "movielens": datasets.movielens_small,
              "filmtrust": datasets.filmtrust}[name]
    ds = loader(root=root)
    # Last.fm comes split: its training file is the graph.
    return RecGraph(ds.interactions if ds.interactions is not None else ds.split.train)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=None, help="datasets directory (default: GRAPHREC_DATA)")
    p.add_argument("--dataset", default="gowalla", choices=["gowalla", "lastfm", "movielens", "filmtrust"])
    p.add_argument("--models", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=12, help="timed steps per model (after 2 warm-up steps)")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--mask-batch-edges", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    graph = load(args.dataset, args.root)
    sampler = NegativeSampler(graph, seed=0)
    trainers = {}
    for name in args.models:
        torch.manual_seed(0)
        model = VARIANTS[name](graph, args.dim, args.layers)
        trainers[name] = Trainer(model, None, TrainConfig(lr=1e-3, l2=1e-4, batch_size=args.batch_size,
                                                          mask_batch_edges=args.mask_batch_edges
                                                          or name in ALWAYS_MASKED,
                                                          progress=False))
    gen = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for step in range(args.steps + 2):
        eids = torch.randint(graph.num_edges, (args.batch_size,), generator=gen)
        users = graph.edges()[0][eids.numpy()]
        neg = torch.from_numpy(np.asarray(sampler.sample(users, 1)))
        for name, trainer in trainers.items():
            start = time.perf_counter()
            trainer.train_batch(eids, neg)
            if step >= 2:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["lightgcn"]) if "lightgcn" in times else None
    rows = []
    print(f"{'model':<26}{'step ms':>10}{'× LightGCN':>12}")
    for name, t in times.items():
        ms = statistics.median(t) * 1e3
        ratio = None if base is None else statistics.median(t) / base
        rows.append({"dataset": args.dataset, "model": name, "step_ms": round(ms, 1),
                     "ratio_to_lightgcn": None if ratio is None else round(ratio, 2),
                     "masked": args.mask_batch_edges or name in ALWAYS_MASKED,
                     "threads": args.threads})
        print(f"{name:<26}{ms:>10.1f}{'' if ratio is None else f'{ratio:.2f}':>12}")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
