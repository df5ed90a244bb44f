r"""Closed-form recommenders side by side: graph filters, item neighbourhoods, EASE, iALS,
and a blend of the best filter with iALS.

For every dataset, each model's settings are chosen on a validation carve of the
training part (never on test), the chosen point is refitted on the whole training part
and tested once; ``selected_on`` says ``valid`` for those and ``none`` for models run with
their papers' fixed settings (GF-CF's k = 256, α = 0.3 and its two parts; ChebyCF's
Gowalla setting K = 8, φ = 1.5, rank 512, α = 0.2, β = 0.4, its plateau sampled as its
reference code does). The peer
``implicit`` ALS (when installed) runs with graphrec iALS's chosen settings, and LightGCN,
graphrec's best trained model, trains for ``--lightgcn-minutes`` with its documented
recipe (epoch chosen on validation, refit on the whole training part for that many epochs)
so the table says what each model costs to reach what accuracy. ``norm_filter``,
``norm_chebyshev`` and ``norm_blend`` are the first-order filter, the Chebyshev filter and
the blend over the graph's degree exponents that ``benchmarks/filter_norms.py`` chose on
Gowalla's validation carve.

Datasets: Gowalla and Last.fm with their published test files (validation: a random 10%
of each user's training rows), MovieLens small and FilmTrust (every rating an
interaction) split 80/10/10 per user. ``--scaling`` also fits the sparse filters on
synthetic logs at 1×, 4× and 10× a base size, to show their cost growing linearly
(scoring timed on the same number of sampled users at every scale).

Usage::

    python benchmarks/filters.py --root ../shared/datasets
    python benchmarks/filters.py --root ../shared/datasets --datasets gowalla --models gfcf_paper
    python benchmarks/filters.py --datasets synthetic --scaling

Prints a markdown table, then one JSON line per (dataset, model) with ``dataset``,
``model``, ``recall@20``, ``ndcg@20``, ``fit_seconds``, ``eval_seconds``, ``selected_on``
(and ``valid_recall@20``, ``params``, ``threads``).
"""

from __future__ import annotations

import os

# implicit's ALS crawls when OpenBLAS threads run inside its own thread pool (it warns
# so itself); every other BLAS call here goes through torch.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from graphrec import datasets
from graphrec.data.graph import RecGraph
from graphrec.data.splits import Split, holdout_valid, per_user_split
from graphrec.evaluate import Evaluator
from graphrec.models.scoring_model import ScoringModel
from graphrec.selection import grid_search

Builder = Callable[[RecGraph, dict[str, Any]], ScoringModel]


@dataclass
class Entry:
    """A model of the comparison: a builder, its grid (empty: fixed settings)."""

    build: Builder
    grid: dict[str, list[Any]] = field(default_factory=dict)


