"""From a :class:`~graphrec.config.RunConfig` to a trained, evaluated model.

The ``graphrec`` command and the example scripts share these steps, so the three ways in
(Python API, examples, CLI) give the same result for the same settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from graphrec.atomic import atomic_write_bytes
from graphrec.closed_form import (
    CLOSED_FORM_MODELS,
    build_closed_form,
    check_model_config,
    is_closed_form,
    run_closed_form,
    selected_config,
)
from graphrec.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    load_config,
)
from graphrec.config_check import validate_config
from graphrec.data.errors import DataError
from graphrec.data.filtering import binarize, k_core
from graphrec.data.graph import RecGraph
from graphrec.data.interactions import ColumnMap, Interactions, load_interactions
from graphrec.data.social import SocialColumns, SocialEdges, load_social
from graphrec.data.splits import (
    Split,
    given_split,
    holdout_valid,
    leave_one_out,
    per_user_split,
    per_user_temporal_split,
    random_split,
    temporal_split,
)
from graphrec.distributed import current_ranks
from graphrec.evaluate import Evaluator, evaluate_ratings
from graphrec.models import (
    MF,
    AttentiveFilter,
    GATRecommender,
    GraphRec,
    LightGCN,
    MFRating,
    RatingModel,
    Recommender,
    SocialGATRecommender,
)
from graphrec.models.gat import LAYERS, attention_warmup
from graphrec.models.scoring_model import ScoringModel
from graphrec.run_folder import (
    RunError,
    check_claim,
    claim,
    has_data,
    load_checkpoint,
    load_data,
    save_data,
    warn_changed_sources,
)
from graphrec.scoring import make_scorer
from graphrec.selection import GridPoint, choose_on_validation, grid_edges
from graphrec.training.checkpoints import save_checkpoint
from graphrec.training.config import RatingTrainConfig, TrainConfig
from graphrec.training.loop import TrainResult
from graphrec.training.ranking import Trainer
from graphrec.training.rating import RatingTrainer

DATASETS = ("synthetic", "movielens_small", "filmtrust", "lastfm", "gowalla", "file")
SPLITS = ("per_user", "random", "temporal", "per_user_temporal", "leave_one_out", "given")
SOCIAL = ("none", "dataset", "file")
RANKING_MODELS = ("mf", "lightgcn", "lightgcn_pp", "gat", "social_gat", "attentive_filter")
# Keys of the light propagation models, with the models that read them.
LIGHT_KEYS = {"attention_layer": ("gat", "social_gat"), "dst_power": ("lightgcn_pp", "gat", "social_gat"),
              "src_power": ("lightgcn_pp", "gat", "social_gat"),
              "learn_norm": ("lightgcn_pp", "gat", "social_gat"),
              "normalize": ("lightgcn_pp", "gat", "social_gat"),
              "pool_weight": ("lightgcn_pp", "gat", "social_gat"),
              "node_importance": ("lightgcn_pp", "gat", "social_gat")}
RATING_MODELS = ("mf_rating", "graphrec")
SOCIAL_MODELS = ("social_gat", "graphrec")

Model = Recommender | RatingModel | ScoringModel


def is_rating_model(cfg: ModelConfig) -> bool:
    """Whether ``cfg`` names a rating model (MSE training, RMSE/MAE evaluation)."""
    known = RANKING_MODELS + RATING_MODELS + CLOSED_FORM_MODELS
    if cfg.name not in known:
        raise ConfigError(f"model.name: expected one of {list(known)}, got {cfg.name!r}")
    check_model_config(cfg)
    return cfg.name in RATING_MODELS


@dataclass
class PreparedData:
    """A run's data: the split (validation carved from training) and the social edges.

    ``social`` is over the same user indices as ``split`` (``None`` without a social
    network); ``item_titles`` maps raw item ids to display names when the dataset has
    them (MovieLens), for ``graphrec recommend`` to show.
    """

    split: Split
    social: SocialEdges | None = None
    item_titles: pd.Series | None = None

    def graph(self, interactions: Interactions | None = None) -> RecGraph:
        """The graph models train on: ``interactions`` (default: training) and the social edges."""
        return RecGraph(self.split.train if interactions is None else interactions, self.social)


def prepare_data(cfg: DataConfig) -> PreparedData:
    """Load the configured dataset, filter it, split it and attach its social edges."""
    from graphrec import datasets

    if cfg.dataset not in DATASETS:
        raise ConfigError(f"data.dataset: expected one of {list(DATASETS)}, got {cfg.dataset!r}")
    if cfg.split not in SPLITS:
        raise ConfigError(f"data.split: expected one of {list(SPLITS)}, got {cfg.split!r}")
    if cfg.social not in SOCIAL:
        raise ConfigError(f"data.social: expected one of {list(SOCIAL)}, got {cfg.social!r}")
    titles = None  # only real datasets with item metadata have titles
    if cfg.dataset == "file" and cfg.train_path:
        inter, given, own_social = None, _read_pre_split(cfg), None
    elif cfg.dataset == "file":
        if not cfg.path:
            raise ConfigError("data.path: required when data.dataset is 'file'")
        inter = _read_file(cfg, cfg.path)
        given, own_social = None, None
    elif cfg.dataset == "synthetic":
        ds = datasets.synthetic(num_users=cfg.synthetic_users, num_items=cfg.synthetic_items, seed=cfg.seed)
        inter, given, own_social = ds.interactions, ds.split, ds.social
    else:
        ds = getattr(datasets, cfg.dataset)(root=cfg.root)
        inter, given, own_social = ds.interactions, ds.split, ds.social
        titles = _item_titles(ds)
    # The dataset's network is over the dataset's user map; filtering may re-index users.
    own_map = (inter if inter is not None else given.train).user_map if own_social is not None else None
    split = _split(cfg, inter, given)
    return PreparedData(split, _social(cfg, split, own_social, own_map), titles)


def _item_titles(ds: Any) -> pd.Series | None:
    """Raw item id → title from a dataset's ``items`` frame (indexed by item index)."""
    items = getattr(ds, "items", None)
    if items is None or "title" not in items.columns or ds.interactions is None:
        return None
    item_map = ds.interactions.item_map
    titles = items["title"].reindex(pd.RangeIndex(len(item_map))).to_numpy()
    return pd.Series(titles, index=item_map.raw, name="title").dropna()


