"""Data-parallel scaling: one LightGCN epoch on 1 and on N processes, same data.

For each size, a synthetic log from :func:`graphrec.datasets.synthetic` (about 30
interactions per user, half as many items as users; no ratings, timestamps or social
ties) is split per user (80/10/10), and LightGCN (dim 64, 3 layers, BPR, one negative;
``--batch-size`` edges per step, default 8192, at ``--lr``, default 1e-3) trains one
epoch through :class:`graphrec.training.Trainer`, then Recall@20 is measured on
validation (full ranking over all items, sharded over the ranks): of every validation
user, or with ``--eval-users N`` of a seeded sample of N of them (ranking all of
millions of users against all items costs hours on a few cores). Each case runs in a
fresh process (``--nproc`` ranks spawned by :func:`graphrec.distributed.spawn`), so
its memory is its own.

One JSON line per case, then a table::

    {"case": "lightgcn-1M-nproc2", "interactions": 1000000, "nproc": 2,
     "epoch_seconds": ..., "peak_rss_mb": ..., "recall@20": ...}

``epoch_seconds`` is rank 0's training time of the epoch (validation not included);
``peak_rss_mb`` is the sum over the ranks of each process's peak resident memory, what
the machine had to hold; ``interactions`` counts the training edges. With N ranks on a
machine of C cores each rank gets C / N threads, so on 2 cores the comparison is of the
same cores used by 1 or by 2 processes: every rank propagates the whole graph, and data
parallelism divides only the per-row work of a step (see docs/distributed.md).

``--fan-out 10 10 10`` trains with sampled mini-batches (LightGCN's ``fan_out``: each step
propagates its batch's sampled receptive field) instead of the whole graph; the case
name then says ``sampled``.

Usage::

    python benchmarks/scale.py                         # 200k and 1M interactions, 1 and 2 ranks
    python benchmarks/scale.py --interactions 5000000 --nproc 1 2 4
    python benchmarks/scale.py --interactions 5000000 --nproc 1 --fan-out 10 10 10
    python benchmarks/scale.py --interactions 5000000 20000000 50000000 --nproc 1 \
        --fan-out 10 10 10 --batch-size 524288 --lr 1e-2 --eval-users 20000 --max-minutes 4

The last is the large-log case. With 3 hops of 10 neighbours a batch's receptive field
covers most of the graph, so a step's propagation costs about as much at any batch size
(only the per-row work grows with the batch) and the number of steps sets the epoch's
cost: a batch of 2^19 edges makes 8 steps of 5M interactions and 76 of 50M, and the
higher learning rate makes up for the fewer steps. On 2 cores a saturated step over a
50M-interaction graph still takes tens of seconds, so ``--max-minutes`` ends the epoch
after that much training time: ``epoch_seconds`` is then the time of the steps taken,
and a line on standard error says how many of the epoch's steps that was (with each
case's data, split, fit and validation times).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

KEYS = ("case", "interactions", "nproc", "epoch_seconds", "peak_rss_mb", "recall@20")
AVG_DEGREE = 30.0


def run_case(interactions: int, nproc: int, args: argparse.Namespace) -> dict:
    """One case in a fresh process; its JSON line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker",
           "--interactions", str(interactions), "--nproc", str(nproc), "--seed", str(args.seed),
           "--batch-size", str(args.batch_size), "--lr", str(args.lr)]
    if args.max_minutes:
        cmd += ["--max-minutes", str(args.max_minutes)]
    if args.fan_out:
        cmd += ["--fan-out", *map(str, args.fan_out)]
    if args.eval_users:
        cmd += ["--eval-users", str(args.eval_users)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    for line in out.stderr.splitlines():
        if line.startswith("#"):
            print(line, file=sys.stderr, flush=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker(interactions: int, nproc: int, args: argparse.Namespace) -> None:
    """Build the data, train one epoch on ``nproc`` ranks, print the case's JSON line."""
    from graphrec.distributed import spawn

    params = (interactions, nproc, args.seed, args.fan_out, args.batch_size, args.lr, args.eval_users,
              args.max_minutes)
    if nproc == 1:
        _rank(*params)
    else:
        spawn(_rank, nproc, params)


def synthetic_data(interactions: int, seed: int, marks: list[float] | None = None):
    """A synthetic log of about ``interactions`` rows split 80/10/10 per user: the training
    graph, the validation part and the number of training edges (test is dropped).
    ``marks``, when given, gets the time at which the log was made (before the split)."""
    from graphrec import datasets
    from graphrec.data.graph import RecGraph
    from graphrec.data.splits import per_user_split

    users = max(10, int(interactions / AVG_DEGREE))
    # Ratings, timestamps and social ties are not used here: not making them saves their
    # memory (the interactions of a seed are the same either way).
    ds = datasets.synthetic(num_users=users, num_items=max(10, users // 2), avg_degree=AVG_DEGREE,
                            social=False, ratings=False, timestamps=False, seed=seed)
    if marks is not None:
        marks.append(time.perf_counter())
    split = per_user_split(ds.interactions, ratios=(0.8, 0.1, 0.1), seed=seed)
    # Only the graph and the validation part are needed from here on.
    del ds
    return RecGraph(split.train), split.valid, len(split.train)


def _rank(interactions: int, nproc: int, seed: int, fan_out: list[int] | None, batch_size: int,
          lr: float, eval_users: int | None, max_minutes: float | None) -> None:
    import torch

    from graphrec.distributed import current_ranks
    from graphrec.models import LightGCN
    from graphrec.training import TrainConfig, Trainer

    t0 = time.perf_counter()
    marks: list[float] = []
    graph, valid, num_train = synthetic_data(interactions, seed, marks)
    t_data = marks[0]
    torch.manual_seed(seed)
    model = LightGCN(graph, dim=64, num_layers=3, fan_out=fan_out)
    cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=lr, patience=0, progress=False,
                      device="cpu", seed=seed, ks=(20,), eval_users=eval_users,
                      max_minutes=max_minutes)
    t1 = time.perf_counter()
    trainer = Trainer(model, valid, cfg)
    # Counts the steps taken, which a time limit can make fewer than the epoch's.
    steps = [0]
    train_batch = trainer.train_batch

    def counted(*a, **kw):
        steps[0] += 1
        return train_batch(*a, **kw)

    trainer.train_batch = counted
    fit = trainer.fit()
    wall = time.perf_counter() - t1
    # ru_maxrss is in KiB on Linux.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ranks = current_ranks()
    peaks = [peak] if ranks is None else ranks.gather(peak)
    if ranks is None or ranks.is_main:
        row = fit.history[-1]
        print(json.dumps({
            "case": f"lightgcn{'-sampled' if fan_out else ''}-{_size(interactions)}-nproc{nproc}",
            "interactions": num_train,
            "nproc": nproc,
            "epoch_seconds": round(row["epoch_seconds"], 3),
            "peak_rss_mb": round(sum(peaks), 1),
            "recall@20": round(row["valid_recall@20"], 5),
        }), flush=True)
        total = -(-num_train // batch_size)
        print(f"# {interactions:,}: data {t_data - t0:.1f}s, split and graph {t1 - t_data:.1f}s, "
              f"fit {wall:.1f}s, {steps[0]} of {total} steps (validation on "
              f"{row['valid_users']:.0f} users {row['valid_eval_seconds']:.1f}s)", file=sys.stderr)


def _size(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table, with the speed-up over 1 rank of the same size."""
    base = {r["interactions"]: r["epoch_seconds"] for r in rows if r["nproc"] == 1}
    lines = ["| case | interactions | nproc | epoch s | speed-up | efficiency | peak RSS MB | Recall@20 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        one = base.get(r["interactions"])
        speed = one / r["epoch_seconds"] if one else float("nan")
        lines.append(f"| {r['case']} | {r['interactions']:,} | {r['nproc']} | {r['epoch_seconds']:.2f} "
                     f"| {speed:.2f} | {speed / r['nproc']:.0%} | {r['peak_rss_mb']:.0f} "
                     f"| {r['recall@20']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fan-out", type=int, nargs=3, default=None, metavar="K",
                        help="sampled mini-batches: neighbours per node at each of the 3 layers")
    parser.add_argument("--batch-size", type=int, default=8192, help="edges per step (global)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-users", type=int, default=None,
                        help="Recall@20 on a seeded sample of this many validation users (default: all)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="end the epoch after this much training time (the steps taken are "
                             "reported on standard error)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.interactions[0], args.nproc[0], args)
        return
    rows = []
    for n in args.interactions:
        for nproc in args.nproc:
            row = run_case(n, nproc, args)
            assert tuple(row) == KEYS, row
            print(json.dumps(row), flush=True)
            rows.append(row)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
