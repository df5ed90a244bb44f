"""The ``graphrec`` command: ``train``, ``evaluate`` and ``recommend``.

    graphrec train --config run.yaml --out runs/lightgcn
    graphrec train --set model.name=mf --set train.epochs=20 --out runs/mf
    graphrec train --print-config            # every key, documented
    graphrec train --nproc 2 --config run.yaml --out runs/lightgcn   # 2 data-parallel ranks
    graphrec evaluate --run runs/lightgcn
    graphrec recommend --run runs/lightgcn --users 12 57 --k 10
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

import torch

from graphrec.config import ConfigError, RunConfig, default_config_yaml, load_config
from graphrec.data.errors import DataError

if TYPE_CHECKING:
    from graphrec.experiment import RunResult


def _train(args: argparse.Namespace) -> int:
    from graphrec.experiment import run

    if args.print_config:
        print(default_config_yaml(), end="")
        return 0
    cfg = load_config(args.config, args.set)
    if args.out is None and cfg.train.run_dir is None:
        raise ConfigError("give --out DIR (or train.run_dir) so the trained model is kept")
    if args.nproc < 1:
        raise ConfigError(f"--nproc: expected a number of processes >= 1, got {args.nproc}")
    if args.nproc > 1:
        from graphrec.closed_form import is_closed_form
        from graphrec.distributed import spawn

        if is_closed_form(cfg.model):
            raise ConfigError(f"--nproc: {cfg.model.name!r} is fitted in closed form, not trained; "
                              f"run it without --nproc")
        spawn(_train_rank, args.nproc, (cfg, args.out or cfg.train.run_dir, args.threads))
        return 0
    # Under torchrun, join its process group; alone, nothing happens.
    from graphrec.distributed import init_from_env

    ranks = init_from_env()
    try:
        result = run(cfg, args.out or cfg.train.run_dir)
    finally:
        if ranks is not None:
            torch.distributed.destroy_process_group()
    if ranks is None or ranks.is_main:
        _print_summary(result)
    return 0


def _train_rank(cfg: RunConfig, out: str, threads: int | None) -> None:
    """One of ``graphrec train --nproc N``'s ranks (the process group is joined)."""
    from graphrec.distributed import current_ranks
    from graphrec.experiment import run

    if threads:
        torch.set_num_threads(threads)
    result = run(cfg, out)
    ranks = current_ranks()
    if ranks is None or ranks.is_main:
        _print_summary(result)


def _print_summary(result: RunResult) -> None:
    """The run's best epoch and metrics as JSON on stdout."""
    summary = {"best_epoch": result.fit.best_epoch, "valid": result.fit.best_metrics,
               "test": result.test}
    if result.selected_test is not None:
        summary["selected_test"] = result.selected_test
    print(json.dumps(summary, indent=1))


def _evaluate(args: argparse.Namespace) -> int:
    from graphrec.experiment import evaluate_test, load_run

    cfg, split, model = load_run(args.run)
    print(json.dumps(evaluate_test(model, split, cfg), indent=1))
    return 0


def _recommend(args: argparse.Namespace) -> int:
    from graphrec.experiment import load_run

    _, _, model = load_run(args.run)
    users: list[object] = []
    for u in args.users:
        users.append(int(u) if u.lstrip("-").isdigit() else u)
    frame = model.recommend(users, k=args.k, exclude_seen=not args.include_seen)
    print(frame.to_csv(index=False) if args.csv else frame.to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(prog="graphrec", description="Graph-based recommendation with attention.")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a YAML config and evaluate it")
    p.add_argument("--config", help="YAML config file (default: built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config key, e.g. --set train.epochs=5 (repeatable)")
    p.add_argument("--out", help="run directory for checkpoints, metrics and results")
    p.add_argument("--print-config", action="store_true", help="print the documented default config and exit")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train with N data-parallel processes on this machine (gloo on the CPU, "
                        "NCCL on GPUs); for several machines launch 'torchrun ... -m graphrec "
                        "train' instead, see docs/distributed.md")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="evaluate a trained run on its test split")
    p.add_argument("--run", required=True, help="run directory written by 'graphrec train'")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("recommend", help="top-k items for users (raw ids in and out)")
    p.add_argument("--run", required=True, help="run directory written by 'graphrec train'")
    p.add_argument("--users", nargs="+", required=True, help="raw user ids")
    p.add_argument("--k", type=int, default=10, help="items per user")
    p.add_argument("--include-seen", action="store_true", help="keep items seen in training")
    p.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    p.set_defaults(func=_recommend)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``graphrec`` command."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except (ConfigError, DataError) as exc:
        print(f"graphrec: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
