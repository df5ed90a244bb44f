"""Time and memory of one graph-attention layer: graphrec vs PyG, same run, same graphs.

Workloads:
* ``gowalla``: the Gowalla user–item training graph, made symmetric, plus one self-loop per
  node (70,839 nodes, 1,691,095 edges). Users are ``0..29857``, items follow.
* ``1``, ``4``, ``10`` (``--scales``): synthetic graphs with that many times Gowalla's
  nodes and edges, same average degree, power-law-ish degrees (endpoints drawn with
  probability ∝ (rank + 10)^-0.8), symmetric, no repeated pairs, plus self-loops.

Layer: 64 → 4 heads × 16, concat, ``add_self_loops=False`` (the graph already has them),
2 CPU threads. Both libraries get the same destination-sorted edge list; graphrec gets an
``Adjacency`` built once beforehand (its documented fast path; the build time and the
size of its cached index arrays are reported separately).

Measurements (each in a fresh subprocess so that one library's allocator state cannot
affect another's):
* time: forward+backward of ``layer(x, graph).sum()`` w.r.t. inputs and weights, and
  no-grad inference; median of ``--reps`` after a warm-up step. All libraries' reps are
  interleaved round-robin in one process so that load from other processes on the
  machine hits them alike; the ratios are the meaningful numbers.
* memory: peak RSS increase during one step, measured in a fresh process per library and
  mode after one warm-up step: freed heap is returned to the OS (``malloc_trim``), the
  kernel's peak-RSS counter is reset (``/proc/self/clear_refs``), one step runs, and the
  new peak (``VmHWM``) minus the RSS before the step is reported. This is exact (no
  sampling) and includes everything the step allocates: activations, saved tensors,
  gradients, temporaries.

Runs that would not fit in memory are skipped, using a per-edge estimate, and reported as
such. Usage::

    python benchmarks/gat_layer.py                       # gowalla + 1x, 4x, 10x
    python benchmarks/gat_layer.py --scales gowalla      # just Gowalla
    python benchmarks/gat_layer.py --quick               # small smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from peak_memory import peak_increase

GOWALLA_USERS = 29_858
GOWALLA_NODES = 70_839
GOWALLA_EDGES = 1_691_095
IN_CHANNELS, HEADS, CHANNELS = 64, 4, 16
IMPLS = ["pyg-gat", "graphrec-gat", "pyg-gatv2", "graphrec-gatv2"]
# Peak RSS growth per edge of one fwd+bwd step (PyG: 17.2 GB over 16.3M edges for GATConv,
# 2.96 GB over 1.69M for GATv2Conv, H*C = 64), plus margin; used only to skip runs that
# cannot fit.
EST_BYTES_PER_EDGE = {"pyg-gat": 1100, "pyg-gatv2": 1800, "graphrec-gat": 200,
                      "graphrec-gatv2": 250}


# ----------------------------------------------------------------------------- graphs
def load_gowalla(path: Path) -> tuple[np.ndarray, int]:
    """Symmetric user–item graph plus self-loops as a (2, E) int64 array."""
    users, items = [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            its = np.asarray(parts[1:], dtype=np.int64) + GOWALLA_USERS
            users.append(np.full(its.size, int(parts[0]), dtype=np.int64))
            items.append(its)
    u, i = np.concatenate(users), np.concatenate(items)
    num_nodes = int(max(u.max(), i.max())) + 1
    loops = np.arange(num_nodes, dtype=np.int64)
    return np.stack([np.concatenate([u, i, loops]), np.concatenate([i, u, loops])]), num_nodes


def synthetic_graph(scale: float, seed: int = 0) -> tuple[np.ndarray, int]:
    """Power-law-ish symmetric simple graph with ``scale`` × Gowalla's nodes and edges."""
    rng = np.random.default_rng(seed)
    num_nodes = int(GOWALLA_NODES * scale)
    pairs = (int(GOWALLA_EDGES * scale) - num_nodes) // 2
    p = (np.arange(num_nodes) + 10.0) ** -0.8
    p /= p.sum()
    perm = rng.permutation(num_nodes)  # spread the heavy nodes over the id range
    keys = np.empty(0, dtype=np.int64)
    while keys.size < pairs:  # draw until there are enough distinct undirected pairs
        n = int((pairs - keys.size) * 1.1) + 16
        a = perm[rng.choice(num_nodes, size=n, p=p)]
        b = perm[rng.choice(num_nodes, size=n, p=p)]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        new = (lo * num_nodes + hi)[lo != hi]
        keys = np.unique(np.concatenate([keys, new]))
    keys = rng.permutation(keys)[:pairs]
    src, dst = keys // num_nodes, keys % num_nodes
    loops = np.arange(num_nodes, dtype=np.int64)
    return np.stack([np.concatenate([src, dst, loops]),
                     np.concatenate([dst, src, loops])]).astype(np.int64), num_nodes


