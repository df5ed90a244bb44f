"""Training time per epoch and peak memory of GraphRec (and biased MF for reference).

Workloads:
* ``filmtrust``: FilmTrust's ratings and trust links (1,508 users, 2,071 items, 35,494
  ratings, 1,632 links between raters), 80% of the ratings as training set.
* ``ciao``: a synthetic dataset shaped like Ciao (7,317 users, 104,975 items, 283,319
  ratings 1–5, 111,781 directed trust links), drawn with numpy: log-normal user
  activity, Zipf-like item popularity, ratings from user and item offsets plus noise,
  trust links with log-normal out-degrees and a preference for users of the same taste
  group. Only the shape matters here; all its ratings are training ratings.

Each (workload, model) runs in a fresh subprocess with ``--threads`` CPU threads:
* time: training epochs of the :class:`~graphrec.training.RatingTrainer` loop (one
  step per batch of ``--batch-size`` ratings, each batch's edges masked from the
  aggregations), median over ``--epochs`` epochs after a warm-up of 20 steps; also the
  time of inference (one aggregation pass plus predicting every training rating).
* memory: peak RSS increase during the timed epochs, measured after the warm-up with
  freed heap returned to the OS (``malloc_trim``) and the kernel's peak-RSS counter reset
  (``/proc/self/clear_refs``): ``VmHWM`` minus the RSS before the epoch, so everything
  training allocates counts (activations, saved tensors, gradients, optimiser state).

A GraphRec training step computes only the batch's users and items (and the users'
friends) from their own neighbourhoods, so a step's cost follows the edges its batch
touches; an epoch costs ``steps × step time``. Inference aggregates the whole graph in
one pass. Large temporaries are allocated and freed on every step, and glibc returns them
to the OS each time; running with ``GLIBC_TUNABLES`` set to
``glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296``
(inherited by the worker processes) keeps them in the heap and shows what that churn
costs.

Usage::

    python benchmarks/social.py                  # filmtrust + ciao, batches of 512, 4096 and 16384
    python benchmarks/social.py --quick          # small smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from peak_memory import peak_increase

CIAO = dict(users=7_317, items=104_975, ratings=283_319, links=111_781)
MODELS = ["graphrec", "mf"]


# ----------------------------------------------------------------------------- data
def ciao_like(users: int, items: int, ratings: int, links: int, seed: int = 0):
    """Interactions with ratings and social edges shaped like Ciao, drawn with numpy."""
    from graphrec.data import Interactions, SocialEdges

    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 20, users)
    activity = rng.lognormal(0.0, 1.2, users)
    popularity = (rng.permutation(items) + 10.0) ** -0.9
    keys = np.empty(0, dtype=np.int64)
    while keys.size < ratings:  # draw until there are enough distinct (user, item) pairs
        n = int((ratings - keys.size) * 1.2) + 16
        u = rng.choice(users, size=n, p=activity / activity.sum())
        i = rng.choice(items, size=n, p=popularity / popularity.sum())
        keys = np.unique(np.concatenate([keys, u * items + i]))
    keys = rng.permutation(keys)[:ratings]
    user, item = keys // items, keys % items
    score = 3.8 + rng.normal(0, 0.5, users)[user] + rng.normal(0, 0.6, items)[item]
    rating = np.clip(np.rint(score + rng.normal(0, 0.8, ratings)), 1, 5)
    inter = Interactions.from_arrays(user, item, num_users=users, num_items=items, rating=rating)

    src = rng.choice(users, size=int(links * 1.3), p=activity / activity.sum())
    same = rng.random(src.size) < 0.7
    dst = rng.integers(0, users, src.size)
    by_group = np.argsort(groups, kind="stable")
    ptr = np.concatenate([[0], np.cumsum(np.bincount(groups, minlength=20))])
    g = groups[src[same]]
    dst[same] = by_group[ptr[g] + (rng.random(g.size) * (ptr[g + 1] - ptr[g])).astype(np.int64)]
    social = SocialEdges.from_arrays(src, dst, num_users=users)
    keep = rng.permutation(len(social))[:links]
    social = SocialEdges.from_arrays(social.src[keep], social.dst[keep], num_users=users)
    return inter, social


def workload(name: str, root: Path | None):
    """``(train interactions, social edges)`` of a workload."""
    if name == "filmtrust":
        from graphrec.data.splits import random_split
        from graphrec.datasets import filmtrust

        data = filmtrust(root=root)
        return random_split(data.interactions, (0.8, 0.1, 0.1), seed=0).train, data.social
    if name.startswith("quick"):
        scale = float(name[len("quick"):])
        return ciao_like(**{k: max(int(v * scale), 50) for k, v in CIAO.items()})
    return ciao_like(**CIAO)


# ----------------------------------------------------------------------------- workers
def worker(args: argparse.Namespace) -> None:
    import torch

    from graphrec.data import RecGraph
    from graphrec.models.mf_rating import MFRating
    from graphrec.models.social_graphrec import GraphRec
    from graphrec.training import RatingTrainConfig, RatingTrainer

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    train, social = workload(args.workload, args.root)
    data_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph = RecGraph(train, social)
    torch.manual_seed(0)
    if args.model == "graphrec":
        model = GraphRec(graph, train, dim=args.dim)
    else:
        model = MFRating(graph, train, dim=args.dim)
    model.torch_graph()
    build_s = time.perf_counter() - t0
    steps = math.ceil(graph.num_edges / args.batch_size)

    # Warm-up with 20 larger steps: lazy index caches, optimiser state, allocator pools.
    RatingTrainer(model, None, RatingTrainConfig(
        epochs=1, batch_size=max(1, math.ceil(graph.num_edges / 20)), lr=1e-3, progress=False,
        device="cpu")).fit()
    with peak_increase() as mem:
        fit = RatingTrainer(model, None, RatingTrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, progress=False,
            device="cpu")).fit()
    peak_mb = mem["MB"]
    times = [row["epoch_seconds"] for row in fit.history]
    users, items = (torch.from_numpy(a) for a in graph.edges())
    t0 = time.perf_counter()
    model.predict(users, items)
    infer_s = time.perf_counter() - t0
    epoch_s = statistics.median(times)
    print(json.dumps({
        "workload": args.workload, "model": args.model, "users": graph.num_users,
        "items": graph.num_items, "ratings": graph.num_edges,
        "social_links": graph.num_social_edges, "batch_size": args.batch_size, "steps": steps,
        "epoch_s": epoch_s, "step_ms": 1000 * epoch_s / steps,
        "ratings_per_s": graph.num_edges / epoch_s, "epoch_all_s": times,
        "epoch_peak_MB": peak_mb, "infer_s": infer_s, "data_s": data_s, "build_s": build_s,
        "threads": args.threads}), flush=True)


# ----------------------------------------------------------------------------- driver
def _run_child(argv: list[str], timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), *argv]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if res.returncode != 0:
        tail = (res.stderr or "").strip().splitlines()[-3:]
        return {"error": f"exit {res.returncode}: {' | '.join(tail)}"}
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    return lines[-1] if lines else {"error": "no result"}


def print_table(rows: list[dict]) -> None:
    print("\n| workload | users | items | ratings | social links | model | batch | s/epoch "
          "| ms/step | ratings/s | peak RSS + (MB) | inference (s) |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['workload']} | | | | | {r['model']} | | error: {r['error']} | | | | |")
            continue
        print(f"| {r['workload']} | {r['users']:,} | {r['items']:,} | {r['ratings']:,} | "
              f"{r['social_links']:,} | {r['model']} | {r['batch_size']:,} | {r['epoch_s']:.2f} | "
              f"{r['step_ms']:.0f} | {r['ratings_per_s']:,.0f} | {r['epoch_peak_MB']:,.0f} | "
              f"{r['infer_s']:.2f} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=None,
                   help="folder holding filmtrust/ (default: $GRAPHREC_DATA, else "
                        "../shared/datasets)")
    p.add_argument("--workloads", nargs="+", default=["filmtrust", "ciao"])
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 4096, 16384],
                   help="ratings per step; each size is a separate run (default 512 4096 16384)")
    p.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dim", type=int, default=64, help="embedding size")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (median reported)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timeout", type=float, default=1800.0, help="per child process, seconds")
    p.add_argument("--quick", action="store_true", help="small smoke run (5%% of Ciao's size)")
    p.add_argument("--json", type=Path, default=None, help="also append JSON lines here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--workload", help=argparse.SUPPRESS)
    p.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.root is None and not os.environ.get("GRAPHREC_DATA"):
        shared = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
        args.root = shared if shared.is_dir() else None

    if args.worker:
        return worker(args)
    if args.quick:
        args.workloads, args.epochs = ["quick0.05"], 1
    rows = []
    for name in args.workloads:
        for model in args.models:
            for batch_size in args.batch_sizes:
                argv_child = ["--worker", "--workload", name, "--model", model, "--threads",
                              str(args.threads), "--batch-size", str(batch_size), "--dim",
                              str(args.dim), "--epochs", str(args.epochs)]
                if args.root is not None:
                    argv_child += ["--root", str(args.root)]
                row = {"workload": name, "model": model, "batch_size": batch_size,
                       **_run_child(argv_child, args.timeout)}
                line = json.dumps(row)
                print(line, flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(line + "\n")
                rows.append(row)
    print_table(rows)
    summary = {f"{r['workload']}/{r['model']}/{r['batch_size']}": {
        k: r.get(k) for k in ("epoch_s", "step_ms", "epoch_peak_MB", "infer_s", "ratings",
                              "social_links", "error") if k in r} for r in rows}
    print(json.dumps({"benchmark": "social", "dim": args.dim, "threads": args.threads,
                      "malloc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
                      "results": summary}))


if __name__ == "__main__":
    main()
