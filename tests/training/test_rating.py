import json

import numpy as np
import pytest
import torch

from graphrec.data import RecGraph
from graphrec.data.splits import random_split
from graphrec.datasets import synthetic
from graphrec.models.mf_rating import MFRating
from graphrec.models.rating import edge_ratings
from graphrec.training import RatingTrainConfig, RatingTrainer


@pytest.fixture(scope="module")
def split():
    # FilmTrust-like: explicit ratings, ~1.5k ratings over a few hundred users and items.
    data = synthetic(num_users=200, num_items=150, num_communities=5, avg_degree=12, seed=3)
    return random_split(data.interactions, (0.8, 0.1, 0.1), seed=0)


def config(**kw):
    base = dict(epochs=30, batch_size=128, lr=1e-2, l2=0.05, patience=3, progress=False,
                device="cpu")
    base.update(kw)
    return RatingTrainConfig(**base)


def rmse_of_mean(train, target):
    return float(np.sqrt(np.mean((target.rating - train.rating.mean()) ** 2)))


def test_mf_beats_the_global_mean(split):
    torch.manual_seed(0)
    model = MFRating(RecGraph(split.train), split.train, dim=8)
    trainer = RatingTrainer(model, split.valid, config())
    fit = trainer.fit()
    test = trainer.evaluate(split.test)
    assert test["rmse"] < 0.93 * rmse_of_mean(split.train, split.test)
    assert test["mae"] < test["rmse"]
    assert fit.best_metrics["rmse"] == min(r["valid_rmse"] for r in fit.history)


def test_early_stopping_restores_the_best_epoch(split):
    # No regularisation and a large step: validation RMSE turns up after a few epochs.
    torch.manual_seed(0)
    model = MFRating(RecGraph(split.train), split.train, dim=32, init_std=0.1)
    trainer = RatingTrainer(model, split.valid, config(l2=0.0, lr=5e-2, patience=2, epochs=50))
    fit = trainer.fit()
    assert fit.stopped == "early"
    assert fit.best_epoch == len(fit.history) - 2
    assert fit.history[-1]["valid_rmse"] > fit.best_metrics["rmse"]
    # The restored weights reproduce the best epoch's validation error.
    restored = trainer.evaluate(split.valid)["rmse"]
    assert restored == pytest.approx(fit.best_metrics["rmse"], abs=1e-9)


def test_run_dir_resume_gives_the_same_weights(split, tmp_path):
    def run(epochs, run_dir, resume=False):
        torch.manual_seed(0)
        model = MFRating(RecGraph(split.train), split.train, dim=8)
        cfg = config(epochs=epochs, patience=0, run_dir=str(run_dir), resume=resume)
        fit = RatingTrainer(model, split.valid, cfg).fit()
        return model, fit

    full, _ = run(4, tmp_path / "full")
    run(2, tmp_path / "part")
    resumed, fit = run(4, tmp_path / "part", resume=True)
    assert [r["epoch"] for r in fit.history] == [1, 2, 3, 4]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for name in ("last.pt", "best.pt", "metrics.csv", "metrics.json"):
        assert (tmp_path / "part" / name).is_file()
    rows = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert {"train_mse", "valid_rmse", "valid_mae"} <= set(rows[0])
    assert not list((tmp_path / "part").glob(".*.tmp"))


def test_predictions_are_clipped_to_the_training_range(split):
    model = MFRating(RecGraph(split.train), split.train, dim=4)
    with torch.no_grad():
        model.user_bias.weight.fill_(10.0)
    users, items = torch.tensor([0, 1]), torch.tensor([0, 1])
    assert (model.predict(users, items) == model.rating_max).all()
    assert (model.predict(users, items, clip=False) > model.rating_max).all()


def test_duplicate_pairs_get_their_mean_rating():
    from graphrec.data import Interactions

    inter = Interactions.from_arrays([0, 0, 1, 0], [1, 1, 0, 2], rating=[2.0, 4.0, 5.0, 1.0])
    g = RecGraph(inter)
    np.testing.assert_allclose(edge_ratings(g, inter), [3.0, 1.0, 5.0])


def test_config_and_input_checks(split):
    with pytest.raises(ValueError, match="batch_size"):
        RatingTrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        RatingTrainConfig(lr=-1.0)
    model = MFRating(RecGraph(split.train), split.train)
    no_ratings = split.valid.subset(np.arange(len(split.valid)))
    no_ratings.rating = None
    with pytest.raises(ValueError, match="no ratings"):
        RatingTrainer(model, no_ratings, config())
