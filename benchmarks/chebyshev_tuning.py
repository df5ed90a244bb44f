r"""ChebyCF (:class:`graphrec.models.polynomial_filter.ChebyshevFilter`) on Gowalla:
hyper-parameters chosen on a validation split carved from the training file, then the chosen
point refit on the whole training file and evaluated once on the test file.

Protocol. ``holdout_valid(ds.split, ratio=0.1, seed=0)`` moves 10% of each user's training
rows to validation; every grid point is fitted on ``RecGraph(sv.train)`` and ranked by
``Evaluator(exclude=[sv.train], ks=(20,), metrics=("recall", "ndcg"))`` against
``sv.valid``. The best validation Recall@20 (NDCG@20 breaks ties) is refit on
``RecGraph(ds.split.train)`` and evaluated on ``ds.split.test`` (excluding
``ds.split.train``): the test file is read once, for that point only.

Grid, staged and guided by the paper's Gowalla setting (K = 8, φ = 1.5, rank η = 512,
α = 0.2, β = 0.4; the authors keep K = 8 on every dataset and vary φ widely, 1.5 to 15):

* stage 1, at the paper's K = 8 and β = 0.4: plateau flatness φ ∈ {1, 1.5, 2, 3, 5} ×
  ideal weight α ∈ {0.1, 0.2, 0.3} × rank ∈ {256, 512} (30 points) × where the plateau
  is sampled (``--samplings``: the Chebyshev nodes by default; ``nodes,extrema`` adds
  ChebyCF's reference recipe, see ``chebyshev_coefficients``);
* stage 2, the degree power: β ∈ {0.2, 0.3, 0.5} × the 3 best (φ, sampling) of stage 1 ×
  α ∈ {0.1, 0.2, 0.3}, at stage 1's best rank (27 points);
* stage 3, the order: K ∈ {4, 6, 10, 12} at the best point so far (4 points).

Shared terms. A point costs about ``2K`` sparse products per user, ~1 ms per order per user
on one CPU thread, i.e. ~4 minutes per point on Gowalla's 29,858 users (plus the SVD: about
30 s for rank 256 and 75 s for 512 on a busy 2-core machine). But the Chebyshev
terms :math:`T_k(\tilde L) D_I^{-\beta} r_u` depend on β alone, not on φ, α, the rank or
any lower order, so each β is one pass: every batch of users gets its terms once
(:meth:`ChebyshevFilter.chebyshev_terms`) and the scores of all the pass's points are the
terms weighted by each point's coefficients, plus α times the ideal part of each rank
(the SVD is computed once per rank), times :math:`d_I^{\beta}` — what
:meth:`ChebyshevFilter.score_users` computes, summed in another order. The Evaluator ranks
them as "virtual users" ``u * C + c`` (C points per pass) with the training and
validation rows repeated C times, so each point's metrics are exactly the Evaluator's
means over the same validation users (``evaluate_scores(..., per_user=True)``, grouped by
point). ``--confirm`` also evaluates the chosen point directly,
``Evaluator(...).evaluate(ChebyshevFilter(...).fit(), sv.valid)``, as a check (about as long
as the test run).

``--cache FILE`` keeps each pass's rows (JSON) so that passes can run in separate
invocations; a pass whose points are all cached is not rerun.

Example::

    python benchmarks/chebyshev_tuning.py --root ../shared/datasets --cache runs/cheby_valid.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from graphrec.data import RecGraph
from graphrec.data.splits import holdout_valid
from graphrec.datasets import gowalla
from graphrec.evaluate import Evaluator, interaction_matrix
from graphrec.models.graph_filter import IdealLowPassFilter
from graphrec.models.polynomial_filter import ChebyshevFilter, chebyshev_coefficients, plateau

# As in the test configuration (pyproject.toml): torch's notes on its sparse CSR tensors.
warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", "Sparse invariant checks are implicitly disabled")

KEYS = ("order", "flatness", "sampling", "ideal_weight", "rank", "degree_power")


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def point_key(p: dict) -> str:
    return ",".join(f"{k}={p[k]}" if isinstance(p[k], str) else f"{k}={p[k]:g}" for k in KEYS)


def shared_pass(graph: RecGraph, train, valid, beta: float, polys: list[tuple[int, float, str]],
                ideals: list[tuple[float, int]], vectors: dict[int, torch.Tensor],
                memory_mb: float) -> tuple[list[dict], float]:
    """Validation metrics of every point (K, φ) × (α, rank) at degree power ``beta``, from
    one computation of the Chebyshev terms per batch of users (``polys`` holds
    ``(K, φ, sampling)``). Returns the rows and the pass's seconds."""
    start = time.perf_counter()
    kmax = max(k for k, _, _ in polys)
    gen = ChebyshevFilter(graph, order=kmax, response=1.0, ideal_weight=0.0, degree_power=beta)
    gen.fit()
    coef = torch.zeros(len(polys), kmax + 1, dtype=torch.float64)
    for j, (k, phi, sampling) in enumerate(polys):
        coef[j, : k + 1] = torch.from_numpy(chebyshev_coefficients(plateau(phi), k, sampling))
    coef = coef.float()
    points = [(pi, ai) for pi in range(len(polys)) for ai in range(len(ideals))]
    c_all = len(points)
    ranks = sorted({r for _, r in ideals})
    num_users, num_items = graph.num_users, graph.num_items
    post = gen.post_scale()

    def score(vusers: torch.Tensor) -> torch.Tensor:
        v = vusers.cpu().numpy()
        u, c = v // c_all, v % c_all
        uniq, inv = np.unique(u, return_inverse=True)
        x0 = gen.signals(uniq)
        terms = torch.stack(list(gen.chebyshev_terms(x0)))              # [K+1, I, B]
        poly = torch.tensordot(coef, terms, dims=1)                     # [P, I, B]
        del terms
        poly.mul_(post[None, :, None])
        poly = poly.permute(0, 2, 1).contiguous()                       # [P, B, I]
        ideal = {r: (torch.from_numpy(x0 @ vectors[r].numpy()) @ vectors[r].T).mul_(post)
                 for r in ranks}                                        # [B, I] each
        out = torch.empty(len(v), num_items)
        inv_t, c_t = torch.from_numpy(inv), torch.from_numpy(c)
        for j, (pi, ai) in enumerate(points):
            sel = torch.nonzero(c_t == j).reshape(-1)
            if len(sel):
                alpha, rank = ideals[ai]
                rows = inv_t[sel]
                out[sel] = torch.add(poly[pi][rows], ideal[rank][rows], alpha=alpha)
        return out

    # Virtual user u * C + c: user u scored by point c, with u's rows repeated C times.
    rep = np.repeat(np.arange(num_users), c_all)
    exclude = interaction_matrix(train, (num_users, num_items))[rep]
    target = interaction_matrix(valid, (num_users, num_items))[rep]
    ev = Evaluator(exclude=[exclude], ks=(20,), metrics=("recall", "ndcg"), memory_budget_mb=memory_mb)
    # Per virtual row besides its scores: the terms, the weighted polynomials (twice, for
    # the transposition) and the ideal parts of the users' C rows, plus one gathered row.
    per_user = 4 * num_items * (kmax + 1 + 2 * len(polys) + len(ranks)) + 4 * (num_users + num_items)
    workspace = per_user // c_all + 4 * num_items
    _, frame = ev.evaluate_scores(score, num_users * c_all, num_items, target, per_user=True,
                                  workspace_bytes=workspace)
    frame["point"] = frame["user"] % c_all
    means = frame.groupby("point")[["recall@20", "ndcg@20"]].mean()
    counts = frame.groupby("point").size()
    seconds = time.perf_counter() - start
    rows = []
    for j, (pi, ai) in enumerate(points):
        (k, phi, sampling), (alpha, rank) = polys[pi], ideals[ai]
        rows.append(dict(order=k, flatness=phi, sampling=sampling, ideal_weight=alpha, rank=rank,
                         degree_power=beta,
                         **{"recall@20": float(means.loc[j, "recall@20"]),
                            "ndcg@20": float(means.loc[j, "ndcg@20"])},
                         users=int(counts.loc[j]), pass_points=c_all, pass_seconds=seconds))
    return rows, seconds


