"""The ``graphrec`` command: ``train``, ``evaluate``, ``recommend`` and ``export``.

    graphrec train --config run.yaml --out runs/lightgcn
    graphrec train --set model.name=mf --set train.epochs=20 --out runs/mf
    graphrec train --print-config            # every key, documented
    graphrec train --nproc 2 --config run.yaml --out runs/lightgcn   # 2 data-parallel ranks
    graphrec evaluate --run runs/lightgcn
    graphrec recommend --run runs/lightgcn --users 12 57 --k 10
    graphrec recommend --run runs/lightgcn --users-file users.txt --unknown popular --csv
    graphrec export --run runs/lightgcn --what scores --k 20 --out top20.parquet
    graphrec --version

torch and the rest of graphrec are imported inside the subcommand handlers, so that
``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from graphrec import __version__

if TYPE_CHECKING:
    from graphrec.config import RunConfig
    from graphrec.experiment import RunResult


def _train(args: argparse.Namespace) -> int:
    from graphrec.config import ConfigError, default_config_yaml, load_config
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
        spawn(_train_rank, args.nproc, (cfg, args.out or cfg.train.run_dir, args.threads,
                                        args.overwrite))
        return 0
    # Under torchrun, join its process group; alone, nothing happens.
    from graphrec.distributed import init_from_env

    ranks = init_from_env()
    out = args.out or cfg.train.run_dir
    try:
        with log_to_stderr():
            result = run(cfg, out, overwrite=args.overwrite)
    finally:
        if ranks is not None:
            import torch

            torch.distributed.destroy_process_group()
    if ranks is None or ranks.is_main:
        _print_summary(result, out)
    return 0


def _train_rank(cfg: RunConfig, out: str, threads: int | None, overwrite: bool) -> None:
    """One of ``graphrec train --nproc N``'s ranks (the process group is joined)."""
    import torch

    from graphrec.distributed import current_ranks
    from graphrec.experiment import run

    if threads:
        torch.set_num_threads(threads)
    with log_to_stderr():
        result = run(cfg, out, overwrite=overwrite)
    ranks = current_ranks()
    if ranks is None or ranks.is_main:
        _print_summary(result, out)


@contextmanager
def log_to_stderr(level: int = logging.INFO) -> Iterator[None]:
    """Show graphrec's log records (one line per training epoch) on stderr, as plain
    messages, while the block runs.

    The records stop at the ``graphrec`` logger, so a logging set-up of the caller's
    does not print them twice; the handler is removed afterwards.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("graphrec")
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.level, log.propagate = saved


#: Files of a run folder named in the closing line, when the run wrote them.
_RUN_FILES = ("results.json", "metrics.jsonl", "best.pt", "final.pt")


def rounded(value: Any, digits: int = 4) -> Any:
    """``value`` with every float rounded to ``digits`` significant digits (in nested
    dicts and lists too), for output people read; files keep full precision."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def _print_summary(result: RunResult, out: str | None = None) -> None:
    """The run's best epoch and metrics as JSON on stdout (4 significant digits; the run
    folder's ``results.json`` has them in full), then a line on stderr naming the folder."""
    summary = {"best_epoch": result.fit.best_epoch, "valid": result.fit.best_metrics,
               "test": result.test}
    if result.selected_test is not None:
        summary["selected_test"] = result.selected_test
    print(json.dumps(rounded(summary), indent=1), flush=True)
    if out is not None:
        files = [name for name in _RUN_FILES if (Path(out) / name).exists()]
        listed = f" ({', '.join(files)})" if files else ""
        print(f"graphrec: run saved to {out}{listed}", file=sys.stderr)


def _evaluate(args: argparse.Namespace) -> int:
    from graphrec.experiment import evaluate_test, load_run

    cfg, split, model = load_run(args.run)
    print(json.dumps(evaluate_test(model, split, cfg), indent=1))
    return 0


def _recommend(args: argparse.Namespace) -> int:
    from graphrec.experiment import load_run
    from graphrec.serving import parse_user_id, read_users_file, recommend_frame

    if args.k < 1:
        raise UsageError(f"--k: expected a number of items >= 1, got {args.k}")
    _, _, model = load_run(args.run)
    user_map = model.graph.user_map
    if args.all:
        users = user_map.raw.tolist()
    elif args.users_file is not None:
        users = read_users_file(args.users_file, user_map, unknown=args.unknown)
    else:
        users = [parse_user_id(u, user_map) for u in args.users]
    frame = recommend_frame(model, users, args.k, exclude_seen=not args.include_seen,
                            unknown=args.unknown)
    frame = _with_titles(frame, args.run)
    print(frame.to_csv(index=False) if args.csv else frame.to_string(index=False))
    return 0


def _with_titles(frame: Any, run: str) -> Any:
    """``frame`` with a ``title`` column after ``item`` when the run's dataset names its
    items (MovieLens titles); unchanged otherwise."""
    from graphrec.run_folder import load_item_titles

    titles = load_item_titles(run)
    if titles is not None:
        frame.insert(frame.columns.get_loc("item") + 1, "title", frame["item"].map(titles))
    return frame