def prepare_graph_file(name: str, data: Path, cache: Path) -> Path:
    out = cache / f"graph_{name}.npz"
    if not out.exists():
        if name == "gowalla":
            ei, n = load_gowalla(data)
        elif name.startswith("quick"):
            ei, n = synthetic_graph(float(name[len("quick"):]))
        else:
            ei, n = synthetic_graph(float(name))
        order = np.lexsort((ei[0], ei[1]))  # destination-major, for both libraries
        np.savez(out, edge_index=ei[:, order], num_nodes=n)
    return out


# ----------------------------------------------------------------------------- workers
def _build(impl: str, graph_file: Path, seed: int = 0):
    import torch

    from graphrec.data.adjacency import Adjacency

    data = np.load(graph_file)
    edge_index = torch.from_numpy(data["edge_index"])
    n = int(data["num_nodes"])
    torch.manual_seed(seed)
    x = torch.randn(n, IN_CHANNELS, requires_grad=True)
    lib, kind = impl.split("-")
    extra = {}
    if lib == "pyg":
        import torch_geometric.nn as pyg

        cls = pyg.GATConv if kind == "gat" else pyg.GATv2Conv
        graph = edge_index
    else:
        import graphrec.nn as grn

        cls = grn.GATConv if kind == "gat" else grn.GATv2Conv
        t0 = time.perf_counter()
        graph = Adjacency.from_edge_index(edge_index, n)
        graph.dst_index_cached()
        graph.source_major()
        extra["adjacency_build_s"] = time.perf_counter() - t0
        cached = [graph._cache["dst"], *graph._cache["source_major"]]
        extra["adjacency_MB"] = (sum(t.numel() * t.element_size() for t in cached)
                                 + graph.rowptr.nbytes + graph.col.nbytes
                                 + graph.edge_id.nbytes) / 2**20
    layer = cls(IN_CHANNELS, CHANNELS, heads=HEADS, add_self_loops=False)
    return layer, x, graph, n, edge_index.size(1), extra


def _train_step(layer, x, graph) -> None:
    layer.zero_grad(set_to_none=True)
    x.grad = None
    layer(x, graph).sum().backward()


def _infer_step(layer, x, graph) -> None:
    import torch

    with torch.no_grad():
        layer(x, graph)