def _read_file(cfg: DataConfig, path: str) -> Interactions:
    """One interaction file of a ``dataset: file`` config, with the config's columns."""
    return load_interactions(path, ColumnMap(cfg.user_col, cfg.item_col, cfg.rating_col,
                                             cfg.timestamp_col),
                             date_format=cfg.timestamp_format)


def _read_pre_split(cfg: DataConfig) -> Split:
    """The split of ``data.train_path``/``valid_path``/``test_path``, in one pair of id maps
    (train's ids first); validation is empty when no ``valid_path`` is given."""
    if not cfg.test_path:
        raise ConfigError("data.test_path: required with data.train_path")
    valid = _read_file(cfg, cfg.valid_path) if cfg.valid_path else None
    return given_split(_read_file(cfg, cfg.train_path), _read_file(cfg, cfg.test_path), valid)


def _split(cfg: DataConfig, inter: Interactions | None, given: Split | None) -> Split:
    if cfg.split == "given":
        if given is None:
            raise ConfigError(f"data.split: dataset {cfg.dataset!r} comes without a given split; "
                              f"choose one of {list(SPLITS[:-1])}")
        if len(given.valid):  # the data bring their own validation part
            return given
        return holdout_valid(given, ratio=cfg.valid_ratio, seed=cfg.seed)
    if inter is None:
        raise ConfigError(f"data.split: dataset {cfg.dataset!r} comes pre-split; use split: given")
    if len(inter) == 0:
        raise DataError(f"data.dataset: {cfg.dataset!r} holds no interactions")
    if cfg.rating_threshold is not None:
        before = len(inter)
        inter = binarize(inter, cfg.rating_threshold)
        if len(inter) == 0:
            raise DataError(f"data.rating_threshold: keeping ratings >= {cfg.rating_threshold} "
                            f"removes all {before} rows; lower the threshold")
    if cfg.min_user_interactions or cfg.min_item_interactions:
        before = len(inter)
        inter = k_core(inter, user_k=cfg.min_user_interactions, item_k=cfg.min_item_interactions)
        if len(inter) == 0:
            raise DataError(f"data.min_user_interactions/min_item_interactions: the "
                            f"{cfg.min_user_interactions}/{cfg.min_item_interactions}-core "
                            f"removes all {before} rows; lower them")
    ratios = tuple(cfg.ratios)
    if cfg.split == "leave_one_out":
        return leave_one_out(inter, mode="last" if inter.timestamp is not None else "random", seed=cfg.seed)
    fn = {"per_user": per_user_split, "random": random_split, "temporal": temporal_split,
          "per_user_temporal": per_user_temporal_split}[cfg.split]
    # The temporal splits are deterministic and take no seed.
    seeded = {"seed": cfg.seed} if cfg.split in ("per_user", "random") else {}
    return fn(inter, ratios=ratios, **seeded)


