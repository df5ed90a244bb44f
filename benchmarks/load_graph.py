"""Time and memory to go from interaction logs to a RecGraph with torch CSR tensors.

Cases:

* ``gowalla``: the Gowalla files (``train.txt``/``test.txt``, one line per user: the user
  id followed by item ids) → ``Interactions`` (phase *parse*) → ``RecGraph`` of the
  training part (*recgraph*) → ``graph.to_torch()`` (*to_torch*).
* ``synthetic-N``: a synthetic log of about N interactions (phase *generate*, reported
  apart from graph building) → *recgraph* → *to_torch*.

Every case runs in a fresh Python process, so that one case's allocations (and the
allocator's cached memory) cannot hide or inflate another's. Memory is the increase of
the process's resident set (RSS) over the RSS at the start of the phase: *peak* is the
highest RSS reached during the phase (the kernel's high-water mark, reset before each
phase), *retained* what is still held after it. Bytes per interaction of the graph
build (recgraph + to_torch) should be about the same at every size: memory linear in the
number of interactions, with no dense user × item matrix anywhere.

Usage::

    python benchmarks/load_graph.py                 # Gowalla + synthetic 2M, 5M, 20M
    python benchmarks/load_graph.py --quick         # Gowalla + synthetic 0.2M, 0.5M, 1M
    python benchmarks/load_graph.py --data PATH --sizes 1e6,4e6

Prints a markdown table and, last, one JSON line with every number.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "gowalla"
FULL_SIZES = [2_000_000, 5_000_000, 20_000_000]
QUICK_SIZES = [200_000, 500_000, 1_000_000]
MB = 1024 * 1024

# Shape of the synthetic logs: interactions per user and per item, about Gowalla's.
AVG_USER_DEGREE = 30
INTERACTIONS_PER_ITEM = 100


# ---------------------------------------------------------------------- memory probes
def current_rss() -> int:
    """Resident set size of this process, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark (Linux); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    """Highest RSS since the last :func:`reset_peak` (or since the process started)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def release_free_memory() -> None:
    """Hand memory that was freed back to the OS (glibc), so the next phase starts clean.

    Without this, arrays freed by one phase stay in the process's heap and the next phase
    reuses them without raising RSS, which would make it look free.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(name: str, fn: Callable[[], Any], phases: list[dict]) -> Any:
    """Run ``fn`` as one phase, append its time and memory to ``phases``, return its result."""
    gc.collect()
    release_free_memory()
    resettable = reset_peak()
    start = current_rss()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    peak = peak_rss()
    phases.append({
        "phase": name,
        "seconds": seconds,
        "start_rss": start,
        "peak_rss": peak,
        "peak_increase": peak - start,
        "retained": current_rss() - start,
        "peak_is_per_phase": resettable,
    })
    return result


# ---------------------------------------------------------------------- cases (worker side)
def parse_gowalla(root: Path) -> tuple[Any, str]:
    """(train Interactions over the maps of train+test, which loader was used)."""
    try:
        from graphrec.datasets import gowalla  # the project's loader, once it exists
    except ImportError:
        gowalla = None
    if gowalla is not None:
        return gowalla(root).split.train, "graphrec.datasets.gowalla"

    from graphrec.data import Interactions

    def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
        users, items = [], []
        with path.open() as f:
            for line in f:
                ids = np.array(line.split(), dtype=np.int64)
                if len(ids) > 1:
                    users.append(np.full(len(ids) - 1, ids[0]))
                    items.append(ids[1:])
        return np.concatenate(users), np.concatenate(items)

    train_u, train_i = read(root / "train.txt")
    test_u, test_i = read(root / "test.txt")
    num_users = int(max(train_u.max(), test_u.max())) + 1
    num_items = int(max(train_i.max(), test_i.max())) + 1
    return (Interactions.from_arrays(train_u, train_i, num_users=num_users, num_items=num_items),
            "inline reader (graphrec.datasets.gowalla not available)")


