"""What a training run shows while it runs: epoch log lines, progress bars, TensorBoard.

* Every epoch is one line on the logger ``graphrec.training`` (level INFO), e.g.
  ``epoch 3  loss 0.2141  valid recall@20 0.1532 (best)  12.4 s``. The library only
  logs; whoever runs it decides where lines go (``graphrec train`` prints them on
  stderr; a script calls ``logging.basicConfig(level=logging.INFO)``).
* The per-batch tqdm bar is drawn only on a terminal and at most about once a second:
  output redirected to a file holds the epoch lines, not a redrawn bar per batch.
* :class:`TensorBoardLogger` writes each epoch's row as TensorBoard scalars; it is an
  ``on_epoch_end(trainer, row)`` hook, which the loop installs when the config asks.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from graphrec._optional import require

#: The logger that receives one line per epoch.
logger = logging.getLogger("graphrec.training")


def _number(value: float) -> str:
    """A loss or metric for people: four significant digits."""
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def epoch_line(row: Mapping[str, Any], loss_key: str, monitor: str, best: bool) -> str:
    """One short line for an epoch's ``row`` of the history.

    Shows the training loss, the monitored validation metric (when the epoch was
    validated, marked ``(best)`` when it is the best so far) and the epoch's training
    time; every value is in ``metrics.jsonl`` at full precision.
    """
    parts = [f"epoch {row['epoch']}"]
    if loss_key in row:
        parts.append(f"{loss_key} {_number(row[loss_key])}")
    shown = f"valid_{monitor}"
    if shown in row:
        parts.append(f"valid {monitor} {_number(row[shown])}" + (" (best)" if best else ""))
    if "epoch_seconds" in row:
        parts.append(f"{row['epoch_seconds']:.1f} s")
    return "  ".join(parts)


def stderr_is_terminal() -> bool:
    """Whether stderr, where tqdm draws, is a terminal (not a file, pipe or notebook)."""
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def progress_bar(iterable: Iterable[Any], desc: str, enabled: bool) -> tqdm:
    """A per-batch bar over ``iterable``: drawn only when ``enabled`` and stderr is a
    terminal, redrawn at most once a second, and erased when the epoch ends (its line
    is logged instead)."""
    return tqdm(iterable, desc=desc, disable=not (enabled and stderr_is_terminal()),
                leave=False, mininterval=1.0)


def tensorboard_dir(setting: bool | str, run_dir: Path | None) -> Path | None:
    """The folder of the ``tensorboard`` setting: ``run_dir/tensorboard`` for ``True``,
    the given path for a string, ``None`` when off.

    Raises:
        ValueError: ``True`` without a run folder to put the logs in.
    """
    if setting is False or setting == "":
        return None
    if setting is True:
        if run_dir is None:
            raise ValueError("tensorboard=True writes under run_dir/tensorboard; give a "
                             "run_dir, or a folder as tensorboard='path'")
        return run_dir / "tensorboard"
    return Path(setting)


class TensorBoardLogger:
    """An ``on_epoch_end(trainer, row)`` hook writing every number of the row (loss,
    timings, validation metrics) as a TensorBoard scalar at step ``row["epoch"]``.

    Needs the ``tensorboard`` package (``pip install "graphrec[tensorboard]"``); view the
    logs with ``tensorboard --logdir FOLDER``.

    Args:
        folder: where the event files go (created when missing).

    Raises:
        ImportError: tensorboard is not installed.
    """

    def __init__(self, folder: str | Path) -> None:
        require("tensorboard", "tensorboard", "TensorBoard logging (train.tensorboard)")
        writer_module = require("torch.utils.tensorboard", "tensorboard",
                                "TensorBoard logging (train.tensorboard)")
        self.folder = Path(folder)
        self.writer = writer_module.SummaryWriter(log_dir=str(self.folder))

    def __call__(self, trainer: Any, row: Mapping[str, Any]) -> None:
        """Write the epoch's numbers; names keep the history's keys (``loss``,
        ``valid_recall@20`` ...)."""
        step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
