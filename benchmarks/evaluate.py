r"""Full-ranking evaluation speed on Gowalla: ``Evaluator`` against a naive batched loop.

All 29,858 Gowalla test users are ranked against all 40,981 items from fixed float32
embeddings (training items masked, top 20). The embeddings are quick factors of the
training graph, so the top of each list is not noise: the ``--rank`` leading right
singular vectors ``V`` of the normalised interaction matrix
:math:`\tilde R = D_U^{-1/2} R D_I^{-1/2}` (``graphrec.linalg.truncated_svd``) are the
item vectors and :math:`\tilde R V` the user vectors. ``--embeddings ials`` uses trained
factors instead (graphrec's iALS, about a minute), ``--embeddings random`` seeded
Gaussian vectors plus a shared popularity direction (norms nearly equal: the case where
the norm-ordered stages skip nothing).

Cases, timed in the same process and interleaved, ``--repeats`` times each (median):

* ``naive``: a plain batched loop (``torch.mm``, masking by index, ``torch.topk``, metrics
  from a dense target block), in batches of the size ``Evaluator`` chooses;
* ``evaluator``: ``Evaluator(exclude=[train], ks=(20,)).evaluate_embeddings(...)``, the
  default path: items ranked in stages by decreasing norm, skipping those whose norm bound
  rules them out (``prune_by_norm``, exact; ``scored_fraction`` says how many of the
  user × item scores it computed), its products by torch;
* ``evaluator_unpruned``: the same with ``prune_by_norm=False``, scoring every item, its
  products by whichever of torch and numpy ``graphrec.evaluate.dense_score_backend``
  found faster on this machine (printed);
* ``evaluator_unpruned_torch``: that with ``score_backend="torch"`` (``torch.mm``, the
  MKL bundled with torch);
* ``baseline``: the same call with another copy of ``graphrec/evaluate.py`` given by
  ``--baseline FILE`` (e.g. ``git show HEAD:graphrec/evaluate.py > old_evaluate.py``),
  to compare two versions in one run;
* ``products_<backend>``: just the score products of the evaluator's batches into one
  buffer, as the evaluator computes them, for each backend: the floor for any evaluation
  that computes every score that way;
* with ``--openblas``, ``evaluator_openblas_pool`` and ``products_openblas_pool``: the
  products by ``numpy.matmul`` left to OpenBLAS's own thread pool (a scorer the evaluator
  calls per batch), which is what the ``numpy`` backend avoids.

The numpy and torch products differ in the last bits, so near-ties could rank
differently; the check below says whether the metrics moved.

Every ranking case must agree with ``naive`` on Recall@20 and NDCG@20 to 1e-9, and
``evaluator`` with ``evaluator_unpruned_torch`` and ``baseline`` on every metric; the run
fails otherwise.

Usage::

    python benchmarks/evaluate.py
    python benchmarks/evaluate.py --openblas
    git show HEAD:graphrec/evaluate.py > old_evaluate.py
    python benchmarks/evaluate.py --baseline old_evaluate.py --repeats 5

Prints a markdown table, then one JSON line per case with ``case``, ``seconds``,
``ratio_to_naive``, ``recall@20``, ``ndcg@20``, ``threads`` (and ``cpu_seconds``, the
process CPU time over all threads: waiting for a busy machine's cores does not count,
threads spinning for work do; ``seconds_all``, ``embeddings``, ``batch``,
``scored_fraction``; ``recall@20``/``ndcg@20`` are null for the ``products`` cases,
``scored_fraction`` for all but the evaluators).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import scipy.sparse as sp
import torch

from graphrec.data.graph import RecGraph
from graphrec.datasets import gowalla
from graphrec.evaluate import Evaluator, _ScoreProducts, dense_score_backend, interaction_matrix
from graphrec.linalg import normalized_interactions, truncated_svd
from graphrec.models.ials import IALS
from graphrec.scoring import DotScorer

K = 20
TOLERANCE = 1e-9
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def svd_embeddings(train_ui: sp.csr_matrix, rank: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Item vectors: the top right singular vectors of the normalised interactions; user
    vectors: the normalised rows times them (a one-layer, SVD-initialised LightGCN)."""
    norm = normalized_interactions(train_ui)
    _, v = truncated_svd(norm, rank, iters=3, seed=seed)
    user = torch.from_numpy(np.asarray(norm @ v.numpy(), dtype=np.float32))
    return user.contiguous(), v.contiguous()


