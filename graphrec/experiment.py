"""From a :class:`~graphrec.config.RunConfig` to a trained, evaluated model.

The ``graphrec`` command and the example scripts share these steps, so the three ways in
(Python API, examples, CLI) give the same result for the same settings.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from graphrec.config import ConfigError, DataConfig, ModelConfig, RunConfig, config_from_dict
from graphrec.data.filtering import binarize, k_core
from graphrec.data.graph import RecGraph
from graphrec.data.interactions import ColumnMap, load_interactions
from graphrec.data.splits import (
    Split,
    holdout_valid,
    leave_one_out,
    per_user_split,
    per_user_temporal_split,
    random_split,
    temporal_split,
)
from graphrec.evaluate import Evaluator
from graphrec.models import MF, LightGCN, Recommender
from graphrec.train import Trainer, TrainResult, atomic_write_bytes, save_checkpoint

DATASETS = ("synthetic", "movielens_small", "filmtrust", "lastfm", "gowalla", "file")
SPLITS = ("per_user", "random", "temporal", "per_user_temporal", "leave_one_out", "given")


def prepare_split(cfg: DataConfig) -> Split:
    """Load the configured dataset, filter it and split it (validation carved from training)."""
    from graphrec import datasets

    if cfg.dataset not in DATASETS:
        raise ConfigError(f"data.dataset: expected one of {list(DATASETS)}, got {cfg.dataset!r}")
    if cfg.split not in SPLITS:
        raise ConfigError(f"data.split: expected one of {list(SPLITS)}, got {cfg.split!r}")
    if cfg.dataset == "file":
        if not cfg.path:
            raise ConfigError("data.path: required when data.dataset is 'file'")
        inter = load_interactions(cfg.path, ColumnMap(cfg.user_col, cfg.item_col, cfg.rating_col,
                                                      cfg.timestamp_col))
        given = None
    elif cfg.dataset == "synthetic":
        ds = datasets.synthetic(num_users=cfg.synthetic_users, num_items=cfg.synthetic_items, seed=cfg.seed)
        inter, given = ds.interactions, ds.split
    else:
        ds = getattr(datasets, cfg.dataset)(root=cfg.root)
        inter, given = ds.interactions, ds.split
    if cfg.split == "given":
        if given is None:
            raise ConfigError(f"data.split: dataset {cfg.dataset!r} comes without a given split; "
                              f"choose one of {list(SPLITS[:-1])}")
        return holdout_valid(given, ratio=cfg.valid_ratio, seed=cfg.seed)
    if inter is None:
        raise ConfigError(f"data.split: dataset {cfg.dataset!r} comes pre-split; use split: given")
    if cfg.rating_threshold is not None:
        inter = binarize(inter, cfg.rating_threshold)
    if cfg.min_user_interactions or cfg.min_item_interactions:
        inter = k_core(inter, user_k=cfg.min_user_interactions, item_k=cfg.min_item_interactions)
    ratios = tuple(cfg.ratios)
    if cfg.split == "leave_one_out":
        return leave_one_out(inter, mode="last" if inter.timestamp is not None else "random", seed=cfg.seed)
    fn = {"per_user": per_user_split, "random": random_split, "temporal": temporal_split,
          "per_user_temporal": per_user_temporal_split}[cfg.split]
    return fn(inter, ratios=ratios, seed=cfg.seed)


def build_model(cfg: ModelConfig, graph: RecGraph) -> Recommender:
    """The configured model on ``graph``."""
    if cfg.name == "mf":
        return MF(graph, dim=cfg.dim, scorer=cfg.scorer)
    if cfg.name == "lightgcn":
        return LightGCN(graph, dim=cfg.dim, num_layers=cfg.layers, scorer=cfg.scorer)
    if cfg.name == "gat":
        from graphrec.models.gat import GATRecommender

        return GATRecommender(graph, dim=cfg.dim, num_layers=cfg.layers, heads=cfg.heads, scorer=cfg.scorer)
    raise ConfigError(f"model.name: expected 'mf', 'lightgcn' or 'gat', got {cfg.name!r}")


@dataclass
class RunResult:
    """Outcome of :func:`run`.

    With ``train.refit``, ``model`` is the refitted model (trained on training +
    validation for ``fit.best_epoch`` epochs) and ``test`` its metrics; ``selected_test``
    holds the test metrics of the model chosen on validation.
    """

    model: Recommender
    split: Split
    fit: TrainResult
    test: dict[str, float]
    selected_test: dict[str, float] | None = None


def evaluate_test(model: Recommender, split: Split, cfg: RunConfig) -> dict[str, float]:
    """Full-ranking test metrics with training and validation items masked."""
    evaluator = Evaluator(exclude=[split.train, split.valid], ks=tuple(cfg.eval.ks),
                          memory_budget_mb=cfg.eval.memory_budget_mb)
    return evaluator.evaluate(model, split.test)


def run(cfg: RunConfig, out_dir: str | Path | None = None) -> RunResult:
    """Prepare data, train with early stopping on validation, evaluate test once.

    With ``out_dir``, the run directory receives ``config.yaml``, the trainer's
    checkpoints and metrics, and ``results.json``.
    """
    torch.manual_seed(cfg.train.seed)
    split = prepare_split(cfg.data)
    graph = RecGraph(split.train)
    model = build_model(cfg.model, graph)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        cfg.train.run_dir = str(out)
        atomic_write_bytes(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False).encode())
    start = time.perf_counter()
    fit = Trainer(model, split.valid, cfg.train).fit()
    test = evaluate_test(model, split, cfg)
    selected_test = None
    if cfg.train.refit and fit.best_epoch > 0:
        selected_test, (model, test) = test, refit(cfg, split, fit.best_epoch, out_dir)
    if out_dir is not None:
        summary = {"best_epoch": fit.best_epoch, "stopped": fit.stopped, "valid": fit.best_metrics,
                   "test": test, "seconds": time.perf_counter() - start}
        if selected_test is not None:
            summary["selected_test"] = selected_test
        atomic_write_bytes(Path(out_dir) / "results.json", json.dumps(summary, indent=1).encode())
    return RunResult(model, split, fit, test, selected_test)


def refit(cfg: RunConfig, split: Split, epochs: int,
          out_dir: str | Path | None = None) -> tuple[Recommender, dict[str, float]]:
    """Train a fresh model on training + validation for ``epochs`` epochs; test it.

    The number of epochs comes from model selection on validation, so test is still
    looked at once. With ``out_dir``, the weights go to ``final.pt`` there (and
    :func:`load_run` prefers them).
    """
    torch.manual_seed(cfg.train.seed)
    full = split.train.concat(split.valid)
    model = build_model(cfg.model, RecGraph(full))
    train_cfg = dataclasses.replace(cfg.train, epochs=epochs, patience=0, run_dir=None, resume=False)
    Trainer(model, None, train_cfg).fit()
    evaluator = Evaluator(exclude=[full], ks=tuple(cfg.eval.ks), memory_budget_mb=cfg.eval.memory_budget_mb)
    test = evaluator.evaluate(model, split.test)
    if out_dir is not None:
        save_checkpoint({"epoch": epochs, "model": model.state_dict()}, Path(out_dir) / "final.pt")
    return model, test


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Plain mapping of a config (tuples as lists), suitable for YAML."""
    def clean(v: Any) -> Any:
        if isinstance(v, tuple):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (np.floating, np.integer)):
            return v.item()
        return v
    return clean(asdict(cfg))


def load_run(run_dir: str | Path) -> tuple[RunConfig, Split, Recommender]:
    """Rebuild a finished run's data and model and load its best weights.

    The data are prepared again from the saved config (loading and splitting are
    deterministic), and the weights are read with ``weights_only=True``: ``final.pt``
    (the refitted model, whose graph is training + validation) when the run has one,
    else ``best.pt``.
    """
    d = Path(run_dir)
    for name in ("config.yaml", "best.pt"):
        if not (d / name).exists():
            raise ConfigError(f"{d}: missing {name}; expected a directory written by 'graphrec train'")
    cfg = config_from_dict(yaml.safe_load((d / "config.yaml").read_text()), str(d / "config.yaml"))
    split = prepare_split(cfg.data)
    final = d / "final.pt"
    train = split.train.concat(split.valid) if final.exists() else split.train
    model = build_model(cfg.model, RecGraph(train))
    ckpt = torch.load(final if final.exists() else d / "best.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt["model"])
    return cfg, split, model
