"""Sampled mini-batches: graphrec's ``fan_out`` against PyG's ``LinkNeighborLoader``, same run.

One epoch of LightGCN (dim 64, 3 layers, BPR, one uniform negative per positive, Adam at
``--lr``, default 1e-3, batches of ``--batch-size`` training edges, default 8192, L2 weight
``--l2`` on the batch's ego embeddings, default 1e-4), each step propagating only a sampled
neighbourhood of its batch (``--fan-out``, default 10 10 10), trained two ways:

* ``graphrec``: :class:`graphrec.models.LightGCN` with ``fan_out`` through
  :class:`graphrec.training.Trainer`, as a user runs it (each hop keeps at most ``k``
  neighbours per node, scaled by degree / k, over the whole graph's normalised adjacency;
  negatives drawn uniformly among the items the user has not interacted with).
* ``pyg``: ``torch_geometric.loader.LinkNeighborLoader`` over the training edges (users
  then items as one homogeneous graph, both directions) with ``NegativeSampling("triplet",
  1)`` restricted to items by its ``dst_weight`` (uniform over all items, the user's own
  not excluded), feeding ``torch_geometric.nn.models.LightGCN``'s embedding and
  ``LGConv`` layers on each sampled subgraph (which LGConv normalises by the subgraph's
  degrees) and its ``recommendation_loss``; ``torch.optim.Adam``, same ``--lr``.

Both start from the same initial embeddings (graphrec's normal init, std 0.1, from the
same seed), so what differs is the sampling and the step. ``epoch_seconds`` is the
training time of the epoch, sampling included, validation not. Recall@20 is then
measured on the validation part with :class:`graphrec.evaluate.Evaluator` (full ranking
over all items, training items masked; all validation users, or with ``--eval-users N``
the same seeded sample of N): graphrec's by the Trainer, PyG's on the embeddings of one
full-graph propagation of its trained model on the normalised CSR adjacency, as
``benchmarks/gowalla.py`` evaluates PyG's LightGCN. Each case runs in a fresh process,
so ``peak_rss_mb`` (that process's peak resident memory, data and evaluation included)
is its own.

Data: the synthetic log of ``benchmarks/scale.py`` (``--interactions``, default 200k: about
30 interactions per user, half as many items as users, split 80/10/10 per user), and with
``--root`` also Gowalla (the published training file, 10% of each user's rows carved out
as validation, as ``benchmarks/gowalla.py`` does). ``interactions`` counts training edges.

The default size keeps a run to a few minutes on 2 busy cores: with 3 hops of 10 a
batch's receptive field is most of the graph, so an epoch costs about steps × graph size
(graphrec's took about a minute at 200k beside other jobs; 1M has 5 times the steps over
a 5 times larger graph).

Prints a table, then one JSON line per case::

    {"case": "pyg-200k", "interactions": 157674, "epoch_seconds": ..., "peak_rss_mb": ...,
     "recall@20": ...}

PyG's loader samples neighbours with ``pyg-lib`` or ``torch-sparse`` (which imports only
with ``torch-scatter`` beside it; both are source distributions on PyPI for current
torch); without either the script stops with a one-line message saying why.

Usage::

    python benchmarks/link_loader.py --threads 2
    python benchmarks/link_loader.py --threads 2 --interactions 1000000 --cases pyg
    python benchmarks/link_loader.py --threads 2 --root ../shared/datasets
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

KEYS = ("case", "interactions", "epoch_seconds", "peak_rss_mb", "recall@20")
CASES = ("graphrec", "pyg")


def sampler_backend() -> tuple[str | None, list[str]]:
    """The package PyG's neighbour sampling would use here (or ``None``), and why the
    packages tried before it did not import."""
    errors = []
    for name in ("pyg_lib", "torch_sparse"):
        try:
            __import__(name)
        except Exception as e:  # ImportError, or a build that does not load (OSError)
            errors.append(f"{name}: {e}")
            continue
        return name, errors
    return None, errors


def load(data: str, args: argparse.Namespace):
    """The training graph, the validation part and the number of training edges."""
    if data == "gowalla":
        from graphrec import datasets
        from graphrec.data.graph import RecGraph
        from graphrec.data.splits import holdout_valid

        split = holdout_valid(datasets.gowalla(root=args.root).split, ratio=0.1, seed=args.seed)
        return RecGraph(split.train), split.valid, len(split.train)
    from scale import synthetic_data

    return synthetic_data(args.interactions, args.seed)


def train_graphrec(graph, valid, args: argparse.Namespace) -> tuple[float, float]:
    """One sampled epoch through the Trainer: (epoch seconds, validation Recall@20)."""
    import torch

    from graphrec.models import LightGCN
    from graphrec.training import TrainConfig, Trainer

    torch.manual_seed(args.seed)
    model = LightGCN(graph, dim=64, num_layers=3, fan_out=args.fan_out)
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=args.lr, l2=args.l2, patience=0,
                      progress=False, device="cpu", seed=args.seed, ks=(20,),
                      eval_users=args.eval_users)
    row = Trainer(model, valid, cfg).fit().history[-1]
    return row["epoch_seconds"], row["valid_recall@20"]


def train_pyg(graph, valid, args: argparse.Namespace) -> tuple[float, float]:
    """One epoch of PyG's LightGCN on LinkNeighborLoader's subgraphs: (epoch seconds,
    validation Recall@20)."""
    import numpy as np
    import torch
    from torch_geometric.data import Data
    from torch_geometric.loader import LinkNeighborLoader
    from torch_geometric.nn.models import LightGCN as PygLightGCN
    from torch_geometric.sampler import NegativeSampling
    from train_eval import pyg_model

    from graphrec.evaluate import Evaluator
    from graphrec.models import LightGCN

    nu, n = graph.num_users, graph.num_nodes
    u, i = graph.edges()
    pos = torch.from_numpy(np.stack([u, i + nu])).long()
    data = Data(edge_index=torch.cat([pos, pos.flip(0)], dim=1), num_nodes=n)
    items_only = torch.zeros(n)
    items_only[nu:] = 1.0
    torch.manual_seed(args.seed)
    # The same initial embeddings as the graphrec case.
    init = LightGCN(graph, dim=64, num_layers=3)
    model = PygLightGCN(n, 64, 3)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.cat([init.user_emb.weight, init.item_emb.weight]))
    del init
    loader = LinkNeighborLoader(data, num_neighbors=list(args.fan_out), edge_label_index=pos,
                                batch_size=args.batch_size, shuffle=True,
                                neg_sampling=NegativeSampling("triplet", 1, dst_weight=items_only))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    model.train()
    start = time.perf_counter()
    for batch in loader:
        x = model.embedding(batch.n_id)
        out = x * model.alpha[0]
        for layer, conv in enumerate(model.convs):
            x = conv(x, batch.edge_index)
            out = out + x * model.alpha[layer + 1]
        src, dst, neg = batch.src_index, batch.dst_pos_index, batch.dst_neg_index
        pos_rank = (out[src] * out[dst]).sum(-1)
        neg_rank = (out[src] * out[neg]).sum(-1)
        node_id = batch.n_id[torch.cat([src, dst, neg])]
        loss = model.recommendation_loss(pos_rank, neg_rank, node_id=node_id, lambda_reg=args.l2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    # Full-graph propagation of the trained embeddings on the normalised CSR adjacency.
    full, adj = pyg_model(graph, 64, 3)
    full.load_state_dict(model.state_dict())
    with torch.no_grad():
        emb = full.get_embedding(adj)
    evaluator = Evaluator(exclude=[graph.ui], ks=(20,), user_sample=args.eval_users,
                          sample_seed=args.seed)
    return seconds, evaluator.evaluate_embeddings(emb[:nu], emb[nu:], valid)["recall@20"]


def worker(case: str, data: str, args: argparse.Namespace) -> None:
    """Build the data, train the case's epoch, print its JSON line."""
    import torch
    from scale import _size

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    graph, valid, num_train = load(data, args)
    t1 = time.perf_counter()
    train = train_graphrec if case == "graphrec" else train_pyg
    seconds, recall = train(graph, valid, args)
    wall = time.perf_counter() - t1
    # ru_maxrss is in KiB on Linux.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    name = "gowalla" if data == "gowalla" else _size(args.interactions)
    print(json.dumps({"case": f"{case}-{name}", "interactions": num_train,
                      "epoch_seconds": round(seconds, 3), "peak_rss_mb": round(peak, 1),
                      "recall@20": round(recall, 5)}), flush=True)
    print(f"# {case}-{name}: data {t1 - t0:.1f}s, epoch and validation {wall:.1f}s",
          file=sys.stderr)


