"""The ranking trainer's former home, kept so that ``from graphrec.train import ...``
keeps working; the code lives in :mod:`graphrec.training`."""

from graphrec.training.checkpoints import atomic_write_bytes, save_checkpoint, write_metrics
from graphrec.training.config import TrainConfig
from graphrec.training.loop import EpochLoop, TrainResult, adam, epoch_rng, resolve_device
from graphrec.training.ranking import Trainer

__all__ = ["EpochLoop", "TrainConfig", "TrainResult", "Trainer", "adam", "atomic_write_bytes",
           "epoch_rng", "resolve_device", "save_checkpoint", "write_metrics"]