def check_split_not_empty(split: Split, cfg: DataConfig) -> None:
    """Refuse a split without training or test rows: its numbers would mean nothing."""
    for part in ("train", "test"):
        if len(getattr(split, part)) == 0:
            raise DataError(f"data.split: the {cfg.split} split of {cfg.dataset!r} data leaves "
                            f"{part} empty ({split.report.sizes}); use more data or other "
                            f"data.ratios")


def _social(cfg: DataConfig, split: Split, own: SocialEdges | None, own_map: Any) -> SocialEdges | None:
    user_map = split.train.user_map
    if cfg.social == "none":
        return None
    if cfg.social == "file":
        if not cfg.social_path:
            raise ConfigError("data.social_path: required when data.social is 'file'")
        edges = load_social(cfg.social_path, user_map, SocialColumns(cfg.social_src_col, cfg.social_dst_col))
    else:
        if own is None:
            raise ConfigError(f"data.social: dataset {cfg.dataset!r} has no social network of its own; "
                              f"use social: file with social_path, or social: none")
        edges = own
        if own_map is not user_map:
            edges = load_social(own.to_frame(own_map), user_map)
    if cfg.social_reverse:
        edges = SocialEdges.from_arrays(edges.dst, edges.src, num_users=edges.num_users,
                                        weight=edges.weight)
    if cfg.social_symmetrize:
        edges = SocialEdges.from_arrays(edges.src, edges.dst, num_users=edges.num_users,
                                        weight=edges.weight, symmetrize=True)
    return edges