def _export(args: argparse.Namespace) -> int:
    from graphrec.experiment import load_run
    from graphrec.serving import check_new_file, embedding_table, score_table, write_parquet

    if args.k < 1:
        raise UsageError(f"--k: expected a number of items >= 1, got {args.k}")
    if not args.out.endswith(".parquet"):
        raise UsageError(f"--out: expected a .parquet file name, got {args.out!r}")
    check_new_file(args.out, args.overwrite)  # before loading the model: fail fast
    _, _, model = load_run(args.run)
    if args.what == "embeddings":
        table = embedding_table(model)
    else:
        table = _with_titles(score_table(model, args.k, exclude_seen=not args.include_seen),
                             args.run)
    write_parquet(table, args.out, overwrite=args.overwrite)
    print(f"wrote {len(table)} rows to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = _Parser(prog="graphrec", description="Graph-based recommendation with attention.")
    parser.add_argument("--version", action="version", version=f"graphrec {__version__}")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    # Global options are accepted after the subcommand too; SUPPRESS keeps a value given
    # before it from being reset by the subcommand's default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", type=int, default=argparse.SUPPRESS, help="CPU threads for torch")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", parents=[common], help="train a model from a YAML config and evaluate it")
    p.add_argument("--config", help="YAML config file (default: built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config key, e.g. --set train.epochs=5 (repeatable)")
    p.add_argument("--out", help="run directory for checkpoints, metrics and results")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run in the --out folder (refused without it)")
    p.add_argument("--print-config", action="store_true", help="print the documented default config and exit")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train with N data-parallel processes on this machine (gloo on the CPU, "
                        "NCCL on GPUs); for several machines launch 'torchrun ... -m graphrec "
                        "train' instead, see docs/distributed.md")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", parents=[common], help="evaluate a trained run on its test split")
    p.add_argument("--run", required=True, help="run directory written by 'graphrec train'")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("recommend", parents=[common], help="top-k items for users (raw ids in and out)")
    p.add_argument("--run", required=True, help="run directory written by 'graphrec train'")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", nargs="+", help="raw user ids")
    who.add_argument("--users-file", metavar="FILE", help="file of raw user ids, one per line")
    who.add_argument("--all", action="store_true", help="every user the run knows")
    p.add_argument("--unknown", choices=["error", "popular"], default="error",
                   help="users the run does not know: an error (default), or the most popular "
                        "training items, marked 'popular' in a 'source' column")
    p.add_argument("--k", type=int, default=10, help="items per user")
    p.add_argument("--include-seen", action="store_true", help="keep items seen in training")
    p.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    p.set_defaults(func=_recommend)

    p = sub.add_parser("export", parents=[common],
                       help="write embeddings or every user's top-k items to a Parquet file")
    p.add_argument("--run", required=True, help="run directory written by 'graphrec train'")
    p.add_argument("--what", required=True, choices=["embeddings", "scores"],
                   help="embeddings: one row per user and item (kind, id, e0..); "
                        "scores: top-k items per user (user, rank, item, score; "
                        "a title after item when the dataset has titles)")
    p.add_argument("--out", required=True, help="Parquet file to write")
    p.add_argument("--k", type=int, default=10, help="items per user for --what scores")
    p.add_argument("--include-seen", action="store_true", help="keep items seen in training")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=_export)
    return parser


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other user error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


class UsageError(Exception):
    """The command line itself is wrong (unknown option, missing argument)."""


def _graphrec_errors() -> tuple[type[Exception], ...]:
    """graphrec's own user-error types (imported here, not at the top, so that ``--help``
    does not load torch)."""
    from graphrec.config import ConfigError
    from graphrec.data.errors import DataError
    from graphrec.run_folder import RunError

    return (ConfigError, DataError, RunError)


def user_errors() -> tuple[type[BaseException], ...]:
    """What a user can get wrong: each ends as one line on stderr and exit code 2.
    Anything else is a bug in graphrec and keeps its traceback."""
    return (UsageError, *_graphrec_errors(), FloatingPointError, OSError)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, _graphrec_errors()):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    text = " ".join(str(exc).split())  # one line, whatever the message holds
    return text if len(text) <= 2000 else text[:2000] + "…"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``graphrec`` command.

    Returns 0 on success and 2 on a user error (bad option, config, data or run folder),
    reported as one line ``graphrec: error: ...`` on stderr; warnings about the data
    (a changed source file) are lines ``graphrec: warning: ...``.
    """
    from graphrec.run_folder import SourceChangedWarning

    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SourceChangedWarning)
            return _dispatch(argv)
    except Exception as exc:
        if not isinstance(exc, user_errors()):
            raise
        print(f"graphrec: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("graphrec: interrupted", file=sys.stderr)
        return 130
    finally:
        # Shown once the recording has stopped, so showwarning prints them.
        for w in caught:
            if issubclass(w.category, SourceChangedWarning):
                print(f"graphrec: warning: {w.message}", file=sys.stderr)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _dispatch(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads: expected a number >= 1, got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
