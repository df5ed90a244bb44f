"""The YAML configs shipped in examples/configs load, validate and run."""

from pathlib import Path

import pytest

from graphrec.config import load_config
from graphrec.experiment import is_rating_model, rating_train_config, run

FOLDER = Path(__file__).resolve().parents[1] / "examples" / "configs"
CONFIGS = sorted(FOLDER.glob("*.yaml"))


def test_there_are_example_configs():
    assert {p.stem for p in CONFIGS} >= {"filmtrust_graphrec", "lastfm_social_gat", "gowalla_lightgcn"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_example_config_is_valid(path):
    cfg = load_config(path)
    assert path.stem.startswith(cfg.data.dataset)
    if is_rating_model(cfg.model):
        rating_train_config(cfg.train)  # refuses ranking-only keys


@pytest.mark.slow
@pytest.mark.parametrize("name, metric", [("filmtrust_graphrec", "rmse"), ("lastfm_social_gat", "recall@20")])
def test_small_example_configs_run_one_epoch(name, metric, data_folder, tmp_path):
    folder = data_folder(name.split("_")[0])
    cfg = load_config(FOLDER / f"{name}.yaml", [f"data.root={folder.parent}", "train.epochs=1",
                                                 "train.progress=false"])
    result = run(cfg, tmp_path)
    assert result.model.graph.social is not None and result.model.graph.social.nnz > 0
    assert 0 < result.test[metric] < 5