def build_model(cfg: ModelConfig, graph: RecGraph, ratings: Interactions | None = None) -> Model:
    """The configured model on ``graph``; rating models learn from ``ratings``' rating column."""
    if cfg.fan_out is not None and cfg.name != "lightgcn":
        raise ConfigError(f"model.fan_out: only 'lightgcn' samples neighbours, not {cfg.name!r}")
    if cfg.attention_warmup and cfg.name != "gat":
        raise ConfigError(f"model.attention_warmup: only the 'gat' model has a warm-up, not {cfg.name!r}")
    if cfg.attention_warmup < 0:
        raise ConfigError(f"model.attention_warmup: expected epochs >= 0, got {cfg.attention_warmup}")
    for key, default, readers in (("attention_score", "self", ("gat", "attentive_filter")),
                                  ("attention_lr_scale", 1.0, ("gat",))):
        if getattr(cfg, key) != default and cfg.name not in readers:
            raise ConfigError(f"model.{key}: only {' and '.join(map(repr, readers))} read it, "
                              f"not {cfg.name!r}")
    if cfg.attention_score not in GATRecommender.SCORES:
        raise ConfigError(f"model.attention_score: expected one of {list(GATRecommender.SCORES)}, "
                          f"got {cfg.attention_score!r}")
    for key, readers in LIGHT_KEYS.items():
        if getattr(cfg, key) != getattr(ModelConfig, key) and cfg.name not in readers:
            raise ConfigError(f"model.{key}: only {', '.join(map(repr, readers))} read it, not {cfg.name!r}")
    if cfg.attention_layer not in LAYERS:
        raise ConfigError(f"model.attention_layer: expected one of {list(LAYERS)}, got {cfg.attention_layer!r}")
    for key in ("dst_power", "src_power"):
        if not math.isfinite(getattr(cfg, key)):
            raise ConfigError(f"model.{key}: expected a finite number, got {getattr(cfg, key)}")
    if cfg.pool_weight is not None and not 0 <= cfg.pool_weight <= 1:
        raise ConfigError(f"model.pool_weight: expected a value in [0, 1], got {cfg.pool_weight}")
    if not (math.isfinite(cfg.attention_lr_scale) and cfg.attention_lr_scale > 0):
        raise ConfigError(f"model.attention_lr_scale: expected a finite value > 0, "
                          f"got {cfg.attention_lr_scale}")
    if not (math.isfinite(cfg.temperature) and cfg.temperature > 0):
        raise ConfigError(f"model.temperature: expected a finite value > 0, got {cfg.temperature}")
    if cfg.temperature != ModelConfig.temperature and cfg.scorer != "cosine":
        raise ConfigError(f"model.temperature: only the cosine scorer has a temperature, not "
                          f"{cfg.scorer!r} (set model.scorer: cosine or remove the key)")
    scorer = make_scorer(cfg.scorer, cfg.dim, cfg.temperature)
    social = cfg.name in SOCIAL_MODELS and cfg.use_social
    if social and graph.social is None:
        raise ConfigError(f"model.name: {cfg.name!r} with use_social needs social edges; set "
                          f"data.social to 'dataset' or 'file' (or model.use_social: false)")
    if is_rating_model(cfg):
        if ratings is None or ratings.rating is None:
            raise ConfigError(f"model.name: {cfg.name!r} predicts ratings, but the data have no "
                              f"ratings; set data.rating_col (and leave data.rating_threshold unset)")
        if cfg.name == "mf_rating":
            return MFRating(graph, ratings, dim=cfg.dim)
        return GraphRec(graph, ratings, dim=cfg.dim, dropout=cfg.dropout, use_social=social)
    if cfg.name == "mf":
        return MF(graph, dim=cfg.dim, scorer=scorer)
    if cfg.name == "lightgcn":
        if cfg.fan_out is not None and len(cfg.fan_out) != cfg.layers:
            raise ConfigError(f"model.fan_out: expected one value per layer ({cfg.layers}), "
                              f"got {cfg.fan_out}")
        return LightGCN(graph, dim=cfg.dim, num_layers=cfg.layers, scorer=scorer,
                        fan_out=cfg.fan_out)
    if cfg.name == "attentive_filter":
        return _attentive_filter(cfg, graph).fit()
    light = dict(dim=cfg.dim, num_layers=cfg.layers, scorer=scorer, dst_power=cfg.dst_power,
                 src_power=cfg.src_power, learn_powers=cfg.learn_norm, learn_pool=cfg.learn_norm,
                 normalize=cfg.normalize, pool_weight=cfg.pool_weight,
                 node_importance=cfg.node_importance)
    if cfg.name == "lightgcn_pp":
        return GATRecommender(graph, attention=False, **light)
    attention = dict(heads=cfg.heads, attention_dropout=cfg.dropout, layer=cfg.attention_layer, **light)
    if cfg.name == "gat":
        return GATRecommender(graph, attention_score=cfg.attention_score,
                              attention_lr_scale=cfg.attention_lr_scale, **attention)
    return SocialGATRecommender(graph, use_social=social, **attention)


def _attentive_filter(cfg: ModelConfig, graph: RecGraph) -> AttentiveFilter:
    """The configured attentive filter, not fitted yet."""
    rank = min(256 if cfg.rank is None else cfg.rank, graph.num_users, graph.num_items)
    if cfg.dim > rank:
        raise ConfigError(f"model.dim: the attentive filter's attention features are its top "
                          f"singular vectors, at most model.rank = {rank}; got {cfg.dim}")
    return AttentiveFilter(graph, rank=rank, feature_rank=cfg.dim,
                           ideal_weight=0.3 if cfg.ideal_weight is None else cfg.ideal_weight,
                           attention_score=cfg.attention_score, degree_power=cfg.degree_power,
                           user_attention=cfg.user_attention,
                           svd_iters=6 if cfg.svd_iters is None else cfg.svd_iters)


