r"""Graph filters over generalised degree normalisations, chosen on validation, refit and
tested once.

By default the filter is GF-CF's two parts inside ChebyCF's degree normalisation (the
:class:`~graphrec.models.polynomial_filter.ChebyshevFilter` of order 1 with the linear
response), over the graph :math:`\tilde R \propto D_U^{-a} R D_I^{-b}` scaled to unit
spectral norm (:func:`graphrec.linalg.filter_interactions`):

.. math::  s_u = \Big[\big(\tilde R^\top \tilde R + \alpha\, V V^\top\big)
           D_I^{-\beta} r_u\Big] \odot d_I^{\beta}

``--order K --flatness φ`` use ChebyCF's plateau polynomial of order K instead of
:math:`\tilde R^\top \tilde R` (about K times the ranking cost).

GF-CF and ChebyCF fix :math:`a = b = \tfrac12`; SGFCF (Xia et al., KDD 2024) lowers both
on dense logs. This script chooses :math:`(a, b)`, the ideal weight :math:`\alpha` and
the signal's degree power :math:`\beta` on validation.

Protocol. ``holdout_valid(split, ratio=0.1, seed=0)`` moves 10% of each user's training
rows to validation; every point is fitted on the rest and ranked by
``Evaluator(exclude=[train], ks=(20,))`` against validation. The best validation
Recall@20 is refit on the whole training file and ranked once on the test file.

Shared work. Each :math:`(a, b)` is one SVD (rank ``--rank``); each :math:`\beta` one pass
whose batches compute the polynomial's terms and :math:`V^\top x` once for all
of that pass's :math:`\alpha` (``Evaluator.evaluate_points``), in the order
:meth:`ChebyshevFilter.score_users` sums them. ``--check`` also scores the chosen point's
own model on validation, which must give the same metrics.

Usage::

    python benchmarks/filter_norms.py --root ../shared/datasets --threads 2
    python benchmarks/filter_norms.py --datasets lastfm --norms 0.5:0.5,0.4:0.4

Prints a markdown table of the validation points, then one JSON line per dataset with
``dataset``, ``model``, ``recall@20``, ``ndcg@20``, ``fit_seconds``, ``eval_seconds``,
``selected_on`` (and ``valid_recall@20``, the test lists' ``avg_popularity@20`` and
``coverage@20``, ``params``, ``search_seconds``, ``threads``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from graphrec import datasets
from graphrec.data.graph import RecGraph
from graphrec.data.splits import Split, holdout_valid, per_user_split
from graphrec.evaluate import Evaluator
from graphrec.models.graph_filter import IdealLowPassFilter
from graphrec.models.polynomial_filter import ChebyshevFilter


def load(name: str, root: str | None) -> Split:
    """The dataset's split with a validation part carved from training (as filters.py)."""
    ds = getattr(datasets, name)(root=root)
    if ds.split is not None:
        return holdout_valid(ds.split, ratio=0.1, seed=0)
    return per_user_split(ds.interactions, ratios=(0.8, 0.1, 0.1), seed=0)


@dataclass(frozen=True)
class Shape:
    """The polynomial part: order K and the plateau's flatness (1: linear response)."""

    order: int = 1
    flatness: float = 1.0


def build(graph: RecGraph, shape: Shape, a: float, b: float, beta: float, alpha: float = 0.0,
          rank: int = 512) -> ChebyshevFilter:
    """The filter of this script at one point (``alpha = 0``: no ideal part, no SVD)."""
    return ChebyshevFilter(graph, order=shape.order, response=shape.flatness, ideal_weight=alpha,
                           rank=rank, degree_power=beta, user_norm=a, item_norm=b)


def pass_scores(model: ChebyshevFilter, v: Tensor,
                alphas: list[float]) -> Callable[[Tensor], Iterator[Tensor]]:
    """``users -> `` the scores of each ideal weight in turn, from one computation of the
    polynomial part and of :math:`V^\top x` per batch (summed as ``model.score_users``)."""
    post = model.post_scale()[:, None]
    c = model.coefficients.tolist()

    def score_points(users: Tensor) -> Iterator[Tensor]:
        x0 = model.signals(users)
        lin: Tensor | None = None
        for ck, term in zip(c, model.chebyshev_terms(x0)):
            lin = term * ck if lin is None else lin.add_(term, alpha=ck)
        assert lin is not None
        left = torch.from_numpy(x0 @ v.numpy())
        for alpha in alphas:
            acc = lin.clone().addmm_(v, left.T, alpha=alpha)
            yield acc.mul_(post).T.contiguous()

    return score_points


def search_norms(graph: RecGraph, valid: Any, evaluator: Evaluator, shape: Shape, a: float,
                 b: float, betas: list[float], alphas: list[float],
                 rank: int) -> list[dict[str, Any]]:
    """Validation metrics of every (β, α) at the normalisation (a, b): one SVD, one pass
    per β."""
    t = time.perf_counter()
    ideal = IdealLowPassFilter(graph, rank=rank, user_norm=a, item_norm=b).fit()
    svd_s = time.perf_counter() - t
    v = ideal.item_vectors
    rows = []
    for beta in betas:
        t = time.perf_counter()
        results = evaluator.evaluate_points(pass_scores(build(graph, shape, a, b, beta), v, alphas),
                                            len(alphas), graph.num_users,
                                            graph.num_items, valid,
                                            workspace_bytes=4 * (6 * graph.num_items + graph.num_users))
        pass_s = time.perf_counter() - t
        for alpha, r in zip(alphas, results):
            rows.append({"user_norm": a, "item_norm": b, "degree_power": beta, "ideal_weight": alpha,
                         "valid_recall@20": r["recall@20"], "valid_ndcg@20": r["ndcg@20"],
                         "svd_seconds": svd_s, "pass_seconds": pass_s})
            print(f"  a={a} b={b} beta={beta} alpha={alpha}: {r['recall@20']:.5f} "
                  f"{r['ndcg@20']:.5f}", file=sys.stderr, flush=True)
    return rows


