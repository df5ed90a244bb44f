"""``data.train_path`` / ``valid_path`` / ``test_path``: a split made beforehand."""

import numpy as np
import pandas as pd
import pytest

from graphrec.config import ConfigError, load_config
from graphrec.config_check import validate_config
from graphrec.experiment import prepare_data, run


def _write(tmp_path, name, rows, fmt="csv"):
    frame = pd.DataFrame(rows, columns=["user", "item"])
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def _log(seed, n=400):
    rng = np.random.default_rng(seed)
    return list({(f"u{u}", f"i{i}") for u, i in zip(rng.integers(0, 30, n), rng.integers(0, 25, n))})


@pytest.fixture
def files(tmp_path):
    rows = _log(0)
    train, valid, test = rows[:250], rows[250:300], rows[300:]
    # Test in Parquet: each file may have any supported format.
    return (_write(tmp_path, "train", train), _write(tmp_path, "valid", valid),
            _write(tmp_path, "test", test, "parquet"), (train, valid, test))


def _keys(train, test, valid=None):
    keys = ["data.dataset=file", "data.split=given", f"data.train_path={train}",
            f"data.test_path={test}"]
    return keys + ([f"data.valid_path={valid}"] if valid else [])


def test_three_files_share_one_id_map(files):
    train, valid, test, rows = files
    split = prepare_data(load_config(None, _keys(train, test, valid)).data).split
    assert split.train.user_map is split.test.user_map is split.valid.user_map
    assert [len(split.train), len(split.valid), len(split.test)] == [len(r) for r in rows]
    got = set(zip(split.test.user_map.to_raw(split.test.user).tolist(),
                  split.test.item_map.to_raw(split.test.item).tolist()))
    assert got == set(rows[2])


def test_without_valid_path_validation_is_carved_from_train(files):
    train, _, test, rows = files
    cfg = load_config(None, [*_keys(train, test), "data.valid_ratio=0.2"])
    split = prepare_data(cfg.data).split
    assert len(split.valid) > 0 and len(split.train) + len(split.valid) == len(rows[0])
    assert len(split.test) == len(rows[2])


def test_a_pre_split_run_trains(files, tmp_path):
    train, valid, test, _ = files
    cfg = load_config(None, [*_keys(train, test, valid), "model.name=mf", "model.dim=4",
                             "train.epochs=1", "train.progress=false"])
    result = run(cfg, tmp_path / "run")
    assert "recall@20" in result.test


@pytest.mark.parametrize("extra, message", [
    (["data.path=x.csv"], "give either data.path"),
    (["data.split=per_user"], "need split: given"),
    (["data.dataset=synthetic"], "pre-split files need data.dataset: file"),
    (["data.min_user_interactions=3"], "not applied to pre-split files"),
])
def test_bad_pre_split_configs_are_refused(files, extra, message):
    train, valid, test, _ = files
    with pytest.raises(ConfigError, match=message):
        validate_config(load_config(None, [*_keys(train, test, valid), *extra]))


def test_a_missing_pre_split_file_is_named(files, tmp_path):
    train, valid, _, _ = files
    missing = tmp_path / "nope.csv"
    with pytest.raises(ConfigError, match=f"data.test_path: {missing}: no such file"):
        validate_config(load_config(None, _keys(train, missing, valid)))
    cfg = load_config(None, ["data.dataset=file", "data.split=given", f"data.train_path={train}"])
    with pytest.raises(ConfigError, match="data.test_path: required"):
        validate_config(cfg)