def choose_start(cfg: RunConfig, graph: RecGraph,
                 valid: Interactions) -> tuple[RunConfig, list[GridPoint], list[str]]:
    """A trained model's closed-form start chosen on validation over ``model.grid``.

    The attentive filter's start is a graph filter whose settings (the ideal filter's
    rank and weight α, the degree normalisation γ, or attention over users in its place,
    ``user_attention``) move accuracy more than training does, so, like the closed-form
    models, they are chosen on validation: one SVD at the
    grid's largest rank is fitted on ``graph``, each point takes its top singular pairs
    (:meth:`~graphrec.models.AttentiveFilter.fit_from`) and is ranked on ``valid``. A
    point whose rank is below ``model.dim`` uses all its singular vectors as attention
    features (``model.dim`` becomes its rank). Returns the config with the chosen point
    filled in and the grid removed (what training, the refit and the saved run use),
    every evaluated point and the grid ranges the choice lies at the end of
    (:func:`~graphrec.selection.grid_edges`). A config without a grid is returned as it is.
    """
    if not cfg.model.grid:
        return cfg, [], []

    def point_config(params: dict[str, Any]) -> ModelConfig:
        chosen = selected_config(cfg.model, params)
        rank = min(256 if chosen.rank is None else chosen.rank, graph.num_users, graph.num_items)
        return dataclasses.replace(chosen, dim=min(chosen.dim, rank)) if "rank" in params else chosen

    ranks = cfg.model.grid.get("rank", [cfg.model.rank])
    largest = max(256 if r is None else r for r in ranks)
    first = _attentive_filter(point_config({"rank": largest}), graph).fit()

    def build(g: RecGraph, params: dict[str, Any]) -> AttentiveFilter:
        return _attentive_filter(point_config(params), g).fit_from(first)

    ks = sorted({*cfg.eval.ks, *cfg.train.ks})

    def same_as(params: dict[str, Any]) -> tuple:
        chosen = point_config(params)
        if chosen.user_attention is not None:
            # Attention over users reads only its features (the top ``dim`` singular
            # vectors) and its sharpness, not the ideal part or the degree normalisation.
            return (chosen.dim, chosen.user_attention)
        return (chosen.rank, chosen.dim, chosen.ideal_weight, chosen.degree_power)

    best, points, _ = choose_on_validation(build, cfg.model.grid, graph, valid, monitor=cfg.train.monitor,
                                           ks=ks, memory_budget_mb=cfg.eval.memory_budget_mb,
                                           score_backend=cfg.eval.score_backend,
                                           same_as=same_as)
    edges = grid_edges(cfg.model.grid, points[best].params, same_as)
    return dataclasses.replace(cfg, model=point_config(points[best].params)), points, edges


def _epoch_start(cfg: ModelConfig) -> Callable[[Any, int], None] | None:
    """The trainer's per-epoch hook the model config asks for (the GAT warm-up)."""
    return attention_warmup(cfg.attention_warmup) if cfg.attention_warmup else None


# Train keys that only ranking training reads, with the defaults a rating run must keep.
_RANKING_ONLY = ("loss", "num_negatives", "negatives", "hard_negatives", "shared_negatives",
                 "batch_sampling", "monitor", "ks", "refit")


def trainer_config(cfg: RunConfig) -> TrainConfig:
    """The ``train`` section as the ranking :class:`Trainer` reads it: validation scores
    with ``eval.score_backend``."""
    return dataclasses.replace(cfg.train, score_backend=cfg.eval.score_backend)


def rating_train_config(train: TrainConfig) -> RatingTrainConfig:
    """The ``train`` section as a :class:`RatingTrainConfig` (MSE, early stopping on RMSE).

    Batch edges are masked unless ``mask_batch_edges`` is explicitly false; keys that
    only ranking reads must keep their defaults.
    """
    default = TrainConfig()
    for key in _RANKING_ONLY:
        if getattr(train, key) != getattr(default, key):
            raise ConfigError(f"train.{key}: only ranking models read it; rating models train with "
                              f"MSE and select on validation RMSE (remove the key)")
    shared = {f.name: getattr(train, f.name) for f in dataclasses.fields(RatingTrainConfig)
              if hasattr(train, f.name)}
    shared["mask_batch_edges"] = train.mask_batch_edges is not False
    return RatingTrainConfig(**shared)


@dataclass
class RunResult:
    """Outcome of :func:`run`.

    With ``train.refit``, ``model`` is the refitted model (trained on training +
    validation for ``fit.best_epoch`` epochs) and ``test`` its metrics; ``selected_test``
    holds the test metrics of the model chosen on validation. ``selected`` is the point
    of ``model.grid`` chosen on validation (closed-form models, and the attentive
    filter's start), else ``None``.
    """

    model: Model
    split: Split
    fit: TrainResult
    test: dict[str, float]
    selected_test: dict[str, float] | None = None
    selected: dict[str, Any] | None = None


