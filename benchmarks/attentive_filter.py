r"""GF-CF with learned attention on its edges (:class:`graphrec.models.AttentiveFilter`).

The model is fitted in closed form (it is then exactly GF-CF), evaluated on validation
(epoch 0), and trained with BPR through the standard Trainer, validating after every
epoch. The epoch count with the best validation Recall@20 (0 = GF-CF itself) is then
used on the whole training part: fit, train that many epochs, test once.

Validation is a random 10% of each user's training rows (``holdout_valid(seed=0)``),
the same carve as ``benchmarks/filters.py``; the published test file is never looked at
before the final line.

Usage::

    python benchmarks/attentive_filter.py --root ../shared/datasets
    python benchmarks/attentive_filter.py --dataset lastfm --epochs 10
    python benchmarks/attentive_filter.py --ideal-weight 0.1 0.2 0.3 --degree-power none 0.2 0.3 0.4

``benchmarks/gowalla.py --model attentive_filter`` runs the same protocol on Gowalla
with these functions (``choose_start``, ``select_epochs``, ``refit``) next to the other
models, with gowalla.py's defaults (batch 2048, lr 1e-3), ``--seed``, ``--patience``, and
the validation-chosen model's test as well as the refit's::

    python benchmarks/gowalla.py --root ../shared/datasets --model attentive_filter \
        --rank 256 --ideal-weight 0.1 --degree-power 0.25 --no-node-bias --epochs 2 --refit

Prints the validation curve and one JSON line per training seed with ``{"dataset",
"model", "seed", "recall@20", "ndcg@20", "valid_recall@20", "train_minutes", "refit",
"epochs", "gfcf_valid_recall@20", "rank", "ideal_weight", "degree_power", "fit_seconds",
"eval_seconds", "threads"}`` (``gfcf_valid_recall@20``: the chosen closed form's, before
training; ``fit_seconds``: the refit's fit and training). With several ``--seeds`` the
last line holds the means over seeds, ``"seeds"`` and the standard deviations
``"recall@20_std"``, ``"ndcg@20_std"``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from graphrec import datasets
from graphrec.data.graph import RecGraph
from graphrec.data.splits import holdout_valid, per_user_split
from graphrec.evaluate import Evaluator
from graphrec.models import AttentiveFilter
from graphrec.training import TrainConfig, Trainer


def load(name: str, root: str | None):
    if name == "gowalla":
        return holdout_valid(datasets.gowalla(root=root).split, ratio=0.1, seed=0)
    if name == "synthetic":  # graphrec's embedded data, as benchmarks/compare.py splits it
        return per_user_split(datasets.synthetic().interactions, ratios=(0.8, 0.1, 0.1), seed=0)
    if name == "lastfm":  # published train/test files: validation carved from train
        return holdout_valid(datasets.lastfm(root=root).split, ratio=0.1, seed=0)
    loader = {"movielens": datasets.movielens_small,
              "filmtrust": datasets.filmtrust}[name]
    return per_user_split(loader(root=root).interactions, ratios=(0.8, 0.1, 0.1), seed=0)


def build(graph: RecGraph, args: argparse.Namespace, rank: int, ideal_weight: float,
          degree_power: float | None, fitted: AttentiveFilter | None = None) -> AttentiveFilter:
    """The closed form at one point; ``fitted`` (same graph, rank at least ``rank``) lends
    its SVD, which does not depend on the point."""
    rank = min(rank, graph.num_users - 1, graph.num_items - 1)
    model = AttentiveFilter(graph, rank=rank, ideal_weight=ideal_weight,
                            feature_rank=min(args.feature_rank, rank),
                            first_hop_attention=args.first_hop,
                            node_bias=not args.no_node_bias, degree_power=degree_power,
                            score_scale=args.scale)
    return model.fit() if fitted is None else model.fit_from(fitted)


def power(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def train(model: AttentiveFilter, valid, epochs: int, args: argparse.Namespace,
          patience: int = 0):
    """Learn the attention for ``epochs`` epochs (BPR, batch edges hidden), validating
    after each when ``valid`` is given and keeping the best epoch's weights; stop after
    ``patience`` validations without improvement (0: never). None when ``epochs`` is 0."""
    if epochs == 0:  # the filter's closed form was best
        return None
    cfg = TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr, l2=args.l2,
                      patience=patience, progress=False, ks=(20,), monitor="recall@20",
                      mask_batch_edges=True, validate_start=False, seed=args.seed,
                      hard_negatives=args.hard_negatives)
    return Trainer(model, valid, cfg).fit()


def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    """The filter's own flags (the start grid and the attention's options), shared with
    ``benchmarks/gowalla.py --model attentive_filter``."""
    p.add_argument("--rank", type=int, nargs="+", default=[256],
                   help="ranks k of the ideal filter (one SVD at the largest serves all)")
    p.add_argument("--ideal-weight", type=float, nargs="+", default=[0.3],
                   help="α values; with several (or several degree powers) the closed form's "
                        "point is chosen on validation")
    p.add_argument("--degree-power", type=power, nargs="+", default=[None],
                   help="ChebyCF degree normalisation γ values ('none': GF-CF's)")
    p.add_argument("--feature-rank", type=int, default=64)
    p.add_argument("--first-hop", action="store_true", help="attention on the first hop too")
    p.add_argument("--no-node-bias", action="store_true", help="learn the sharpness β only")
    p.add_argument("--scale", action="store_true", help="learn a training-score scale")


def choose_start(split, args: argparse.Namespace) -> tuple[AttentiveFilter, float, tuple, float]:
    """Fit the closed form at every point of the ``--rank`` × ``--ideal-weight`` ×
    ``--degree-power`` grid from one SVD, print each point's validation Recall@20 and
    return the best: ``(model, valid_recall, (rank, ideal_weight, degree_power),
    fit_seconds)``, ``fit_seconds`` being the SVD's (at the largest rank) plus the chosen
    point's own fit."""
    graph = RecGraph(split.train)
    t = time.perf_counter()
    fitted = build(graph, args, max(args.rank), args.ideal_weight[0], args.degree_power[0])
    svd_seconds = time.perf_counter() - t
    evaluator = Evaluator(exclude=[split.train], ks=(20,), metrics=("recall", "ndcg"))
    start, point, model, fit_seconds = -1.0, None, None, 0.0
    for rank in args.rank:
        for alpha in args.ideal_weight:
            for gamma in args.degree_power:
                t = time.perf_counter()
                candidate = build(graph, args, rank, alpha, gamma, fitted)
                seconds = svd_seconds + time.perf_counter() - t
                recall = evaluator.evaluate(candidate, split.valid)["recall@20"]
                print(json.dumps({"rank": rank, "ideal_weight": alpha, "degree_power": gamma,
                                  "valid_recall@20": round(recall, 5)}), flush=True)
                if recall > start:
                    start, point, model, fit_seconds = recall, (rank, alpha, gamma), candidate, seconds
    return model, start, point, fit_seconds


