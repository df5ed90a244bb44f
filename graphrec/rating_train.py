"""The rating trainer's former home, kept so that ``from graphrec.rating_train import ...``
keeps working; the code lives in :mod:`graphrec.training.rating`."""

from graphrec.training.config import RatingTrainConfig
from graphrec.training.rating import RatingTrainer, RatingTrainResult

__all__ = ["RatingTrainConfig", "RatingTrainResult", "RatingTrainer"]