def worker_time(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    built = {impl: _build(impl, args.graph_file) for impl in args.impls}
    times = {impl: {"train": [], "infer": []} for impl in args.impls}
    for layer, x, graph, *_rest in built.values():
        _train_step(layer, x, graph)  # warm-up (also builds lazy caches)
        _infer_step(layer, x, graph)
    for _ in range(args.reps):
        for impl, (layer, x, graph, *_rest) in built.items():
            for mode, step in (("train", _train_step), ("infer", _infer_step)):
                t0 = time.perf_counter()
                step(layer, x, graph)
                times[impl][mode].append(time.perf_counter() - t0)
    for impl in args.impls:
        print(json.dumps({"impl": impl, "extra": built[impl][5],
                          "train_s": statistics.median(times[impl]["train"]),
                          "infer_s": statistics.median(times[impl]["infer"]),
                          "train_all": times[impl]["train"]}), flush=True)


def worker_mem(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    (impl,) = args.impls
    layer, x, graph, *_rest = _build(impl, args.graph_file)
    step = _train_step if args.mode == "train" else _infer_step
    step(layer, x, graph)  # warm-up: lazy caches and first-touch of parameters' grads
    with peak_increase() as mem:
        step(layer, x, graph)
    print(json.dumps({"impl": impl, "mode": args.mode, "peak_increase_MB": mem["MB"]}),
          flush=True)


# ----------------------------------------------------------------------------- driver
def _run_child(argv: list[str], timeout: float) -> list[dict]:
    cmd = [sys.executable, os.path.abspath(__file__), *argv]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [{"error": f"timed out after {timeout:.0f} s"}]
    if res.returncode != 0:
        tail = (res.stderr or "").strip().splitlines()[-3:]
        return [{"error": f"exit {res.returncode}: {' | '.join(tail)}"}]
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def _available_bytes() -> int:
    import psutil

    return psutil.virtual_memory().available


def run_scale(name: str, args, cache: Path) -> list[dict]:
    graph_file = prepare_graph_file(name, args.data, cache)
    num_edges = int(np.load(graph_file)["edge_index"].shape[1])
    num_nodes = int(np.load(graph_file)["num_nodes"])
    common = ["--graph-file", str(graph_file), "--threads", str(args.threads)]
    rows: dict[str, dict] = {}
    runnable = []
    for impl in args.impls:
        need = EST_BYTES_PER_EDGE[impl] * num_edges
        row = {"graph": name, "impl": impl, "nodes": num_nodes, "edges": num_edges}
        if args.skip_pyg_above and impl.startswith("pyg") and num_edges > args.skip_pyg_above:
            row["skipped"] = f"--skip-pyg-above {args.skip_pyg_above}"
        elif need > args.mem_fraction * _available_bytes():
            row["skipped"] = (f"would need ~{need / 1e9:.1f} GB, "
                              f"{_available_bytes() / 1e9:.1f} GB available")
        else:
            runnable.append(impl)
        rows[impl] = row
    for impl in runnable:
        for mode in ("train", "infer"):
            (res,) = _run_child(["--worker", "mem", "--impls", impl, "--mode", mode, *common],
                                args.timeout)
            rows[impl][f"{mode}_peak_MB"] = res.get("peak_increase_MB")
            if "error" in res:
                rows[impl]["error"] = res["error"]
    if runnable:
        for res in _run_child(["--worker", "time", "--impls", *runnable, "--reps",
                               str(args.reps), *common], args.timeout):
            if "error" in res:
                for impl in runnable:
                    rows[impl]["error"] = res["error"]
                continue
            rows[res["impl"]].update(train_s=res["train_s"], infer_s=res["infer_s"],
                                     **res["extra"])
    ref = rows.get("pyg-gat", {})
    for row in rows.values():
        for key in ("train_s", "infer_s", "train_peak_MB", "infer_peak_MB"):
            if row.get(key) is not None and ref.get(key):
                row[f"{key}_vs_pyg_gat"] = row[key] / ref[key]
    return list(rows.values())


def _fmt(row: dict, key: str, unit: str) -> str:
    if "skipped" in row:
        return "skipped"
    v = row.get(key)
    if v is None:
        return "error" if "error" in row else "-"
    r = row.get(f"{key}_vs_pyg_gat")
    return f"{v:.3f}{unit}" + (f" ({r:.2f}×)" if r is not None else "")


def print_table(rows: list[dict]) -> None:
    print("\n| graph | edges | impl | fwd+bwd | inference | peak RSS fwd+bwd | peak RSS inference |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['graph']} | {r['edges']:,} | {r['impl']} | {_fmt(r, 'train_s', ' s')} | "
              f"{_fmt(r, 'infer_s', ' s')} | {_fmt(r, 'train_peak_MB', ' MB')} | "
              f"{_fmt(r, 'infer_peak_MB', ' MB')} |")
    notes = [f"{r['graph']}/{r['impl']}: {r['skipped']}" for r in rows if "skipped" in r]
    notes += [f"{r['graph']}/{r['impl']}: {r['error']}" for r in rows if "error" in r]
    for n in notes:
        print(f"- {n}")
    print("\nRatios in parentheses are relative to PyG GATConv on the same graph in the same run.")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path,
                   default=Path(__file__).resolve().parents[1] / "../shared/datasets/gowalla/train.txt")
    p.add_argument("--scales", nargs="+", default=["gowalla", "1", "4", "10"],
                   help="'gowalla' and/or multiples of Gowalla's edge count for synthetic graphs")
    p.add_argument("--impls", nargs="+", default=IMPLS, choices=IMPLS)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timeout", type=float, default=3600.0, help="per child process, seconds")
    p.add_argument("--mem-fraction", type=float, default=0.85,
                   help="skip runs whose estimated peak exceeds this share of available RAM")
    p.add_argument("--skip-pyg-above", type=int, default=0,
                   help="skip PyG on graphs with more edges than this (0: never)")
    p.add_argument("--quick", action="store_true", help="small smoke run (0.05x graph, 2 reps)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where generated graphs are kept (default: a temporary directory)")
    p.add_argument("--json", type=Path, default=None, help="also append JSON lines here")
    # Internal: child-process entry points.
    p.add_argument("--worker", choices=["time", "mem"], help=argparse.SUPPRESS)
    p.add_argument("--graph-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=["train", "infer"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker == "time":
        return worker_time(args)
    if args.worker == "mem":
        return worker_mem(args)

    if args.quick:
        args.scales, args.reps = ["quick0.05"], 2
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        all_rows = []
        for name in args.scales:
            if name == "gowalla" and not args.data.exists():
                print(f"skipping gowalla: {args.data} not found (use --data)", file=sys.stderr)
                continue
            rows = run_scale(name, args, cache)
            for row in rows:
                line = json.dumps(row)
                print(line, flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(line + "\n")
            all_rows += rows
        print_table(all_rows)


if __name__ == "__main__":
    main()