def select_epochs(start_model: AttentiveFilter, split, start: float, point: tuple, seed: int,
                  args: argparse.Namespace, patience: int = 0):
    """Train from the chosen closed form with one seed for ``args.epochs`` epochs,
    validating after each, and print the curve. Returns ``(curve, best, model, result)``:
    ``best`` the curve's row with the highest validation Recall@20 (epoch 0: the closed
    form itself), ``model`` the trained filter with its best trained epoch's weights and
    ``result`` the Trainer's (None when no epoch was trained)."""
    args.seed = seed
    model = build(start_model.graph, args, *point, start_model)
    torch.manual_seed(seed)
    curve = [{"seed": seed, "epoch": 0, "valid_recall@20": start, "train_minutes": 0.0}]
    print(json.dumps(curve[-1]), flush=True)
    result = train(model, split.valid, args.epochs, args, patience)
    if result is not None:
        for row in result.history:
            curve.append({"seed": seed, "epoch": row["epoch"], "valid_recall@20": row["valid_recall@20"],
                          "train_minutes": row["train_seconds"] / 60})
            print(json.dumps(curve[-1]), flush=True)
    return curve, max(curve, key=lambda r: r["valid_recall@20"]), model, result


def refit(split, point: tuple, epochs: int, seed: int, args: argparse.Namespace):
    """Fit the closed form at ``point`` on training + validation and train it ``epochs``
    epochs. Returns ``(model, full, result, seconds)``: ``full`` the interactions it was
    trained on (to exclude when testing), ``result`` the Trainer's (None for 0 epochs),
    ``seconds`` those of the fit and the training together."""
    args.seed = seed
    full = split.train.concat(split.valid)
    torch.manual_seed(seed)
    t = time.perf_counter()
    final = build(RecGraph(full), args, *point)
    result = train(final, None, epochs, args)
    return final, full, result, time.perf_counter() - t


