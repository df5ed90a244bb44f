"""Every value of a :class:`~graphrec.config.RunConfig` checked at once, before any work.

Types are checked when a config is read (:mod:`graphrec.config`); this module checks
what the values mean: names that must be one of a list, numbers that must be finite and
positive, a device that must exist here, a monitored metric the training reports. A
mistake is found in a second, not after the data are read or an epoch has run.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from graphrec.config import ConfigError, DataConfig, EvalConfig, ModelConfig, RunConfig, snippet
from graphrec.evaluate import SCORE_BACKENDS
from graphrec.train import TrainConfig


def validate_config(cfg: RunConfig) -> None:
    """Raise :class:`ConfigError` naming the first invalid key of ``cfg`` (``section.key``)."""
    _check_data(cfg.data)
    rating = _check_model(cfg.model)
    _check_train(cfg.train, cfg.model, rating)
    _check_eval(cfg.eval)
    if cfg.train.score_backend not in ("auto", cfg.eval.score_backend):
        raise ConfigError(f"train.score_backend: validation scores with eval.score_backend "
                          f"({cfg.eval.score_backend!r}); set that key instead of "
                          f"train.score_backend={cfg.train.score_backend!r}")


def _fail(key: str, expected: str, value: object) -> None:
    raise ConfigError(f"{key}: expected {expected}, got {snippet(value)}")


def _one_of(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        _fail(key, f"one of {list(allowed)}", value)


def _finite(key: str, value: float, low: float | None = None, *, strict: bool = False,
            high: float | None = None) -> None:
    """``value`` finite and above ``low`` (strictly with ``strict``) and at most ``high``."""
    ok = math.isfinite(value) and (low is None or (value > low if strict else value >= low)) \
        and (high is None or value <= high)
    if not ok:
        bounds = [] if low is None else [f"{'>' if strict else '>='} {low:g}"]
        bounds += [] if high is None else [f"<= {high:g}"]
        _fail(key, "a finite value" + (f" {' and '.join(bounds)}" if bounds else ""), value)


def _check_data(d: DataConfig) -> None:
    from graphrec.experiment import DATASETS, SOCIAL, SPLITS

    _one_of("data.dataset", d.dataset, DATASETS)
    _one_of("data.split", d.split, SPLITS)
    _one_of("data.social", d.social, SOCIAL)
    pre_split = {k: getattr(d, k) for k in ("train_path", "valid_path", "test_path")
                 if getattr(d, k)}
    if pre_split and d.dataset != "file":
        raise ConfigError(f"data.{next(iter(pre_split))}: pre-split files need "
                          f"data.dataset: file, got {d.dataset!r}")
    if d.dataset == "file" and pre_split:
        if d.path:
            raise ConfigError("data.path: give either data.path (one file, split by graphrec) "
                              "or data.train_path and data.test_path (a split made beforehand), "
                              "not both")
        _check_source("data.train_path", d.train_path, "pre-split files are given")
        _check_source("data.test_path", d.test_path, "pre-split files are given")
        if d.valid_path:
            _check_source("data.valid_path", d.valid_path, "pre-split files are given")
        if d.split != "given":
            raise ConfigError(f"data.split: pre-split files (data.train_path …) need "
                              f"split: given, got {d.split!r}")
        # A given split is used as it is: a filter would silently not apply.
        for key in ("rating_threshold", "min_user_interactions", "min_item_interactions"):
            if getattr(d, key):
                raise ConfigError(f"data.{key}: not applied to pre-split files; filter the "
                                  f"files beforehand or give one data.path to split")
    elif d.dataset == "file":
        _check_source("data.path", d.path, "data.dataset is 'file' (or give data.train_path "
                      "and data.test_path)")
    if d.social == "file":
        _check_source("data.social_path", d.social_path, "data.social is 'file'")
    if len(d.ratios) not in (2, 3) or not all(math.isfinite(r) and r >= 0 for r in d.ratios) \
            or abs(sum(d.ratios) - 1.0) > 1e-6 or d.ratios[0] <= 0:
        _fail("data.ratios", "2 or 3 finite, non-negative fractions (train, [valid,] test) "
              "summing to 1 with train > 0", d.ratios)
    _finite("data.valid_ratio", d.valid_ratio, 0.0)
    if d.valid_ratio >= 1:
        _fail("data.valid_ratio", "a fraction in [0, 1)", d.valid_ratio)
    if d.rating_threshold is not None:
        _finite("data.rating_threshold", d.rating_threshold)
    for key in ("min_user_interactions", "min_item_interactions"):
        if getattr(d, key) < 0:
            _fail(f"data.{key}", "an integer >= 0", getattr(d, key))
    for key in ("synthetic_users", "synthetic_items"):
        if getattr(d, key) < 1:
            _fail(f"data.{key}", "an integer >= 1", getattr(d, key))


def _check_source(key: str, path: str | None, when: str) -> None:
    """A source file must be named and be a file (its contents are checked when read)."""
    if not path:
        raise ConfigError(f"{key}: required when {when}")
    if not Path(path).exists():
        raise ConfigError(f"{key}: {path}: no such file")
    if not Path(path).is_file():
        raise ConfigError(f"{key}: {path}: is a folder; expected a CSV/TSV/Parquet file")


def _check_model(m: ModelConfig) -> bool:
    """Check the model section; returns whether the model predicts ratings."""
    from graphrec.experiment import is_rating_model
    from graphrec.scoring import SCORERS

    rating = is_rating_model(m)  # the name, and keys the model does not read
    for key, low in (("dim", 1), ("heads", 1), ("layers", 0), ("attention_warmup", 0)):
        if getattr(m, key) < low:
            _fail(f"model.{key}", f"an integer >= {low}", getattr(m, key))
    _finite("model.dropout", m.dropout, 0.0, high=1.0)
    if m.dropout >= 1:
        _fail("model.dropout", "a probability in [0, 1)", m.dropout)
    _one_of("model.scorer", m.scorer, tuple(sorted(SCORERS)))
    _finite("model.temperature", m.temperature, 0.0, strict=True)
    return rating


def _check_train(t: TrainConfig, m: ModelConfig, rating: bool) -> None:
    from graphrec.closed_form import is_closed_form
    from graphrec.evaluate import ALL_METRICS

    _finite("train.lr", t.lr, 0.0, strict=True)
    _finite("train.l2", t.l2, 0.0)
    _finite("train.weight_decay", t.weight_decay, 0.0)
    if t.patience < 0:
        _fail("train.patience", "an integer >= 0 (0 = never stop early)", t.patience)
    if t.max_minutes is not None:
        _finite("train.max_minutes", t.max_minutes, 0.0, strict=True)
    if any(k < 1 for k in t.ks):
        _fail("train.ks", "cut-offs >= 1", list(t.ks))
    if not rating:
        metric, at, k = t.monitor.partition("@")
        if metric not in ALL_METRICS or not at or not k.isdigit() or int(k) < 1:
            _fail("train.monitor", f"a metric@k with metric one of {list(ALL_METRICS)}, "
                  f"e.g. 'recall@20'", t.monitor)
        if not is_closed_form(m) and int(k) not in t.ks:
            raise ConfigError(f"train.monitor: {t.monitor!r} needs {k} among train.ks "
                              f"(now {list(t.ks)}); add it, e.g. --set train.ks=[{k}]")
    check_device(t.device)
    _check_tensorboard(t.tensorboard)


def _check_tensorboard(setting: bool | str) -> None:
    """TensorBoard logging needs a folder name (when one is given) and the package."""
    if setting is False:
        return
    if isinstance(setting, str) and not setting.strip():
        _fail("train.tensorboard", "true, false or a folder", setting)
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError('train.tensorboard: needs tensorboard, which is not installed: '
                          'pip install "graphrec[tensorboard]" (or set train.tensorboard: '
                          'false)') from None


def check_device(device: str) -> None:
    """Refuse a device name torch does not know, or one this machine does not have."""
    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        _fail("train.device", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device: {device!r} asked for, but no CUDA device is "
                              f"available here; use 'auto' or 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"train.device: {device!r} asked for, but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device: {device!r} asked for, but MPS is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        _fail("train.device", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", device)


def _check_eval(e: EvalConfig) -> None:
    if not e.ks or any(k < 1 for k in e.ks):
        _fail("eval.ks", "a non-empty list of cut-offs >= 1", e.ks)
    _finite("eval.memory_budget_mb", e.memory_budget_mb, 0.0, strict=True)
    _one_of("eval.score_backend", e.score_backend, SCORE_BACKENDS)