def ials_embeddings(graph: RecGraph, rank: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Trained factors: graphrec's iALS (its defaults, ``rank`` factors) fitted on the
    training graph."""
    model = IALS(graph, factors=rank, seed=seed)
    model.fit()
    return model.user_factors.contiguous(), model.item_factors.contiguous()


def random_embeddings(train_ui: sp.csr_matrix, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian vectors plus a popularity direction, so popular items rank higher."""
    gen = torch.Generator().manual_seed(seed)
    num_users, num_items = train_ui.shape
    user = torch.randn(num_users, dim, generator=gen) * 0.1
    item = torch.randn(num_items, dim, generator=gen) * 0.1
    degree = torch.from_numpy(np.bincount(train_ui.indices, minlength=num_items).astype(np.float32))
    item[:, 0] += 0.5 * torch.log1p(degree) / torch.log1p(degree).max()
    user[:, 0] += 0.5
    return user, item


def naive_eval(user_emb: torch.Tensor, item_emb: torch.Tensor, exclude: sp.csr_matrix,
               target: sp.csr_matrix, batch: int) -> dict[str, float]:
    """The textbook loop: score a batch, mask its training items, ``torch.topk``, look the
    top items up in a dense block of the batch's targets."""
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    discount = 1.0 / np.log2(np.arange(2, K + 2))
    ideal = np.cumsum(discount)
    recall, ndcg = [], []
    for s in range(0, len(users), batch):
        b = users[s:s + batch]
        scores = user_emb[torch.from_numpy(b)] @ item_emb.T
        ex = exclude[b]
        rows = np.repeat(np.arange(len(b)), np.diff(ex.indptr))
        scores[torch.from_numpy(rows), torch.from_numpy(ex.indices.astype(np.int64))] = -torch.inf
        top = torch.topk(scores, K, dim=1).indices.numpy()
        tgt = target[b].toarray() > 0
        hits = np.take_along_axis(tgt, top, 1).astype(np.float64)
        n_t = tgt.sum(1)
        recall.append(hits.sum(1) / n_t)
        ndcg.append((hits * discount).sum(1) / ideal[np.minimum(n_t, K) - 1])
    return {f"recall@{K}": float(np.concatenate(recall).mean()),
            f"ndcg@{K}": float(np.concatenate(ndcg).mean())}


def products_only(user_emb: torch.Tensor, item_emb: torch.Tensor, target: sp.csr_matrix,
                  batch: int, backend: str) -> dict[str, float]:
    """The evaluator's score products alone, batch by batch, into its reused buffer."""
    users = torch.from_numpy(np.flatnonzero(np.diff(target.indptr) > 0))
    with _ScoreProducts(user_emb, item_emb, min(batch, len(users)), backend) as products:
        for s in range(0, len(users), batch):
            products(users[s:s + batch])
    return {}


class NumpyDot(DotScorer):
    """Dot products by ``numpy.matmul`` into one reused buffer (CPU, float32), with
    OpenBLAS's own thread pool (not the ``numpy`` backend of the evaluator)."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer: np.ndarray | None = None

    def score_all(self, u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.buffer is None or self.buffer.shape[0] < len(u) or self.buffer.shape[1] != len(items):
            self.buffer = np.empty((len(u), len(items)), dtype=np.float32)
        out = self.buffer[: len(u)]
        np.matmul(u.numpy(), items.numpy().T, out=out)
        return torch.from_numpy(out)


def gemm_only_numpy(user_emb: torch.Tensor, item_emb: torch.Tensor, target: sp.csr_matrix,
                    batch: int) -> dict[str, float]:
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    u_np, i_np = user_emb.numpy(), item_emb.numpy()
    buffer = np.empty((min(batch, len(users)), len(i_np)), dtype=np.float32)
    for s in range(0, len(users), batch):
        u = u_np[users[s:s + batch]]
        np.matmul(u, i_np.T, out=buffer[: len(u)])
    return {}


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("baseline_evaluate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None, help="datasets directory (default: "
                        "$GRAPHREC_DATA, else shared/datasets next to the repository)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--embeddings", choices=("svd", "ials", "random"), default="svd")
    parser.add_argument("--embeddings-file", type=Path, default=None,
                        help="rank these instead: a torch.save'd (user [U, D], item [I, D]) "
                             "pair of Gowalla embeddings, e.g. a trained model's embeddings()")
    parser.add_argument("--rank", type=int, default=64, help="embedding dimension")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-budget-mb", type=float, default=None,
                        help="Evaluator budget (default: Evaluator's own)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another graphrec/evaluate.py to time as case 'baseline'")
    parser.add_argument("--openblas", action="store_true",
                        help="also time numpy's matmul left to OpenBLAS's own thread pool")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Sparse (CSR tensor support|invariant checks)")

    ds = gowalla(root=args.root or os.environ.get("GRAPHREC_DATA") or SHARED)
    train, test = ds.split.train, ds.split.test
    graph = RecGraph(train)
    start = time.perf_counter()
    if args.embeddings_file is not None:
        user_emb, item_emb = (t.float().contiguous()
                              for t in torch.load(args.embeddings_file, weights_only=True))
        if (user_emb.shape[0], item_emb.shape[0]) != graph.ui.shape:
            raise SystemExit(f"{args.embeddings_file}: embeddings of {user_emb.shape[0]} users × "
                             f"{item_emb.shape[0]} items, Gowalla has {graph.ui.shape}")
        args.embeddings = args.embeddings_file.name
    elif args.embeddings == "ials":
        user_emb, item_emb = ials_embeddings(graph, args.rank, args.seed)
    else:
        make = svd_embeddings if args.embeddings == "svd" else random_embeddings
        user_emb, item_emb = make(graph.ui, args.rank, args.seed)
    print(f"{args.embeddings} embeddings {tuple(user_emb.shape)} x {tuple(item_emb.shape)} in "
          f"{time.perf_counter() - start:.1f}s; {args.threads} threads")

    budget = {} if args.memory_budget_mb is None else {"memory_budget_mb": args.memory_budget_mb}
    evaluator = Evaluator(exclude=[train], ks=(K,), **budget)
    batch = evaluator.batch_size(item_emb.shape[0])
    exclude = interaction_matrix(train)
    target = interaction_matrix(test, exclude.shape)

    backend = dense_score_backend(item_emb.shape[1])
    print(f"score products of a ranking over every item by default: {backend}")
    unpruned = Evaluator(exclude=[train], ks=(K,), prune_by_norm=False, **budget)
    unpruned_torch = Evaluator(exclude=[train], ks=(K,), prune_by_norm=False, score_backend="torch",
                               **budget)
    evaluators = {"evaluator": evaluator, "evaluator_unpruned": unpruned,
                  "evaluator_unpruned_torch": unpruned_torch}
    cases: dict[str, Callable[[], dict[str, float]]] = {
        "naive": lambda: naive_eval(user_emb, item_emb, exclude, target, batch),
        **{name: lambda ev=ev: ev.evaluate_embeddings(user_emb, item_emb, test)
           for name, ev in evaluators.items()},
    }
    for name in dict.fromkeys((backend, "torch")):
        cases[f"products_{name}"] = lambda name=name: products_only(user_emb, item_emb, target,
                                                                     batch, name)
    if args.openblas:
        scorer = NumpyDot()
        cases["evaluator_openblas_pool"] = lambda: evaluator.evaluate_embeddings(
            user_emb, item_emb, test, scorer=scorer)
        cases["products_openblas_pool"] = lambda: gemm_only_numpy(user_emb, item_emb, target, batch)
    if args.baseline is not None:
        old = load_module(args.baseline).Evaluator(exclude=[train], ks=(K,), **budget)
        cases["baseline"] = lambda: old.evaluate_embeddings(user_emb, item_emb, test)

    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    results: dict[str, dict[str, float]] = {}
    for _ in range(args.repeats):
        for name, run in cases.items():  # interleaved, so drifting load hits every case
            start, start_cpu = time.perf_counter(), time.process_time()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)

    reference = results["naive"]
    failures = []
    for name, res in results.items():
        for key in reference if res else ():
            if abs(res[key] - reference[key]) > TOLERANCE:
                failures.append(f"{name} {key}: {res[key]!r} vs naive {reference[key]!r}")
    # The staged ranking must give every metric of the ranking over every item.
    compare = [("evaluator", "evaluator_unpruned_torch")]
    if "baseline" in results:
        compare.append(("evaluator", "baseline"))
    for name, other in compare:
        for key, value in results[other].items():
            if key not in ("eval_seconds",) and abs(results[name][key] - value) > TOLERANCE:
                failures.append(f"{name} {key}: {results[name][key]!r} vs {other} {value!r}")

    naive_s = statistics.median(times["naive"])
    rows = []
    for name in cases:
        sec = statistics.median(times[name])
        res = results[name]
        rows.append({
            "case": name, "seconds": round(sec, 3), "ratio_to_naive": round(sec / naive_s, 3),
            "cpu_seconds": round(statistics.median(cpu[name]), 3),
            f"recall@{K}": res.get(f"recall@{K}"), f"ndcg@{K}": res.get(f"ndcg@{K}"),
            "threads": args.threads, "seconds_all": [round(t, 3) for t in times[name]],
            "embeddings": args.embeddings, "batch": batch,
            "scored_fraction": (round(evaluators[name].last_scored_fraction, 4)
                                if name in evaluators else None),
        })
    print(f"\n| case | seconds (median of {args.repeats}) | ratio to naive | CPU seconds | Recall@20 | "
          f"NDCG@20 | all runs |")
    print("|---|---:|---:|---:|---:|---:|---|")
    def fmt(x: float | None) -> str:
        return "–" if x is None else f"{x:.6f}"

    for r in rows:
        print(f"| {r['case']} | {r['seconds']:.2f} | {r['ratio_to_naive']:.2f} | {r['cpu_seconds']:.2f} | "
              f"{fmt(r[f'recall@{K}'])} | "
              f"{fmt(r[f'ndcg@{K}'])} | {', '.join(f'{t:.2f}' for t in r['seconds_all'])} |")
    print()
    for r in rows:
        print(json.dumps(r))
    if failures:
        raise SystemExit("metrics disagree:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
