"""Config values and files that must be refused before any data is read.

Every case asserts a ConfigError that names the key (or file) and what was expected.
"""

from __future__ import annotations

import time

import pytest
import torch

from graphrec.config import ConfigError, load_config
from graphrec.config_check import validate_config

# (override, words the message must hold)
BAD_VALUES = [
    ("train.lr=-0.001", ["train.lr", "> 0"]),
    ("train.lr=0", ["train.lr", "> 0"]),
    ("train.lr=.nan", ["train.lr", "finite value"]),
    ("train.lr=.inf", ["train.lr", "finite value"]),
    ("train.l2=-1", ["train.l2", ">= 0"]),
    ("train.weight_decay=-0.1", ["train.weight_decay"]),
    ("train.patience=-1", ["train.patience", ">= 0"]),
    ("train.max_minutes=-5", ["train.max_minutes"]),
    ("train.monitor=recal@20", ["train.monitor", "recall"]),
    ("train.monitor=recall", ["train.monitor", "metric@k"]),
    ("train.monitor=recall@0", ["train.monitor"]),
    ("train.monitor=recall@50", ["train.monitor", "train.ks"]),
    ("train.monitor=@20", ["train.monitor"]),
    ("train.device=cdua", ["train.device", "'cdua'"]),
    ("train.device=gpu", ["train.device"]),
    ("train.device=cuda:99", ["train.device"]),
    ("train.ks=[0]", ["train.ks"]),
    ("train.epochs=0", ["epochs", ">= 1"]),
    ("train.batch_size=-3", ["batch_size"]),
    ("train.loss=hinge", ["loss"]),
    ("train.lr_decay=0", ["lr_decay"]),
    ("data.ratios=[.nan,0.5,0.5]", ["data.ratios", "finite"]),
    ("data.ratios=[0.5,0.5,0.5]", ["data.ratios", "summing to 1"]),
    ("data.ratios=[-0.2,0.6,0.6]", ["data.ratios"]),
    ("data.ratios=[1.0]", ["data.ratios"]),
    ("data.ratios=[0,0.5,0.5]", ["data.ratios", "train > 0"]),
    ("data.ratios=[.inf,0,0]", ["data.ratios"]),
    ("data.valid_ratio=1.0", ["data.valid_ratio"]),
    ("data.valid_ratio=-0.1", ["data.valid_ratio"]),
    ("data.rating_threshold=.nan", ["data.rating_threshold"]),
    ("data.dataset=netflix", ["data.dataset", "synthetic"]),
    ("data.split=by_moon", ["data.split"]),
    ("data.social=friends", ["data.social"]),
    ("data.dataset=file", ["data.path", "required"]),
    ("data.social=file", ["data.social_path", "required"]),
    ("data.min_user_interactions=-1", ["data.min_user_interactions"]),
    ("data.synthetic_users=0", ["data.synthetic_users"]),
    ("model.name=transformer", ["model.name"]),
    ("model.dim=0", ["model.dim", ">= 1"]),
    ("model.layers=-1", ["model.layers"]),
    ("model.heads=0", ["model.heads"]),
    ("model.dropout=1.5", ["model.dropout"]),
    ("model.dropout=1.0", ["model.dropout"]),
    ("model.scorer=euclid", ["model.scorer"]),
    ("eval.ks=[0,10]", ["eval.ks"]),
    ("eval.ks=[]", ["eval.ks"]),
    ("eval.memory_budget_mb=0", ["eval.memory_budget_mb"]),
    ("train.epochs=five", ["train.epochs", "integer"]),
    ("train.lr=fast", ["train.lr", "number"]),
    ("model.use_social=maybe", ["model.use_social", "true or false"]),
]


@pytest.mark.parametrize("override,words", BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_values_are_refused_before_any_work(override, words):
    with pytest.raises(ConfigError) as err:
        validate_config(load_config(None, [override]))
    for word in words:
        assert word in str(err.value), str(err.value)


def test_cuda_is_refused_where_there_is_none():
    if torch.cuda.is_available():
        validate_config(load_config(None, ["train.device=cuda"]))
    else:
        with pytest.raises(ConfigError, match="no CUDA device"):
            validate_config(load_config(None, ["train.device=cuda"]))


def test_the_defaults_are_valid():
    validate_config(load_config(None))


# ---------------------------------------------------------------------- files
def _deep(n: int) -> str:
    return "train:\n  ks: " + "[" * n + "]" * n + "\n"


BOMB = "\n".join([
    "a: &a [x, x, x, x, x, x, x, x, x]",
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]",
    "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]",
    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]",
    "train: {ks: *g}",
])

# (name, file content, words the message must hold)
BAD_FILES = [
    ("binary", bytes(range(256)), ["not UTF-8"]),
    ("NUL bytes", b"train:\n  epochs: 3\x00\n", ["NUL"]),
    ("latin-1", "train:\n  device: caf\xe9\n".encode("latin-1"), ["not UTF-8"]),
    ("5000 deep", _deep(5000), ["deeper than"]),
    ("alias bomb", BOMB, ["expands to more than"]),
    ("unclosed bracket", "train: {epochs: [1,\n", ["not valid YAML"]),
    ("tab indentation", "train:\n\tepochs: 3\n", ["not valid YAML"]),
    ("a list at the top", "- train\n- model\n", ["expected a mapping"]),
    ("section is a list", "train: [1, 2]\n", ["train", "mapping"]),
    ("unknown section", "trian: {epochs: 3}\n", ["unknown section", "trian"]),
    ("unknown key", "train: {epoch: 3}\n", ["unknown key", "epoch"]),
    ("huge", "# " + "x" * 1_100_000 + "\n", ["at most"]),
]


@pytest.mark.parametrize("name,content,words", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_config_files_are_refused_cheaply(write, name, content, words):
    path = write("run.yaml", content)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert time.perf_counter() - start < 2.0
    assert len(message) < 1000, len(message)  # never the expanded value
    assert "run.yaml" in message
    for word in words:
        assert word in message, message


def test_a_folder_or_missing_file_as_config(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("override,words", [
    ("train.ks=[1,", ["override", "not valid YAML"]),
    ("train.epochs", ["expected section.key=value"]),
    ("epochs=3", ["expected section.key=value"]),
    ("train.ks=" + "[" * 500 + "]" * 500, ["deeper than"]),
    ("train.monitor=" + "x" * 100_000, ["train.monitor"]),
], ids=["unclosed", "no value", "no section", "deep", "long value"])
def test_bad_overrides(override, words):
    with pytest.raises(ConfigError) as err:
        validate_config(load_config(None, [override]))
    assert len(str(err.value)) < 1000
    for word in words:
        assert word in str(err.value)