def evaluate_test(model: Model, split: Split, cfg: RunConfig) -> dict[str, float]:
    """Test metrics: full ranking with training and validation items masked, or RMSE/MAE
    (predictions clipped to the training range) for rating models."""
    if isinstance(model, RatingModel):
        return evaluate_ratings(lambda u, i: model.predict(u, i), split.test)
    evaluator = Evaluator(exclude=[split.train, split.valid], ks=tuple(cfg.eval.ks),
                          memory_budget_mb=cfg.eval.memory_budget_mb,
                          score_backend=cfg.eval.score_backend)
    return evaluator.evaluate(model, split.test)


def run(cfg: RunConfig, out_dir: str | Path | None = None, *, overwrite: bool = False) -> RunResult:
    """Prepare data, train with early stopping on validation, evaluate test once.

    Every config value is checked (:func:`~graphrec.config.validate_config`) before any
    data is read. With ``out_dir``, the run folder (see :mod:`graphrec.run_folder`)
    receives ``run.json``, the data under ``data/``, ``config.yaml``, the trainer's
    checkpoints and metrics, and ``results.json``. A folder that holds an earlier run is
    refused unless ``train.resume`` (continue it, on its stored data) or ``overwrite``
    (replace it) is set; a folder another process is writing is refused.

    Raises:
        ConfigError: a config value is invalid.
        DataError: the data cannot be read or are empty after a filter.
        RunError: the run folder is in use or holds an earlier run.
    """
    validate_config(cfg)
    if out_dir is None and cfg.train.tensorboard is True and cfg.train.run_dir is None:
        raise ConfigError("train.tensorboard: true writes into the run folder's tensorboard/; "
                          "give a run folder, or a folder as train.tensorboard")
    if out_dir is None:
        data = prepare_data(cfg.data)
        check_split_not_empty(data.split, cfg.data)
        return _run(cfg, data, None)
    out = Path(out_dir)
    resumed = cfg.train.resume and has_data(out)
    if not is_main_process():
        # Data-parallel ranks other than 0 write nothing: rank 0 claims the folder.
        data = PreparedData(*load_data(out)) if resumed else prepare_data(cfg.data)
        return _run(cfg, data, out)
    check_claim(out, resume=cfg.train.resume, overwrite=overwrite)
    if cfg.train.resume:
        _check_resumable(cfg, out)
    # Data are read before the folder is claimed: bad data leave no half-made run behind.
    data = PreparedData(*load_data(out)) if resumed else prepare_data(cfg.data)
    check_split_not_empty(data.split, cfg.data)
    with claim(out, resume=cfg.train.resume, overwrite=overwrite,
               sources=source_files(cfg.data)) as manifest:
        if not resumed:  # a resumed run goes on with the very split it started on
            save_data(out, data.split, data.social, item_titles=data.item_titles)
        manifest.split = {"method": data.split.report.method, "sizes": {
            p: len(getattr(data.split, p)) for p in ("train", "valid", "test")}}
        return _run(cfg, data, out)


def _check_resumable(cfg: RunConfig, out: Path) -> None:
    """Refuse to resume a run with other data or another model than it started with.

    The ``train`` and ``eval`` sections may change (e.g. more epochs); a different
    ``data`` or ``model`` section would load the checkpoint into the wrong model.
    """
    saved_path = out / "config.yaml"
    if not saved_path.exists():
        return
    saved = config_to_dict(load_config(saved_path))
    now = config_to_dict(cfg)
    if now["model"]["grid"] and not saved["model"]["grid"]:
        # The run saved the start it chose on validation in place of its grid.
        chosen = [*now["model"]["grid"], *(["dim"] if "rank" in now["model"]["grid"] else [])]
        now["model"] = {**now["model"], "grid": {}, **{key: saved["model"].get(key) for key in chosen}}
    changed = [f"{section}.{key}" for section in ("data", "model")
               for key in now[section] if now[section][key] != saved[section].get(key)]
    if changed:
        raise RunError(f"{out}: cannot resume with a different {', '.join(changed[:5])} than "
                       f"the run started with (see its config.yaml); start a new run instead")