def entries() -> dict[str, Entry]:
    from graphrec.models.blend import Blend, shared_members
    from graphrec.models.ease import EASE
    from graphrec.models.graph_filter import GFCF, IdealLowPassFilter, LinearFilter
    from graphrec.models.ials import IALS
    from graphrec.models.itemknn import ItemKNN
    from graphrec.models.polynomial_filter import ChebyshevFilter

    def rank_for(graph: RecGraph, rank: int) -> int:
        return min(rank, graph.num_users - 1, graph.num_items - 1)

    def degree_filter(graph: RecGraph, p: dict[str, Any]) -> ScoringModel:
        return ChebyshevFilter(graph, order=1, response=1.0,
                               **{**p, "rank": rank_for(graph, p["rank"])})

    # Fitted once per graph, shared by the blend's grid points.
    blend_members = shared_members(lambda g: [
        degree_filter(g, {k: v[0] for k, v in DEGREE_FILTER_GRID.items()}),
        IALS(g, **BLEND_IALS)])
    norm_blend_members = shared_members(lambda g: [
        degree_filter(g, {k: v[0] for k, v in NORM_FILTER_GRID.items()}),
        IALS(g, **BLEND_IALS)])

    return {
        "gfcf_paper": Entry(lambda g, p: GFCF(g, rank=rank_for(g, 256), ideal_weight=0.3)),
        "chebycf_paper": Entry(lambda g, p: ChebyshevFilter(g, order=8, response=1.5, ideal_weight=0.2,
                                                            rank=rank_for(g, 512), degree_power=0.4,
                                                            sampling="extrema")),
        "linear_filter": Entry(lambda g, p: LinearFilter(g)),
        "ideal_filter": Entry(lambda g, p: IdealLowPassFilter(g, rank=rank_for(g, 256))),
        "gfcf": Entry(lambda g, p: GFCF(g, rank=rank_for(g, p["rank"]), ideal_weight=p["ideal_weight"]),
                      {"rank": [256], "ideal_weight": [0.1, 0.3, 0.6]}),
        "chebyshev": Entry(lambda g, p: ChebyshevFilter(g, **{**p, "rank": rank_for(g, p["rank"])}),
                           CHEBYSHEV_GRID),
        "itemknn": Entry(lambda g, p: ItemKNN(g, **p), {"neighbours": [50, 200]}),
        "ease": Entry(lambda g, p: EASE(g, **p), {"l2": [100.0, 500.0, 2000.0]}),
        "ials": Entry(lambda g, p: IALS(g, **p), IALS_GRID),
        # GF-CF's two parts in ChebyCF's degree normalisation: the Chebyshev filter of
        # order 1 with the linear response is R̃ᵀR̃ itself.
        "degree_filter": Entry(lambda g, p: degree_filter(g, p), DEGREE_FILTER_GRID),
        "blend": Entry(lambda g, p: Blend(g, blend_members(g), p["weights"]), BLEND_GRID),
        # The same filter over the generalised normalisation D_U^-a R D_I^-b that
        # benchmarks/filter_norms.py chose, and its blend with iALS.
        "norm_filter": Entry(lambda g, p: degree_filter(g, p), NORM_FILTER_GRID),
        "norm_chebyshev": Entry(lambda g, p: ChebyshevFilter(g, **{**p, "rank": rank_for(g, p["rank"])}),
                                NORM_CHEBYSHEV_GRID),
        "norm_blend": Entry(lambda g, p: Blend(g, norm_blend_members(g), p["weights"]), BLEND_GRID),
    }


# The point benchmarks/chebyshev_tuning.py chose on Gowalla's validation carve (61 points).
CHEBYSHEV_GRID: dict[str, list[Any]] = {"order": [6], "response": [1.5], "ideal_weight": [0.1],
                                        "rank": [512], "degree_power": [0.3]}
# 256 factors as the peer's reference run; l2 and alpha as chosen on Gowalla's validation
# carve by benchmarks/ials_vs_implicit.py --grid, alpha re-checked here.
IALS_GRID: dict[str, list[Any]] = {"factors": [256], "l2": [3e-3], "alpha": [30.0, 100.0]}


# The first-order filter's point chosen on Gowalla's validation carve
# (benchmarks/attentive_filter.py --epochs 0, benchmarks/README.md).
DEGREE_FILTER_GRID: dict[str, list[Any]] = {"rank": [512], "ideal_weight": [0.1],
                                            "degree_power": [0.25]}
# The first-order filter's point with its degree exponents, chosen on Gowalla's validation
# carve by benchmarks/filter_norms.py (benchmarks/README.md).
NORM_FILTER_GRID: dict[str, list[Any]] = {"rank": [512], "ideal_weight": [0.3], "degree_power": [0.2],
                                          "user_norm": [0.35], "item_norm": [0.4]}
# The Chebyshev filter at those exponents, its order and flatness as chosen above at GF-CF's
# normalisation, α chosen on the same carve (benchmarks/filter_norms.py --order 6).
NORM_CHEBYSHEV_GRID: dict[str, list[Any]] = {"order": [6], "response": [1.5], "ideal_weight": [0.1],
                                             "rank": [512], "degree_power": [0.2],
                                             "user_norm": [0.35], "item_norm": [0.4]}
# The blend of the first-order filter (at GF-CF's normalisation) and iALS (the point its grid above chose on Gowalla): the
# weight of iALS's per-user standardised scores against the filter's, chosen on validation.
BLEND_IALS: dict[str, Any] = {"factors": 256, "l2": 3e-3, "alpha": 100.0}
# Each member alone is a point too, so validation never picks a blend below its best member.
BLEND_GRID: dict[str, list[Any]] = {"weights": [[1, 0], [1, 0.25], [1, 0.5], [1, 1], [1, 1.5], [1, 2],
                                                [1, 3], [1, 5], [0, 1]]}


