"""LightGCN, LightGCN++ and the attention recommender on the smaller shared datasets.

Every run goes through :func:`graphrec.experiment.run` exactly as ``graphrec train``
does: the epoch is chosen by early stopping on validation Recall@20, a fresh model is
refit on training + validation for that many epochs (``train.refit``), and the test
split is ranked once, all items, training and validation items masked. All models share
the training settings (BPR, one negative, Adam, batch 2048, L2 1e-4), and each
(dataset, model) runs over several seeds (initialisation, batches and negatives; the
split is fixed by ``data.seed``).

Models (``--models``):

* ``lightgcn``: LightGCN (symmetric normalisation, mean pooling).
* ``lightgcn_pp``: LightGCN++'s normalisation D^-a A D^-b and ego share γ, all learned
  (``model.learn_norm``), no attention.
* ``node_attention``: ``lightgcn_pp`` plus a learned importance of every node as a
  neighbour inside each softmax (attention without the score's dot products).
* ``gat``: the attention recommender (light attention layers, cosine score with a
  degree prior; β learned at 10× the learning rate; each batch's edges hidden).
* ``gat_pp``: ``gat`` with the learned normalisation of ``lightgcn_pp``.
* ``attentive_filter``: a graph filter with attention on its second hop, trained from
  the filter's closed form; the ideal filter's rank k (8 to 256 in steps of √2: a data
  set's number of latent communities can be small, and the rank that fits it is found
  only on a fine grid), its weight α ∈ {0.1, 0.3, 1, 3, 10} and the degree normalisation
  γ ∈ {GF-CF's, 0.25, 0.4, 0.5}, or in the filter's place attention of each user over all
  users with sharpness β_U ∈ {2, 5, 10, 20} (``user_attention``), are chosen on
  validation first (``model.grid``, one SVD for all 248 distinct points).

Usage::

    python benchmarks/compare.py --root ../shared/datasets
    python benchmarks/compare.py --datasets lastfm movielens --seeds 0 1 2
    python benchmarks/compare.py --log runs.jsonl ...   # resumable: finished runs are kept

Prints a table (per seed, then mean ± standard deviation), then, last, one JSON line per
(dataset, model) with ``{"dataset", "model", "recall@20", "ndcg@20", "valid_recall@20",
"train_minutes", "refit", "seeds", "recall@20_std", "ndcg@20_std"}`` (means over seeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from graphrec.config import load_config
from graphrec.experiment import run

DATASETS = {
    # Last.fm comes with its split; 10% of training is carved out for validation.
    "lastfm": ["data.dataset=lastfm", "data.split=given", "data.valid_ratio=0.1"],
    # Every rating is an interaction (implicit feedback); 80/10/10 per user.
    "movielens": ["data.dataset=movielens_small", "data.split=per_user"],
    "filmtrust": ["data.dataset=filmtrust", "data.split=per_user"],
    "synthetic": ["data.dataset=synthetic"],
}
# Attention can learn to look at the very edge a batch is predicting, so the attention
# models hide each batch's positive edges from propagation while training.
MODELS = {
    "lightgcn": ["model.name=lightgcn"],
    "lightgcn_pp": ["model.name=lightgcn_pp", "model.learn_norm=true"],
    "node_attention": ["model.name=lightgcn_pp", "model.learn_norm=true", "model.node_importance=true"],
    "gat": ["model.name=gat", "model.attention_lr_scale=10", "train.mask_batch_edges=true"],
    "gat_pp": ["model.name=gat", "model.attention_lr_scale=10", "model.learn_norm=true",
               "train.mask_batch_edges=true"],
    # A graph filter in closed form, its point (α, γ) chosen on validation, then attention
    # on its edges (batch edges always hidden).
    "attentive_filter": ["model.name=attentive_filter", "model.rank=256",
                         "model.grid={rank: [8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256], "
                         "ideal_weight: [0.1, 0.3, 1.0, 3.0, 10.0], degree_power: [null, 0.25, 0.4, 0.5], "
                         "user_attention: [null, 2.0, 5.0, 10.0, 20.0]}"],
}


def one_run(dataset: str, model: str, seed: int, args: argparse.Namespace) -> dict:
    overrides = [*DATASETS[dataset], *MODELS[model],
                 f"train.seed={seed}", f"train.epochs={args.epochs}", f"train.patience={args.patience}",
                 "train.batch_size=2048", f"train.lr={args.lr}", "train.l2=1e-4", "train.refit=true",
                 "train.progress=false", "train.monitor=recall@20", "eval.ks=[20]",
                 f"model.dim={args.dim}", f"model.layers={args.layers}"]
    if args.root:
        overrides.append(f"data.root={args.root}")
    result = run(load_config(None, overrides))
    return {"dataset": dataset, "model": model, "seed": seed,
            "recall@20": result.test["recall@20"], "ndcg@20": result.test["ndcg@20"],
            "valid_recall@20": result.fit.best_metrics.get("recall@20", float("nan")),
            "train_minutes": result.fit.train_seconds / 60, "best_epoch": result.fit.best_epoch,
            "selected": result.selected}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=None, help="datasets directory (default: GRAPHREC_DATA)")
    p.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=10, help="validations without improvement")
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log", type=Path, default=None,
                   help="append every (dataset, model, seed) result to this JSON lines file; "
                        "results already in it are read back instead of run again")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    done = ([json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
            if args.log is not None and args.log.exists() else [])
    rows = []
    print(f"{'dataset':<11}{'model':<13}{'seed':>5}{'R@20':>9}{'N@20':>9}{'valid R@20':>12}"
          f"{'epochs':>8}{'minutes':>9}", flush=True)
    for dataset in args.datasets:
        for model in args.models:
            for seed in args.seeds:
                earlier = [r for r in done if (r["dataset"], r["model"], r["seed"]) == (dataset, model, seed)]
                r = earlier[-1] if earlier else one_run(dataset, model, seed, args)
                rows.append(r)
                if args.log is not None and not earlier:
                    with args.log.open("a") as f:
                        f.write(json.dumps(r) + "\n")
                print(f"{dataset:<11}{model:<13}{seed:>5}{r['recall@20']:>9.4f}{r['ndcg@20']:>9.4f}"
                      f"{r['valid_recall@20']:>12.4f}{r['best_epoch']:>8}{r['train_minutes']:>9.2f}",
                      flush=True)
    summary = []
    print(f"\n{'dataset':<11}{'model':<13}{'R@20 mean ± sd':>20}{'N@20 mean ± sd':>20}{'valid R@20':>12}")
    for dataset in args.datasets:
        for model in args.models:
            runs = [r for r in rows if r["dataset"] == dataset and r["model"] == model]

            def stat(key: str, runs: list[dict] = runs) -> tuple[float, float]:
                values = [r[key] for r in runs]
                return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

            (rec, rec_sd), (ndcg, ndcg_sd) = stat("recall@20"), stat("ndcg@20")
            valid, minutes = stat("valid_recall@20")[0], stat("train_minutes")[0]
            print(f"{dataset:<11}{model:<13}{rec:>11.4f} ± {rec_sd:.4f}{ndcg:>11.4f} ± {ndcg_sd:.4f}"
                  f"{valid:>12.4f}")
            summary.append({"dataset": dataset, "model": model, "recall@20": round(rec, 5),
                            "ndcg@20": round(ndcg, 5), "valid_recall@20": round(valid, 5),
                            "train_minutes": round(minutes, 3), "refit": True, "seeds": len(runs),
                            "recall@20_std": round(rec_sd, 5), "ndcg@20_std": round(ndcg_sd, 5)})
    for line in summary:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