def best_of(rows: list[dict]) -> dict:
    return max(rows, key=lambda r: (r["recall@20"], r["ndcg@20"]))


def print_table(rows: list[dict], chosen: dict | None) -> None:
    print(f"{'K':>3} {'phi':>5} {'sampling':>8} {'alpha':>5} {'rank':>5} {'beta':>5} "
          f"{'recall@20':>10} {'ndcg@20':>9} {'s/point':>8}")
    for r in sorted(rows, key=lambda r: tuple(r[k] for k in ("degree_power", "order", "flatness",
                                                              "sampling", "ideal_weight", "rank"))):
        mark = "  <- chosen" if chosen is not None and point_key(r) == point_key(chosen) else ""
        print(f"{r['order']:>3} {r['flatness']:>5g} {r['sampling']:>8} {r['ideal_weight']:>5g} {r['rank']:>5} "
              f"{r['degree_power']:>5g} {r['recall@20']:>10.4f} {r['ndcg@20']:>9.4f} "
              f"{r['pass_seconds'] / r['pass_points']:>8.1f}{mark}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--root", default=None, help="datasets directory (default: GRAPHREC_DATA)")
    p.add_argument("--order", type=int, default=8, help="K of stages 1 and 2")
    p.add_argument("--paper-degree-power", type=float, default=0.4, help="β of stage 1")
    p.add_argument("--flatness", type=floats, default=floats("1,1.5,2,3,5"), help="φ of stage 1")
    p.add_argument("--ideal-weights", type=floats, default=floats("0.1,0.2,0.3"))
    p.add_argument("--ranks", type=ints, default=ints("256,512"), help="ranks of stage 1")
    p.add_argument("--degree-powers", type=floats, default=floats("0.2,0.3,0.5"), help="β of stage 2")
    p.add_argument("--top-flatness", type=int, default=3, help="φ values stage 2 keeps")
    p.add_argument("--orders", type=ints, default=ints("4,6,10,12"), help="K of stage 3 (empty: none)")
    p.add_argument("--samplings", type=lambda t: [x for x in t.split(",") if x], default=["nodes"],
                   help="where the plateau is sampled, of nodes,extrema (stage 1 tries each)")
    p.add_argument("--svd-iters", type=int, default=6)
    p.add_argument("--cache", type=Path, default=None, help="JSON file of validation rows")
    p.add_argument("--memory-mb", type=float, default=512, help="Evaluator budget of a pass")
    p.add_argument("--valid-only", action="store_true", help="stop after the validation table")
    p.add_argument("--confirm", action="store_true",
                   help="also evaluate the chosen point directly on validation")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    ds = gowalla(root=args.root)
    sv = holdout_valid(ds.split, ratio=0.1, seed=0)
    graph = RecGraph(sv.train)
    cache: dict[str, dict] = {}
    if args.cache is not None and args.cache.exists():
        rows = list(json.loads(args.cache.read_text()).values())
        for r in rows:  # rows cached before the sampling was a setting used the nodes
            r.setdefault("sampling", "nodes")
        cache = {point_key(r): r for r in rows}

    def save() -> None:
        if args.cache is not None:
            args.cache.parent.mkdir(parents=True, exist_ok=True)
            args.cache.write_text(json.dumps(cache, indent=1))

    vectors: dict[int, torch.Tensor] = {}

    def svd(ranks: list[int]) -> None:
        for r in ranks:
            if r not in vectors:
                t = time.perf_counter()
                ideal = IdealLowPassFilter(graph, rank=r, svd_iters=args.svd_iters).fit()
                vectors[r] = ideal.item_vectors
                print(f"SVD rank {r}: {time.perf_counter() - t:.1f}s", flush=True)

    def run(beta: float, polys: list[tuple[int, float, str]], ideals: list[tuple[float, int]]) -> list[dict]:
        def wanted(k: int, f: float, s: str) -> list[dict]:
            return [dict(order=k, flatness=f, sampling=s, ideal_weight=a, rank=r, degree_power=beta)
                    for a, r in ideals]

        # Only the polynomials with a point missing from the cache are computed.
        missing = [q for q in polys if any(point_key(w) not in cache for w in wanted(*q))]
        if missing:
            svd(sorted({r for _, r in ideals}))
            rows, seconds = shared_pass(graph, sv.train, sv.valid, beta, missing, ideals, vectors,
                                        args.memory_mb)
            print(f"pass beta={beta:g}: {len(rows)} points in {seconds:.0f}s; best "
                  f"{point_key(best_of(rows))} recall@20 {best_of(rows)['recall@20']:.4f}", flush=True)
            for r in rows:
                cache[point_key(r)] = r
            save()
        return [cache[point_key(w)] for q in polys for w in wanted(*q)]

    # Stage 1: the paper's β; flatness × ideal weight × rank in one pass.
    rows = run(args.paper_degree_power,
               [(args.order, f, s) for f in args.flatness for s in args.samplings],
               [(a, r) for a in args.ideal_weights for r in args.ranks])
    best = best_of(rows)
    # Stage 2: other degree powers, for the best (flatness, sampling) pairs at the best rank.
    shapes = [(f, s) for f in args.flatness for s in args.samplings]
    by_shape = {q: max(r["recall@20"] for r in rows if (r["flatness"], r["sampling"]) == q)
                for q in shapes}
    top = sorted(by_shape, key=by_shape.get, reverse=True)[: args.top_flatness]
    for beta in args.degree_powers:
        rows += run(beta, [(args.order, f, s) for f, s in sorted(top)],
                    [(a, best["rank"]) for a in args.ideal_weights])
    # Stage 3: the order, at the best point so far.
    best = best_of(rows)
    if args.orders:
        rows += run(best["degree_power"], [(k, best["flatness"], best["sampling"]) for k in args.orders],
                    [(best["ideal_weight"], best["rank"])])
    chosen = best_of(rows)
    print(f"\nvalidation ({len(rows)} points; Recall/NDCG@20 on sv.valid, fit on sv.train; "
          f"s/point = pass seconds / points in the pass):")
    print_table(rows, chosen)
    params = {k: chosen[k] for k in KEYS}
    params["response"] = params.pop("flatness")
    params["sampling"] = str(params["sampling"])
    print(f"\nchosen on validation: {params}", flush=True)
    if args.valid_only:
        return

    if args.confirm:
        t = time.perf_counter()
        model = ChebyshevFilter(graph, svd_iters=args.svd_iters, **params).fit()
        fit = time.perf_counter() - t
        res = Evaluator(exclude=[sv.train], ks=(20,), metrics=("recall", "ndcg")).evaluate(model, sv.valid)
        print(f"direct validation run of the chosen point: recall@20 {res['recall@20']:.4f} "
              f"ndcg@20 {res['ndcg@20']:.4f} (table: {chosen['recall@20']:.4f} / "
              f"{chosen['ndcg@20']:.4f}); fit {fit:.1f}s, eval {res['eval_seconds']:.1f}s", flush=True)
        del model

    full = RecGraph(ds.split.train)
    t = time.perf_counter()
    model = ChebyshevFilter(full, svd_iters=args.svd_iters, **params).fit()
    fit = time.perf_counter() - t
    res = Evaluator(exclude=[ds.split.train], ks=(20,), metrics=("recall", "ndcg")).evaluate(
        model, ds.split.test)
    print(f"test (refit on the whole training file): recall@20 {res['recall@20']:.4f} "
          f"ndcg@20 {res['ndcg@20']:.4f}; fit {fit:.1f}s, eval {res['eval_seconds']:.1f}s "
          f"({int(res['users'])} users)", flush=True)
    print(json.dumps({"dataset": "gowalla", "model": f"ChebyshevFilter({', '.join(f'{k}={v}' for k, v in params.items())})",
                      "recall@20": res["recall@20"], "ndcg@20": res["ndcg@20"],
                      "fit_seconds": fit, "eval_seconds": res["eval_seconds"],
                      "selected_on": "validation: holdout_valid(ds.split, ratio=0.1, seed=0)"}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