def _run(cfg: RunConfig, data: PreparedData, out_dir: Path | None) -> RunResult:
    """:func:`run` once the config is checked, the data prepared and the folder claimed."""
    torch.manual_seed(cfg.train.seed)
    rating = is_rating_model(cfg.model)
    rating_cfg = rating_train_config(cfg.train) if rating else None
    split = data.split
    if is_closed_form(cfg.model):
        return _run_closed_form(cfg, data, out_dir)
    # Data-parallel ranks (graphrec.distributed) all train and evaluate; rank 0 writes.
    main = is_main_process()
    selected: dict[str, Any] | None = None
    if cfg.model.grid:
        saved = Path(out_dir, "config.yaml") if out_dir is not None else None
        if cfg.train.resume and saved is not None and saved.exists():
            # A resumed run keeps the start it chose (and trained from) before.
            chosen = load_config(saved).model
            selected = {key: getattr(chosen, key) for key in cfg.model.grid}
            cfg = dataclasses.replace(cfg, model=chosen)
        else:
            if split.valid is None or len(split.valid) == 0:
                raise ConfigError("model.grid: choosing the start on validation needs a "
                                  "validation part (data.valid_ratio > 0)")
            cfg, points, edges = choose_start(cfg, data.graph(), split.valid)
            selected = {key: getattr(cfg.model, key) for key in points[0].params}
            if out_dir is not None and main:
                table = {"monitor": cfg.train.monitor, "selected": selected,
                         "grid_edges": edges,
                         "grid": [{"params": q.params, "valid": q.valid} for q in points]}
                atomic_write_bytes(Path(out_dir) / "start_grid.json", json.dumps(table, indent=1).encode())
    model = build_model(cfg.model, data.graph(), split.train)
    if out_dir is not None:
        out = Path(out_dir)
        cfg.train.run_dir = str(out)
        if rating_cfg is not None:
            rating_cfg.run_dir = str(out)
        if main:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False).encode())
    start = time.perf_counter()
    if rating_cfg is not None:
        fit = RatingTrainer(model, split.valid, rating_cfg).fit()
    else:
        fit = Trainer(model, split.valid, trainer_config(cfg),
                      on_epoch_start=_epoch_start(cfg.model)).fit()
    test = evaluate_test(model, split, cfg)
    selected_test = None
    # A warm-started model whose start won (epoch 0) is refit too: rebuilt on training +
    # validation, trained for no epoch.
    if cfg.train.refit and (fit.best_epoch > 0 or getattr(model, "warm_start", False)):
        selected_test, (model, test) = test, refit(cfg, data, fit.best_epoch, out_dir)
    if out_dir is not None and main:
        summary = {"best_epoch": fit.best_epoch, "stopped": fit.stopped, "valid": fit.best_metrics,
                   "test": test, "seconds": time.perf_counter() - start}
        if selected_test is not None:
            summary["selected_test"] = selected_test
        if selected is not None:
            summary["selected"] = selected
        atomic_write_bytes(Path(out_dir) / "results.json", json.dumps(summary, indent=1).encode())
    return RunResult(model, split, fit, test, selected_test, selected)


def source_files(cfg: DataConfig) -> list[Path]:
    """The files a data config reads (fingerprinted into a run's manifest)."""
    from graphrec.datasets import real

    if cfg.dataset == "file":
        files = (cfg.path, cfg.train_path, cfg.valid_path, cfg.test_path,
                 cfg.social_path if cfg.social == "file" else None)
        return [Path(p) for p in files if p]
    sources = {"movielens_small": "MOVIELENS_SMALL", "filmtrust": "FILMTRUST", "lastfm": "LASTFM",
               "gowalla": "GOWALLA"}
    if cfg.dataset not in sources:
        return []
    source = getattr(real, sources[cfg.dataset])
    try:
        folder = real._locate(source, cfg.root)
    except DataError:
        return []  # reported with its own message when the data are read
    return [folder / f for f in source.files]


def is_main_process() -> bool:
    """Whether this process writes the run's files: rank 0 of data-parallel ranks, or the
    only process."""
    ranks = current_ranks()
    return ranks is None or ranks.is_main