def given_point(text: str) -> dict[str, float]:
    a, b, beta, alpha = (float(x) for x in text.split(":"))
    return {"user_norm": a, "item_norm": b, "degree_power": beta, "ideal_weight": alpha}


def refit_and_test(name: str, split: Split, shape: Shape, point: dict[str, float],
                   args: argparse.Namespace, valid_recall: float | None,
                   search_s: float) -> dict[str, Any]:
    """The point refit on training + validation and ranked once on the test file."""
    full = split.train.concat(split.valid)
    graph = RecGraph(full)
    rank = min(args.rank, graph.num_users - 1, graph.num_items - 1)
    t = time.perf_counter()
    model = build(graph, shape, point["user_norm"], point["item_norm"], point["degree_power"],
                  point["ideal_weight"], rank).fit()
    fit_s = time.perf_counter() - t
    # The lists' mean training degree and catalogue coverage say how popular they are.
    test = Evaluator(exclude=[full], ks=(20,),
                     metrics=("recall", "ndcg", "avg_popularity", "coverage")).evaluate(model, split.test)
    return {"dataset": name, "model": "degree_filter_norms" if shape == Shape() else "chebyshev_norms",
            "recall@20": test["recall@20"], "ndcg@20": test["ndcg@20"], "fit_seconds": fit_s,
            "eval_seconds": test["eval_seconds"], "selected_on": "valid",
            "valid_recall@20": valid_recall, "avg_popularity@20": test["avg_popularity@20"],
            "coverage@20": test["coverage@20"],
            "params": {**point, "rank": rank, "order": shape.order, "flatness": shape.flatness},
            "search_seconds": search_s, "threads": args.threads}


def pairs(text: str) -> list[tuple[float, float]]:
    out = []
    for part in text.split(","):
        a, b = part.split(":")
        out.append((float(a), float(b)))
    return out


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--root", default=None, help="datasets directory (default: GRAPHREC_DATA)")
    p.add_argument("--datasets", nargs="+", default=["gowalla"])
    p.add_argument("--norms", type=pairs,
                   default=pairs("0.5:0.5,0.4:0.4,0.4:0.5,0.3:0.5,0.3:0.4,0.35:0.45"),
                   help="(user_norm:item_norm) pairs, comma-separated")
    p.add_argument("--degree-powers", type=floats, default=floats("0.25,0.35"))
    p.add_argument("--ideal-weights", type=floats, default=floats("0.1,0.2,0.3"))
    p.add_argument("--rank", type=int, default=512)
    p.add_argument("--order", type=int, default=1, help="K of the polynomial part")
    p.add_argument("--flatness", type=float, default=1.0,
                   help="φ of ChebyCF's plateau (1: the linear response)")
    p.add_argument("--point", default=None, metavar="A:B:BETA:ALPHA",
                   help="skip the search: refit and test this point (one an earlier "
                        "--valid-only run chose)")
    p.add_argument("--check", action="store_true",
                   help="also score the chosen point's own model on validation")
    p.add_argument("--valid-only", action="store_true", help="stop after the validation table")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    shape = Shape(args.order, args.flatness)

    lines = []
    for name in args.datasets:
        split = load(name, args.root)
        graph = RecGraph(split.train)
        rank = min(args.rank, graph.num_users - 1, graph.num_items - 1)
        ev = Evaluator(exclude=[split.train], ks=(20,), metrics=("recall", "ndcg"))
        if args.point is not None:
            lines.append(refit_and_test(name, split, shape, given_point(args.point), args, None, 0.0))
            continue
        t = time.perf_counter()
        rows = [row for a, b in args.norms
                for row in search_norms(graph, split.valid, ev, shape, a, b, args.degree_powers,
                                        args.ideal_weights, rank)]
        search_s = time.perf_counter() - t
        best = max(rows, key=lambda r: (r["valid_recall@20"], r["valid_ndcg@20"]))
        print(f"\n### {name}: validation (rank {rank}, order {shape.order}, "
              f"flatness {shape.flatness})\n")
        print("| a | b | β | α | valid Recall@20 | valid NDCG@20 |")
        print("|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            mark = "**" if r is best else ""
            print(f"| {r['user_norm']} | {r['item_norm']} | {r['degree_power']} | {r['ideal_weight']} "
                  f"| {mark}{r['valid_recall@20']:.5f}{mark} | {r['valid_ndcg@20']:.5f} |")
        point = {k: best[k] for k in ("user_norm", "item_norm", "degree_power", "ideal_weight")}
        if args.check:
            direct = ev.evaluate(build(graph, shape, point["user_norm"], point["item_norm"],
                                       point["degree_power"], point["ideal_weight"], rank).fit(),
                                 split.valid)
            print(f"\ncheck: the chosen point's own model on validation: {direct['recall@20']:.6f} "
                  f"{direct['ndcg@20']:.6f} (pass: {best['valid_recall@20']:.6f} "
                  f"{best['valid_ndcg@20']:.6f})")
        if not args.valid_only:
            lines.append(refit_and_test(name, split, shape, point, args, best["valid_recall@20"],
                                        search_s))
    print()
    for line in lines:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