def generate_synthetic(n: int) -> tuple[Any, str]:
    """(Interactions of about ``n`` rows, which generator was used)."""
    num_users = max(n // AVG_USER_DEGREE, 10)
    num_items = max(n // INTERACTIONS_PER_ITEM, 100)
    try:
        from graphrec.datasets.synthetic import synthetic
    except ImportError:
        synthetic = None
    if synthetic is not None:
        ds = synthetic(num_users=num_users, num_items=num_items, avg_degree=AVG_USER_DEGREE,
                       social=False, ratings=False, timestamps=False, seed=0)
        return ds.interactions, "graphrec.datasets.synthetic"

    # Fallback: users with log-normal activity picking Zipf-popular items.
    from graphrec.data import Interactions

    rng = np.random.default_rng(0)
    degree = np.maximum(rng.lognormal(np.log(AVG_USER_DEGREE) - 0.5, 1.0, num_users), 1)
    degree = np.round(degree * n / degree.sum()).astype(np.int64)
    users = np.repeat(np.arange(num_users), degree)
    popularity = 1.0 / np.arange(1, num_items + 1)
    items = rng.choice(num_items, size=len(users), p=popularity / popularity.sum())
    return (Interactions.from_arrays(users, items, num_users=num_users, num_items=num_items),
            "inline power-law generator (graphrec.datasets.synthetic not available)")


def run_case(case: str, data: Path) -> dict:
    """Run one case in this process and return its measurements."""
    import torch  # noqa: F401  (imported before measuring, like every other library)

    from graphrec.data import RecGraph

    phases: list[dict] = []
    if case == "gowalla":
        inter, source = measure("parse", lambda: parse_gowalla(data), phases)
    else:
        n = int(case.split("-", 1)[1])
        inter, source = measure("generate", lambda: generate_synthetic(n), phases)
    graph = measure("recgraph", lambda: RecGraph(inter), phases)
    tg = measure("to_torch", graph.to_torch, phases)

    # Whole graph build: from the Interactions to the tensors, both phases together.
    build = phases[-2:]
    base = build[0]["start_rss"]
    build_peak = max(p["peak_rss"] for p in build) - base
    retained = current_rss() - base
    edges = graph.num_edges
    del tg
    return {
        "case": case,
        "source": source,
        "rows": len(inter),
        "users": graph.num_users,
        "items": graph.num_items,
        "edges": edges,
        "phases": phases,
        "build_seconds": sum(p["seconds"] for p in build),
        "build_peak_increase": build_peak,
        "build_retained": retained,
        "peak_bytes_per_edge": build_peak / max(edges, 1),
        "retained_bytes_per_edge": retained / max(edges, 1),
        "dense_user_item_bytes": graph.num_users * graph.num_items * 4,
    }


# ---------------------------------------------------------------------- driver
def run_in_subprocess(case: str, data: Path) -> dict:
    """Run one case in a fresh interpreter and read back its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--data", str(data)]
    # A fixed mmap threshold makes glibc return every large array to the OS when it is
    # freed (by default the threshold grows, and freed arrays stay counted in RSS).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(256 * 1024)}
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(results: list[dict]) -> str:
    lines = [
        "| case | interactions | phase | time (s) | peak RSS increase (MB) | retained (MB) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in results:
        for p in r["phases"]:
            lines.append(f"| {r['case']} | {r['edges']:,} | {p['phase']} | {p['seconds']:.2f} | "
                         f"{p['peak_increase'] / MB:.0f} | {p['retained'] / MB:.0f} |")
    lines += [
        "",
        "Graph build (recgraph + to_torch), per interaction edge:",
        "",
        "| case | edges | users | items | build time (s) | peak MB | peak B/edge | "
        "retained B/edge | dense U×I would be (GB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['edges']:,} | {r['users']:,} | {r['items']:,} | "
            f"{r['build_seconds']:.2f} | {r['build_peak_increase'] / MB:.0f} | "
            f"{r['peak_bytes_per_edge']:.0f} | {r['retained_bytes_per_edge']:.0f} | "
            f"{r['dense_user_item_bytes'] / 1e9:.1f} |")
    return "\n".join(lines)


def linearity(results: list[dict]) -> dict:
    """Spread of peak bytes per edge over the synthetic sizes (1.0 = perfectly linear)."""
    synth = [r for r in results if r["case"].startswith("synthetic")]
    per_edge = [r["peak_bytes_per_edge"] for r in synth]
    if not per_edge:
        return {}
    spread = max(per_edge) / min(per_edge)
    return {
        "sizes": [r["edges"] for r in synth],
        "peak_bytes_per_edge": per_edge,
        "retained_bytes_per_edge": [r["retained_bytes_per_edge"] for r in synth],
        "max_over_min": spread,
        # Allocator rounding and fixed costs make small sizes a little noisier.
        "linear": spread < 1.5,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with Gowalla's train.txt and test.txt")
    parser.add_argument("--quick", action="store_true", help="small synthetic sizes")
    parser.add_argument("--sizes", help="comma-separated synthetic sizes, e.g. 2e6,5e6")
    parser.add_argument("--skip-gowalla", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_case(args.worker, args.data)))
        return

    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.sizes:
        sizes = [int(float(s)) for s in args.sizes.split(",")]
    cases = [f"synthetic-{n}" for n in sizes]
    if not args.skip_gowalla:
        if (args.data / "train.txt").exists():
            cases.insert(0, "gowalla")
        else:
            print(f"(skipping gowalla: no train.txt under {args.data})", file=sys.stderr)

    results = []
    for case in cases:
        print(f"running {case} …", file=sys.stderr, flush=True)
        results.append(run_in_subprocess(case, args.data))
    print(markdown(results))
    for r in results:
        print(f"- {r['case']}: {r['source']}")
    lin = linearity(results)
    if lin:
        print(f"\nmemory linearity: peak bytes/edge "
              f"{', '.join(f'{b:.0f}' for b in lin['peak_bytes_per_edge'])} "
              f"(max/min {lin['max_over_min']:.2f}; linear: {lin['linear']})")
    print(json.dumps({"benchmark": "load_graph", "cases": results, "linearity": lin}))


if __name__ == "__main__":
    main()