def _run_closed_form(cfg: RunConfig, data: PreparedData, out_dir: str | Path | None) -> RunResult:
    """A closed-form model's run: fit (each grid point), choose on validation, test once."""
    if current_ranks() is not None:
        raise ConfigError(f"model.name: {cfg.model.name!r} is fitted in closed form, not trained; "
                          f"run it in one process (without --nproc or torchrun)")
    if out_dir is not None:
        atomic_write_bytes(Path(out_dir) / "config.yaml",
                           yaml.safe_dump(config_to_dict(cfg), sort_keys=False).encode())
    search = run_closed_form(cfg, data.split, data.social, out_dir)
    fit = TrainResult(best_epoch=0, best_metrics=search.best_valid,
                      history=[{**p.params, **p.valid} for p in search.points],
                      train_seconds=sum(p.fit_seconds for p in search.points),
                      stopped="closed form")
    return RunResult(search.model, data.split, fit, search.test, selected=search.best or None)


def refit(cfg: RunConfig, data: PreparedData, epochs: int,
          out_dir: str | Path | None = None) -> tuple[Recommender, dict[str, float]]:
    """Train a fresh model on training + validation for ``epochs`` epochs; test it.

    The number of epochs comes from model selection on validation, so test is still
    looked at once. With ``out_dir``, the weights go to ``final.pt`` there (and
    :func:`load_run` prefers them).
    """
    torch.manual_seed(cfg.train.seed)
    split = data.split
    full = split.train.concat(split.valid)
    model = build_model(cfg.model, data.graph(full))
    if epochs > 0:  # 0: a warm-started model whose start was best is used as built
        # The refit is no run of its own: no folder, no second TensorBoard log.
        train_cfg = dataclasses.replace(trainer_config(cfg), epochs=epochs, patience=0, run_dir=None, resume=False,
                                        tensorboard=False)
        Trainer(model, None, train_cfg, on_epoch_start=_epoch_start(cfg.model)).fit()
    evaluator = Evaluator(exclude=[full], ks=tuple(cfg.eval.ks), memory_budget_mb=cfg.eval.memory_budget_mb,
                          score_backend=cfg.eval.score_backend)
    test = evaluator.evaluate(model, split.test)
    if out_dir is not None and is_main_process():
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


def load_run(run_dir: str | Path) -> tuple[RunConfig, Split, Model]:
    """Reopen a finished run: its config, data and model with its best weights.

    The data come from the run folder itself (``data/``), so the source files are not
    needed; when they are present and differ from the ones the run was trained on, a
    :class:`~graphrec.run_folder.SourceChangedWarning` says what changed (the stored
    data are used all the same, so ids never map differently). Runs written before
    folders stored their data are prepared again from the saved config. Weights are read
    with ``weights_only=True``: ``final.pt`` (the refitted model, whose graph is
    training + validation) when the run has one, else ``best.pt``.

    Raises:
        RunError: the folder is not a finished run or a file in it is damaged.
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise RunError(f"{d}: no such run folder; expected a folder written by 'graphrec train'")
    final = d / "final.pt"
    for name in ("config.yaml", "best.pt"):
        if not (d / name).exists() and not (name == "best.pt" and final.exists()):
            raise RunError(f"{d}: missing {name}; expected a folder written by 'graphrec train' "
                           f"(an interrupted run can be continued with train.resume=true)")
    cfg = load_config(d / "config.yaml")
    if has_data(d):
        warn_changed_sources(d)
        data = PreparedData(*load_data(d))
    else:
        data = prepare_data(cfg.data)
    split = data.split
    train = split.train.concat(split.valid) if final.exists() else split.train
    ckpt = load_checkpoint(final if final.exists() else d / "best.pt")
    try:
        if is_closed_form(cfg.model):
            cfg = dataclasses.replace(cfg, model=selected_config(cfg.model, ckpt.get("selected", {})))
            model = build_closed_form(cfg.model, data.graph(train), seed=cfg.train.seed)
        else:
            model = build_model(cfg.model, data.graph(train), split.train)
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:  # shapes or keys that do not fit the config's model
        raise RunError(f"{d}: the checkpoint does not fit the model of config.yaml "
                       f"({str(exc).splitlines()[0][:200]})") from exc
    return cfg, split, model
