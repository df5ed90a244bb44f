"""What a run shows while it trains: epoch log lines, metrics.jsonl, bars, TensorBoard."""

import json
import logging
import re
import sys

import numpy as np
import pytest
import torch

from graphrec.data import Interactions, RecGraph
from graphrec.data.splits import per_user_split
from graphrec.models import MF
from graphrec.training import TrainConfig, Trainer
from graphrec.training.reporting import (
    TensorBoardLogger,
    epoch_line,
    progress_bar,
    tensorboard_dir,
)

EPOCH_LINE = re.compile(r"^epoch (\d+)  loss \d\.\d{1,4}(e-\d+)?  valid recall@10 \d\.?\d{0,4}"
                        r"(e-\d+)?( \(best\))?  \d+\.\d s$")


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(80), 10)
    # ten distinct items of the user's own taste group (four groups of 15 items)
    items = np.concatenate([(u % 4) * 15 + rng.choice(15, 10, replace=False) for u in range(80)])
    log = Interactions.from_arrays(users, items, num_users=80, num_items=60)
    return per_user_split(log, ratios=(0.7, 0.15, 0.15), seed=0)


def fit(split, **kw):
    torch.manual_seed(0)
    cfg = dict(epochs=3, batch_size=128, lr=0.01, patience=0, seed=3, ks=(10,),
               monitor="recall@10", device="cpu")
    cfg.update(kw)
    return Trainer(MF(RecGraph(split.train), dim=8), split.valid, TrainConfig(**cfg)).fit()


def test_one_rounded_line_is_logged_per_epoch(split, caplog):
    with caplog.at_level(logging.INFO, logger="graphrec.training"):
        result = fit(split)
    lines = [r.getMessage() for r in caplog.records if r.name == "graphrec.training"]
    assert len(lines) == 3
    for epoch, line in enumerate(lines, start=1):
        assert EPOCH_LINE.match(line), line
        assert line.startswith(f"epoch {epoch}  ")
    assert "(best)" in lines[result.best_epoch - 1]
    assert "{" not in "".join(lines)  # no dict reprs


def test_progress_false_logs_nothing(split, caplog):
    with caplog.at_level(logging.INFO, logger="graphrec.training"):
        fit(split, epochs=1, progress=False)
    assert not [r for r in caplog.records if r.name == "graphrec.training"]


def test_epoch_line_rounds_for_people():
    row = {"epoch": 3, "loss": 0.214123456789, "epoch_seconds": 12.4321,
           "valid_recall@20": 0.153212345, "valid_ndcg@20": 0.1}
    assert epoch_line(row, "loss", "recall@20", best=True) == \
        "epoch 3  loss 0.2141  valid recall@20 0.1532 (best)  12.4 s"
    assert epoch_line({"epoch": 4, "train_mse": 1.23456, "epoch_seconds": 0.04}, "train_mse",
                      "rmse", best=False) == "epoch 4  train_mse 1.235  0.0 s"


def test_metrics_jsonl_holds_one_full_precision_line_per_epoch(split, tmp_path):
    result = fit(split, run_dir=str(tmp_path), progress=False)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows == result.history  # full precision, as in metrics.json
    assert rows == json.loads((tmp_path / "metrics.json").read_text())
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


def test_the_bar_is_drawn_on_a_terminal_only(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert progress_bar(range(3), "epoch 1", True).disable
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress_bar(range(3), "epoch 1", True)
    try:
        assert not bar.disable and bar.mininterval >= 1.0 and not bar.leave
    finally:
        bar.close()
    assert progress_bar(range(3), "epoch 1", False).disable


def test_tensorboard_folder_setting(tmp_path):
    assert tensorboard_dir(False, tmp_path) is None
    assert tensorboard_dir(True, tmp_path) == tmp_path / "tensorboard"
    assert tensorboard_dir(str(tmp_path / "tb"), None) == tmp_path / "tb"
    with pytest.raises(ValueError, match="run_dir"):
        tensorboard_dir(True, None)


def test_tensorboard_missing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r'pip install "graphrec\[tensorboard\]"'):
        TensorBoardLogger(tmp_path)


def test_tensorboard_logs_loss_and_every_metric(split, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit(split, epochs=2, run_dir=str(tmp_path), progress=False, tensorboard=True)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss", "valid_recall@10", "valid_ndcg@10", "epoch_seconds"} <= tags
    assert [e.step for e in events.Scalars("loss")] == [1, 2]
