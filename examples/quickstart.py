"""Quickstart: MF-BPR, LightGCN and the attention recommender side by side on synthetic data.

No downloads: the dataset is generated deterministically from a seed. Each model trains
with early stopping on the validation split; the test split is evaluated once per model,
at the end, and the results are printed as one table.

The attention recommender (``GATRecommender``) is LightGCN's propagation with learned
attention, and equals LightGCN while its sharpnesses are 0. It starts from the trained
LightGCN's embeddings and learns the attention for a few epochs (``--gat-epochs``), the
cheapest way to see what attention adds; its epoch 0 is LightGCN itself, so validation
keeps LightGCN's weights when no attention epoch beats them. Its seconds are those
extra epochs, and part of any gain over LightGCN may come from training longer:
``benchmarks/README.md`` compares attention with LightGCN continued for as long.

    python examples/quickstart.py            # defaults
    python examples/quickstart.py --help
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from graphrec.data import RecGraph
from graphrec.data.splits import per_user_split
from graphrec.datasets import summary, synthetic
from graphrec.evaluate import Evaluator
from graphrec.models import MF, LightGCN
from graphrec.models.gat import GATRecommender
from graphrec.training import TrainConfig, Trainer


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Train the three models and return ``{model: {"recall@20", "ndcg@20", "seconds", ...}}``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1000, help="synthetic users (default 1000)")
    parser.add_argument("--items", type=int, default=700, help="synthetic items (default 700)")
    parser.add_argument("--epochs", type=int, default=15, help="maximum training epochs (default 15)")
    parser.add_argument("--gat-epochs", type=int, default=4,
                        help="epochs of attention learned on top of LightGCN (default 4)")
    parser.add_argument("--batch-size", type=int, default=4096, help="training edges per step")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    parser.add_argument("--dim", type=int, default=64, help="embedding size")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, split and training")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda'")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--quiet", action="store_true", help="no epoch lines or progress bars")
    args = parser.parse_args(argv)
    if not args.quiet:  # the trainers log one line per epoch
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    data = synthetic(num_users=args.users, num_items=args.items, seed=args.seed)
    print(summary(data))
    split = per_user_split(data.interactions, ratios=(0.8, 0.1, 0.1), seed=args.seed)
    graph = RecGraph(split.train)
    test_eval = Evaluator(exclude=[split.train, split.valid], ks=(20,))

    def from_lightgcn() -> GATRecommender:
        # β at 10× the embeddings' rate: at the same rate Adam barely moves it off 0 in a
        # few epochs (docs/findings/attention-vs-lightgcn.md).
        gat = GATRecommender(graph, dim=args.dim, attention_lr_scale=10)
        gat.load_state_dict(trained["LightGCN"].state_dict(), strict=False)
        return gat

    models = {
        "MF-BPR": (lambda: MF(graph, dim=args.dim), args.epochs, False),
        "LightGCN": (lambda: LightGCN(graph, dim=args.dim), args.epochs, False),
        "GAT (attention)": (from_lightgcn, args.gat_epochs, True),
    }
    trained: dict[str, torch.nn.Module] = {}
    results: dict[str, dict[str, float]] = {}
    for name, (build, epochs, warm) in models.items():
        config = TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr, patience=5,
                             seed=args.seed, device=args.device, progress=not args.quiet,
                             validate_start=warm)
        start = time.perf_counter()
        model = trained[name] = build()
        fit = Trainer(model, split.valid, config).fit()  # restores the best epoch's weights
        test = test_eval.evaluate(model, split.test)
        results[name] = {"recall@20": test["recall@20"], "ndcg@20": test["ndcg@20"],
                         "seconds": time.perf_counter() - start, "best_epoch": fit.best_epoch}

    print(f"\n{'model':<16} {'Recall@20':>9} {'NDCG@20':>8} {'seconds':>8}")
    for name, r in results.items():
        print(f"{name:<16} {r['recall@20']:>9.4f} {r['ndcg@20']:>8.4f} {r['seconds']:>8.1f}")
    print(f"GAT (attention) starts from the trained LightGCN and adds up to {args.gat_epochs} "
          "epochs; its seconds are those epochs.")
    return results


if __name__ == "__main__":
    main()