def seed_summary(lines: list[dict]) -> dict:
    """Several seeds' lines as one: the means, ``"seeds"`` and the standard deviations
    ``"recall@20_std"``, ``"ndcg@20_std"``."""
    summary = dict(lines[0], seeds=len(lines))
    for key in ("recall@20", "ndcg@20", "valid_recall@20", "train_minutes", "epochs"):
        values = [line[key] for line in lines]
        if None in values:
            continue
        summary[key] = round(statistics.mean(values), 5)
        if key in ("recall@20", "ndcg@20"):
            summary[f"{key}_std"] = round(statistics.stdev(values), 5)
    del summary["seed"]
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=None, help="datasets directory (default: GRAPHREC_DATA)")
    p.add_argument("--dataset", default="gowalla", choices=["gowalla", "lastfm", "movielens", "filmtrust", "synthetic"])
    p.add_argument("--epochs", type=int, default=4, help="epochs trained on validation")
    p.add_argument("--batch-size", type=int, default=8192)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--l2", type=float, default=1e-4)
    add_filter_arguments(p)
    p.add_argument("--hard-negatives", type=int, default=1, metavar="K",
                   help="each negative the highest-scored of K uniform draws")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="training seeds (initialisation, batches, negatives); the closed "
                        "form's point is chosen once")
    p.add_argument("--refit-epochs", type=int, default=None, metavar="N",
                   help="skip training on validation: refit N epochs, a count an earlier run "
                        "chose on validation")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    split = load(args.dataset, args.root)

    args.seed = args.seeds[0]
    model, start, point, _ = choose_start(split, args)
    lines = [one_seed(model, split, start, point, seed, args) for seed in args.seeds]
    if len(lines) > 1:
        print(json.dumps(seed_summary(lines)))


def one_seed(start_model: AttentiveFilter, split, start: float, point: tuple, seed: int,
             args: argparse.Namespace) -> dict:
    """Train from the chosen closed form with one seed, choose the epoch on validation,
    refit on the whole training part, test once; prints the curve and a JSON line."""
    if args.refit_epochs is None:
        _, best, _, _ = select_epochs(start_model, split, start, point, seed, args)
    else:  # the epoch count was chosen on validation by an earlier run
        best = {"epoch": args.refit_epochs, "valid_recall@20": None}  # not measured here
    final, full, result, refit_s = refit(split, point, best["epoch"], seed, args)
    test = Evaluator(exclude=[full], ks=(20,), metrics=("recall", "ndcg")).evaluate(final, split.test)
    line = {"dataset": args.dataset, "model": "attentive_filter", "seed": seed,
            "recall@20": round(test["recall@20"], 5), "ndcg@20": round(test["ndcg@20"], 5),
            "valid_recall@20": None if best["valid_recall@20"] is None else round(best["valid_recall@20"], 5),
            "train_minutes": round(0.0 if result is None else result.train_seconds / 60, 2),
            "refit": True, "epochs": best["epoch"],
            "gfcf_valid_recall@20": round(start, 5), "rank": point[0], "ideal_weight": point[1],
            "degree_power": point[2], "fit_seconds": round(refit_s, 1),
            "eval_seconds": round(test["eval_seconds"], 1), "threads": args.threads}
    print(json.dumps(line), flush=True)
    return line


if __name__ == "__main__":
    main()