def load(name: str, root: str | None, scale: int = 1) -> Split:
    """The dataset's split, with a validation part carved from training."""
    if name == "synthetic":
        ds = datasets.synthetic(num_users=20_000 * scale, num_items=10_000 * scale, seed=0)
        return per_user_split(ds.interactions, ratios=(0.8, 0.1, 0.1), seed=0)
    ds = getattr(datasets, name)(root=root)
    if ds.split is not None:
        return holdout_valid(ds.split, ratio=0.1, seed=0)
    return per_user_split(ds.interactions, ratios=(0.8, 0.1, 0.1), seed=0)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_model(dataset: str, name: str, entry: Entry, split: Split) -> dict[str, Any]:
    result = grid_search(entry.build, entry.grid, split, monitor="recall@20", ks=(20,),
                         refit=True, log=lambda line: print(f"  {name} {line}", file=sys.stderr))
    return {"dataset": dataset, "model": name, "recall@20": result.test["recall@20"],
            "ndcg@20": result.test["ndcg@20"], "fit_seconds": result.fit_seconds,
            "eval_seconds": result.eval_seconds,
            "selected_on": "valid" if entry.grid else "none",
            "valid_recall@20": result.best_valid["recall@20"], "params": result.best,
            "search_seconds": result.search_seconds}


def run_implicit(dataset: str, split: Split, params: dict[str, Any], threads: int) -> dict[str, Any]:
    """The ``implicit`` library's ALS with graphrec iALS's chosen settings, trained on the
    whole training part and evaluated by graphrec's Evaluator."""
    from implicit.cpu.als import AlternatingLeastSquares

    full = split.train.concat(split.valid)
    graph = RecGraph(full)
    ui = graph.ui.astype(np.float32)
    ui.data[:] = 1.0 + float(params.get("alpha", 1.0))
    model = AlternatingLeastSquares(factors=params.get("factors", 64),
                                    regularization=float(params.get("l2", 0.01)),
                                    iterations=params.get("iterations", 15), alpha=1.0,
                                    num_threads=threads, random_state=0,
                                    calculate_training_loss=False)
    t = time.perf_counter()
    model.fit(ui.tocsr(), show_progress=False)
    fit_s = time.perf_counter() - t
    ev = Evaluator(exclude=[full], ks=(20,), metrics=("recall", "ndcg"))
    test = ev.evaluate_embeddings(torch.as_tensor(np.asarray(model.user_factors)),
                                  torch.as_tensor(np.asarray(model.item_factors)), split.test)
    return {"dataset": dataset, "model": "implicit_als", "recall@20": test["recall@20"],
            "ndcg@20": test["ndcg@20"], "fit_seconds": fit_s, "eval_seconds": test["eval_seconds"],
            "selected_on": "valid (graphrec ials's point)", "params": params}


def run_lightgcn(dataset: str, split: Split, minutes: float) -> dict[str, Any]:
    """LightGCN with the README's recipe, epoch chosen on validation within ``minutes``,
    then refit on the whole training part for that many epochs."""
    from graphrec.models import LightGCN
    from graphrec.training import TrainConfig, Trainer

    cfg = TrainConfig(epochs=10_000, batch_size=2048, lr=1e-3, l2=1e-4, patience=5,
                      max_minutes=minutes, progress=False, ks=(20,), hard_negatives=1)
    torch.manual_seed(0)
    model = LightGCN(RecGraph(split.train), dim=64, num_layers=3)
    t = time.perf_counter()
    fit = Trainer(model, split.valid, cfg).fit()
    search_s = time.perf_counter() - t
    full = split.train.concat(split.valid)
    torch.manual_seed(0)
    model = LightGCN(RecGraph(full), dim=64, num_layers=3)
    t = time.perf_counter()
    Trainer(model, None, TrainConfig(epochs=max(fit.best_epoch, 1), batch_size=2048, lr=1e-3,
                                     l2=1e-4, patience=0, progress=False)).fit()
    fit_s = time.perf_counter() - t
    test = Evaluator(exclude=[full], ks=(20,), metrics=("recall", "ndcg")).evaluate(model, split.test)
    return {"dataset": dataset, "model": "lightgcn", "recall@20": test["recall@20"],
            "ndcg@20": test["ndcg@20"], "fit_seconds": fit_s, "eval_seconds": test["eval_seconds"],
            "selected_on": "valid", "valid_recall@20": fit.best_metrics.get("recall@20"),
            "params": {"epochs": fit.best_epoch, "minutes": minutes},
            "search_seconds": search_s}


SCALING_USERS = 2000


