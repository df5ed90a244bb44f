"""A blend's weight grid on validation: ranked in one pass against point by point.

The grid of ``benchmarks/filters.py``'s ``blend`` entry (the degree-normalised filter and
iALS, nine weight points) is chosen on each dataset's validation carve with
``graphrec.selection.choose_on_validation``, the members fitted once. ``one_pass`` is the
default (consecutive blends over the same members ranked together, each member scored
once per batch of users, ``graphrec.models.blend.evaluate_blends``); ``point_by_point``
ranks each blend alone, as before. Both must give every point the same validation
metrics; the run fails otherwise.

Usage::

    python benchmarks/blend_grid.py --root ../shared/datasets --datasets lastfm
    python benchmarks/blend_grid.py --root ../shared/datasets --datasets gowalla --modes one_pass

Prints a markdown table, then one JSON line per dataset and mode with ``dataset``,
``mode``, ``seconds`` (the grid's ranking, members already fitted), ``points``,
``chosen`` and ``valid_recall@20`` (each point's, in grid order).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from filters import entries, load

from graphrec.data.graph import RecGraph
from graphrec.models.blend import Blend
from graphrec.selection import choose_on_validation

MODES = ("one_pass", "point_by_point")


@contextmanager
def point_by_point() -> Iterator[None]:
    """Blends never count as sharing members, so each is ranked alone."""
    same = Blend.same_members
    Blend.same_members = lambda self, other: False  # type: ignore[method-assign]
    try:
        yield
    finally:
        Blend.same_members = same  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=None, help="datasets directory")
    parser.add_argument("--datasets", nargs="+", default=["lastfm"])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Sparse (CSR tensor support|invariant checks)")
    entry = entries()["blend"]
    rows: list[dict[str, Any]] = []
    for dataset in args.datasets:
        split = load(dataset, args.root)
        graph = RecGraph(split.train)
        start = time.perf_counter()
        entry.build(graph, {"weights": [1, 1]}).fit()  # the shared members, fitted once
        print(f"{dataset}: members fitted in {time.perf_counter() - start:.1f} s", flush=True)
        for mode in args.modes:
            start = time.perf_counter()
            with point_by_point() if mode == "point_by_point" else nullcontext():
                best, points, _ = choose_on_validation(lambda g, p: entry.build(g, p).fit(),
                                                       entry.grid, graph, split.valid)
            rows.append({"dataset": dataset, "mode": mode,
                         "seconds": round(time.perf_counter() - start, 2), "points": len(points),
                         "chosen": points[best].params["weights"],
                         "valid_recall@20": [p.valid["recall@20"] for p in points]})
            print(f"{dataset} {mode}: {rows[-1]['seconds']} s", flush=True)
    print("\n| dataset | mode | seconds | points | chosen |\n|---|---|---:|---:|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['mode']} | {r['seconds']:.1f} | {r['points']} | {r['chosen']} |")
    print()
    for r in rows:
        print(json.dumps(r))
    for dataset in args.datasets:
        found = [r["valid_recall@20"] for r in rows if r["dataset"] == dataset]
        if any(f != found[0] for f in found[1:]):
            raise SystemExit(f"{dataset}: the modes disagree on the validation metrics")


if __name__ == "__main__":
    main()
