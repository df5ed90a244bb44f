"""Several Gowalla recipes side by side on one machine, each chosen on validation and then
refit on the whole training file: the full-reproduction protocol of ``gowalla.py``, with
the recipes sharing one GPU (a LightGCN step leaves most of an H100 idle, so four run at
nearly the speed of one).

Phase 1 runs every recipe at once as ``gowalla.py ARGS --minutes M``: each trains for M
training minutes (or until its patience runs out) and keeps the epoch with the best
validation Recall@20. Phase 2 refits every recipe at once on training + validation for
the epoch count its phase 1 chose (``--refit-epochs``); a GAT recipe's warm-up given in
minutes (``--attention-warmup``) becomes the epoch count it lasted in phase 1
(``--attention-warmup-epochs``), so the refit repeats it. Each run's log and the JSON lines
go to ``--out``; the script ends with a table and one JSON line.

Example (the recipes of the README's GPU table)::

    python benchmarks/gowalla_sweep.py --root ../shared/datasets --minutes 8 --out runs/sweep \\
        --recipe lgc_b64k "--model lightgcn --batch-size 65536 --lr 3e-2 --lr-decay 0.997" \\
        --recipe gat_b32k "--model gat --batch-size 32768 --lr 2e-2 --lr-decay 0.997 \\
                           --attention-warmup 4"
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def launch(name: str, args: list[str], out: Path) -> subprocess.Popen:
    """Start ``gowalla.py args`` with its output in ``out/name.log``."""
    cmd = [sys.executable, "-u", str(HERE / "gowalla.py"), *args, "--log", str(out / "results.jsonl")]
    with open(out / f"{name}.log", "w") as log:  # the child keeps its own handle
        log.write(shlex.join(cmd) + "\n")
        log.flush()
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def read_log(path: Path) -> tuple[dict | None, int | None]:
    """The run's result line and, for a GAT warm-up, the first epoch with attention."""
    result, attention_from = None, None
    for line in path.read_text().splitlines():
        if line.startswith('{"benchmark"'):
            result = json.loads(line)
        elif line.startswith('{"attention_from_epoch"'):
            attention_from = json.loads(line)["attention_from_epoch"]
    return result, attention_from


def refit_args(args: list[str], epochs: int, attention_from: int | None) -> list[str]:
    """``args`` for the refit: ``--refit-epochs``, and the warm-up counted in epochs."""
    args = list(args)
    if "--attention-warmup" in args:
        i = args.index("--attention-warmup")
        del args[i:i + 2]
        if attention_from is not None:
            args += ["--attention-warmup-epochs", str(attention_from - 1)]
    return args + ["--refit-epochs", str(epochs)]


def wait(procs: dict[str, subprocess.Popen], what: str) -> None:
    for name, proc in procs.items():
        if proc.wait() != 0:
            print(f"{what} {name} failed (exit {proc.returncode}); see its log", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--recipe", nargs=2, action="append", required=True, metavar=("NAME", "ARGS"),
                   help="a name and the gowalla.py arguments of one recipe (repeat)")
    p.add_argument("--minutes", type=float, required=True, help="training minutes of phase 1")
    p.add_argument("--out", type=Path, required=True, help="folder for the logs")
    p.add_argument("--root", default=None, help="datasets directory (default: GRAPHREC_DATA)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=2, help="CPU threads of each run")
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--patience", type=int, default=20)
    args = p.parse_args(argv)
    names = [name for name, _ in args.recipe]
    if len(set(names)) != len(names):
        p.error(f"recipe names must differ, got {names}")
    args.out.mkdir(parents=True, exist_ok=True)
    common = ["--device", args.device, "--threads", str(args.threads),
              "--eval-every", str(args.eval_every), "--patience", str(args.patience)]
    if args.root:
        common += ["--root", args.root]
    recipes = {name: common + shlex.split(text) for name, text in args.recipe}

    start = time.perf_counter()
    wait({n: launch(n, a + ["--minutes", str(args.minutes)], args.out) for n, a in recipes.items()},
         "selection")
    selection_minutes = (time.perf_counter() - start) / 60
    chosen = {}
    for name in recipes:
        result, attention_from = read_log(args.out / f"{name}.log")
        if result is None or not result["marks"].get(str(args.minutes)):
            continue
        chosen[name] = (result, attention_from)
    wait({n: launch(f"{n}_refit", refit_args(recipes[n], r["marks"][str(args.minutes)]["epoch"], a),
                    args.out) for n, (r, a) in chosen.items()}, "refit")

    rows = []
    for name, (result, attention_from) in chosen.items():
        mark = result["marks"][str(args.minutes)]
        refit, _ = read_log(args.out / f"{name}_refit.log")
        rows.append({"recipe": name, "epochs_run": result["epochs_run"], "best_epoch": mark["epoch"],
                     "attention_from_epoch": attention_from,
                     "valid_recall@20": mark["valid_recall@20"],
                     "test_recall@20": mark["test_recall@20"], "test_ndcg@20": mark["test_ndcg@20"],
                     "refit_minutes": refit["train_minutes"] if refit else None,
                     "refit_test": refit["refit_test"] if refit else None})
    print(f"\nselection {selection_minutes:.1f} wall minutes, all "
          f"{(time.perf_counter() - start) / 60:.1f}")
    print("| recipe | epochs run | best epoch | valid Recall@20 | test | refit test |")
    print("|---|---:|---:|---:|---|---|")
    for r in rows:
        refit = (f"{r['refit_test']['test_recall@20']:.4f} / {r['refit_test']['test_ndcg@20']:.4f}"
                 if r["refit_test"] else "failed")
        print(f"| {r['recipe']} | {r['epochs_run']} | {r['best_epoch']} | {r['valid_recall@20']:.4f} "
              f"| {r['test_recall@20']:.4f} / {r['test_ndcg@20']:.4f} | {refit} |")
    print(json.dumps({"benchmark": "gowalla_sweep", "minutes": args.minutes, "device": args.device,
                      "recipes": {n: shlex.join(a) for n, a in recipes.items()}, "rows": rows}))


if __name__ == "__main__":
    main()