def run_case(case: str, data: str, args: argparse.Namespace) -> dict:
    """One case in a fresh process; its JSON line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--data", data,
           "--interactions", str(args.interactions), "--seed", str(args.seed),
           "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--l2", str(args.l2),
           "--fan-out", *map(str, args.fan_out)]
    if args.root:
        cmd += ["--root", args.root]
    if args.eval_users:
        cmd += ["--eval-users", str(args.eval_users)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{case} on {data} failed:\n{out.stderr}")
    for line in out.stderr.splitlines():
        if line.startswith("#"):
            print(line, file=sys.stderr, flush=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table, with each case's ratios to graphrec on the same data."""
    base = {r["case"].split("-", 1)[1]: r for r in rows if r["case"].startswith("graphrec-")}
    lines = ["| case | interactions | epoch s | × graphrec | peak RSS MB | × graphrec | Recall@20 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ref = base.get(r["case"].split("-", 1)[1])
        time_ratio = r["epoch_seconds"] / ref["epoch_seconds"] if ref else float("nan")
        rss_ratio = r["peak_rss_mb"] / ref["peak_rss_mb"] if ref else float("nan")
        lines.append(f"| {r['case']} | {r['interactions']:,} | {r['epoch_seconds']:.1f} "
                     f"| {time_ratio:.2f} | {r['peak_rss_mb']:.0f} | {rss_ratio:.2f} "
                     f"| {r['recall@20']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=200_000,
                        help="size of the synthetic log (before the split)")
    parser.add_argument("--root", default=None,
                        help="datasets directory: also run on Gowalla")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--fan-out", type=int, nargs=3, default=[10, 10, 10], metavar="K",
                        help="neighbours per node at each of the 3 hops, from the batch outwards")
    parser.add_argument("--batch-size", type=int, default=8192, help="training edges per step")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-users", type=int, default=None,
                        help="Recall@20 on a seeded sample of this many validation users "
                             "(default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per case")
    parser.add_argument("--worker", choices=CASES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default="synthetic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args)
        return
    if "pyg" in args.cases:
        backend, errors = sampler_backend()
        if backend is None:
            sys.exit("link_loader.py: PyG's LinkNeighborLoader needs pyg-lib or torch-sparse, and "
                     f"neither imports here ({'; '.join(errors)}); install one, or run "
                     "--cases graphrec")
    rows = []
    for data in ["synthetic"] + (["gowalla"] if args.root else []):
        for case in args.cases:
            row = run_case(case, data, args)
            assert tuple(row) == KEYS, row
            rows.append(row)
    print(table(rows))
    print()
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
