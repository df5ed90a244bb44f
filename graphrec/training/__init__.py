"""Training: the epoch loop, the ranking and rating trainers, checkpoints.

Modules, from the bottom of the import graph up:

* :mod:`graphrec.training.config` — :class:`TrainConfig` and :class:`RatingTrainConfig`
  (plain dataclasses; importing them loads no training code);
* :mod:`graphrec.training.checkpoints` — atomic writes of checkpoints and metrics;
* :mod:`graphrec.training.reporting` — epoch log lines, progress bars, TensorBoard;
* :mod:`graphrec.training.loop` — :class:`EpochLoop`, the loop both trainers share;
* :mod:`graphrec.training.ranking` — :class:`Trainer` for ranking models;
* :mod:`graphrec.training.rating` — :class:`RatingTrainer` for rating models.

The names are importable from here (``from graphrec.training import Trainer``); they are
loaded on first use, so that ``graphrec.training.config`` stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "config", "RatingTrainConfig": "config", "LOSS_NAMES": "config",
    "atomic_write_bytes": "checkpoints", "save_checkpoint": "checkpoints",
    "write_metrics": "checkpoints",
    "EpochLoop": "loop", "TrainResult": "loop", "adam": "loop", "epoch_rng": "loop",
    "resolve_device": "loop",
    "TensorBoardLogger": "reporting",
    "Trainer": "ranking",
    "RatingTrainer": "rating", "RatingTrainResult": "rating",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy: importing the config must not import torch and the models.
    if name not in _EXPORTS:
        raise AttributeError(f"module 'graphrec.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"graphrec.training.{_EXPORTS[name]}"), name)
