import subprocess
import sys

from graphrec.scoring import LOSSES
from graphrec.training.config import LOSS_NAMES


def test_loss_names_are_the_scoring_losses():
    assert sorted(LOSS_NAMES) == sorted(LOSSES)


def test_the_configs_import_no_training_code_and_no_torch():
    # The run configuration sits at the bottom of the import graph: reading settings
    # must not load torch, the models or the trainers.
    code = ("import sys, graphrec.config, graphrec.training.config; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('graphrec.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = eval(out.stdout)
    assert loaded == ["graphrec.config", "graphrec.training", "graphrec.training.config"]


def test_the_old_module_paths_still_import():
    from graphrec.rating_train import RatingTrainer
    from graphrec.train import Trainer, save_checkpoint
    from graphrec.training import RatingTrainer as R
    from graphrec.training import Trainer as T
    from graphrec.training.checkpoints import save_checkpoint as s

    assert (Trainer, RatingTrainer, save_checkpoint) == (T, R, s)