def scaling(models: list[str], threads: int, scales: list[int]) -> list[dict[str, Any]]:
    """Fit and scoring cost of the sparse filters at several multiples of a synthetic log.

    Users and items grow with the scale, so ranking *every* user against every item grows
    quadratically whatever the model; the scoring cost is measured on the same number of
    test users (``SCALING_USERS``, a seeded sample) at every scale instead, so that
    ``eval_seconds`` shows the per-user cost of the filter.
    """
    rows = []
    table = entries()
    for scale in scales:
        split = load("synthetic", None, scale)
        graph = RecGraph(split.train)
        users = np.unique(split.test.user)
        users = np.random.default_rng(0).choice(users, min(SCALING_USERS, len(users)), replace=False)
        sample = split.test.subset(np.flatnonzero(np.isin(split.test.user, users)))
        for name in models:
            model = table[name].build(graph, {})
            t = time.perf_counter()
            model.fit()
            fit_s = time.perf_counter() - t
            test = Evaluator(exclude=[split.train], ks=(20,), metrics=("recall", "ndcg")).evaluate(
                model, sample)
            rows.append({"case": f"synthetic ×{scale}", "model": name,
                         "interactions": int(graph.num_edges), "fit_seconds": fit_s,
                         "eval_seconds": test["eval_seconds"], "eval_users": len(users),
                         "peak_rss_mb": peak_rss_mb(), "recall@20": test["recall@20"]})
            print(f"  {rows[-1]}", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=None, help="folder of the real datasets")
    p.add_argument("--datasets", nargs="+",
                   default=["gowalla", "lastfm", "movielens_small", "filmtrust"])
    p.add_argument("--models", nargs="+", default=None,
                   help="models to run (default: all, plus implicit_als and lightgcn)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lightgcn-minutes", type=float, default=5.0,
                   help="LightGCN's training budget for choosing its epoch (0: skip it)")
    p.add_argument("--scaling", action="store_true", help="also time the sparse filters at --scales")
    p.add_argument("--scales", type=int, nargs="+", default=[1, 4, 10],
                   help="multiples of the synthetic base log for --scaling")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    table = entries()
    names = args.models or [*table, "implicit_als", "lightgcn"]
    rows: list[dict[str, Any]] = []
    for dataset in args.datasets:
        split = load(dataset, args.root)
        ials_point: dict[str, Any] = {}
        for name in names:
            start_rss = peak_rss_mb()
            if name == "implicit_als":
                if importlib.util.find_spec("implicit") is None:
                    print("  implicit is not installed: skipping its ALS", file=sys.stderr)
                    continue
                row = run_implicit(dataset, split, ials_point, args.threads)
            elif name == "lightgcn":
                if args.lightgcn_minutes <= 0:
                    continue
                row = run_lightgcn(dataset, split, args.lightgcn_minutes)
            else:
                try:
                    row = run_model(dataset, name, table[name], split)
                except ValueError as exc:  # e.g. EASE beyond its memory budget
                    print(f"  {dataset} {name}: refused: {exc}", file=sys.stderr)
                    continue
                if name == "ials":
                    ials_point = dict(row["params"])
            row.update(threads=args.threads, peak_rss_mb=max(peak_rss_mb(), start_rss))
            rows.append(row)
            print(f"{dataset} {name}: {row['recall@20']:.4f} / {row['ndcg@20']:.4f} "
                  f"(fit {row['fit_seconds']:.1f} s, eval {row['eval_seconds']:.1f} s)",
                  file=sys.stderr)
    scale_rows = scaling([m for m in ("gfcf_paper", "linear_filter") if m in names],
                         args.threads, args.scales) if args.scaling else []

    print("| dataset | model | Recall@20 | NDCG@20 | valid Recall@20 | fit s | eval s | selected on | settings |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        valid = r.get("valid_recall@20")
        print(f"| {r['dataset']} | {r['model']} | {r['recall@20']:.4f} | {r['ndcg@20']:.4f} | "
              f"{'' if valid is None else f'{valid:.4f}'} | {r['fit_seconds']:.1f} | "
              f"{r['eval_seconds']:.1f} | {r['selected_on']} | {r.get('params', {})} |")
    if scale_rows:
        print(f"\n| case | model | interactions | fit s | eval s ({SCALING_USERS} users) | peak RSS MB | Recall@20 |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for r in scale_rows:
            print(f"| {r['case']} | {r['model']} | {r['interactions']:,} | {r['fit_seconds']:.1f} | "
                  f"{r['eval_seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['recall@20']:.4f} |")
    for r in rows + scale_rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
