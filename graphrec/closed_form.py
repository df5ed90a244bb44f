"""From a :class:`~graphrec.config.ModelConfig` to a closed-form model, and its run.

Closed-form ranking models (graph filters, item neighbourhoods, EASE, iALS) are fitted,
not trained: :func:`run_closed_form` fits the configured model, or every point of
``model.grid``, on the training part, chooses on validation with
:func:`graphrec.selection.grid_search`, and tests the choice once (refit on training +
validation with ``train.refit``). :mod:`graphrec.experiment` hands these models here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from graphrec.config import ConfigError, ModelConfig, RunConfig, section_from_dict, snippet
from graphrec.data.graph import RecGraph
from graphrec.data.splits import Split
from graphrec.models.scoring_model import ScoringModel
from graphrec.selection import SearchResult, grid_search
from graphrec.training.checkpoints import atomic_write_bytes, save_checkpoint

_SVD = {"rank": "rank", "svd_iters": "svd_iters", "seed": "seed"}
_NORMS = {"user_norm": "user_norm", "item_norm": "item_norm"}
# For each model, the ModelConfig keys it reads and the constructor argument each one
# fills; keys left empty (None) in the config keep the constructor's default.
MODEL_KEYS: dict[str, dict[str, str]] = {
    "gfcf": {**_SVD, **_NORMS, "ideal_weight": "ideal_weight"},
    "linear_filter": _NORMS,
    "ideal_filter": {**_SVD, **_NORMS},
    "chebyshev": {**_SVD, **_NORMS, "ideal_weight": "ideal_weight", "order": "order", "flatness": "response",
                  "response_sampling": "sampling", "degree_power": "degree_power"},
    "ease": {"reg": "l2"},
    "itemknn": {"neighbours": "neighbours", "similarity": "similarity", "shrink": "shrink",
                "alpha": "alpha"},
    "ials": {"dim": "factors", "reg": "l2", "alpha": "alpha", "iterations": "iterations",
             "seed": "seed"},
    # Its members are model sections of their own (``model.members``).
    "blend": {"weights": "weights"},
}
CLOSED_FORM_MODELS = tuple(MODEL_KEYS)
_MODEL_KEYS = ("rank", "ideal_weight", "svd_iters", "order", "flatness", "response_sampling",
               "degree_power", "user_norm", "item_norm", "reg",
               "neighbours", "similarity", "shrink", "alpha", "iterations", "user_attention",
               "weights")


def _factory(name: str) -> Callable[..., ScoringModel]:
    """The model class, imported only when a model is built."""
    if name in ("gfcf", "linear_filter", "ideal_filter"):
        from graphrec.models import graph_filter
        return {"gfcf": graph_filter.GFCF, "linear_filter": graph_filter.LinearFilter,
                "ideal_filter": graph_filter.IdealLowPassFilter}[name]
    if name == "chebyshev":
        from graphrec.models.polynomial_filter import ChebyshevFilter
        return ChebyshevFilter
    if name == "ease":
        from graphrec.models.ease import EASE
        return EASE
    if name == "itemknn":
        from graphrec.models.itemknn import ItemKNN
        return ItemKNN
    from graphrec.models.ials import IALS
    return IALS


def is_closed_form(cfg: ModelConfig) -> bool:
    """Whether ``cfg`` names a closed-form (fitted, not trained) model."""
    return cfg.name in CLOSED_FORM_MODELS


# Closed-form keys that a trained model reads: the filter it starts from.
TRAINED_MODEL_KEYS: dict[str, tuple[str, ...]] = {
    "attentive_filter": ("rank", "ideal_weight", "svd_iters", "degree_power", "user_attention")}
# The keys a trained model's start may be chosen over on validation (``model.grid``):
# those that one fitted SVD serves (a smaller rank takes its top singular pairs), so the
# grid costs one fit and one ranking per point.
START_GRID_KEYS: dict[str, tuple[str, ...]] = {
    "attentive_filter": ("rank", "ideal_weight", "degree_power", "user_attention")}


def check_model_config(cfg: ModelConfig) -> None:
    """Refuse keys the configured model does not read, and grids over them.

    Closed-form keys set for a trained model, a closed-form model's keys set for another
    one, and grid keys the model does not read are errors naming the key.
    """
    if cfg.members and cfg.name != "blend":
        raise ConfigError(f"model.members: only 'blend' reads it, not {cfg.name!r}")
    if not is_closed_form(cfg):
        reads = (*TRAINED_MODEL_KEYS.get(cfg.name, ()), *(("grid",) if cfg.name in START_GRID_KEYS else ()))
        for key in (*_MODEL_KEYS, "grid"):
            if key not in reads and getattr(cfg, key) not in (None, {}):
                raise ConfigError(f"model.{key}: only closed-form models ({', '.join(CLOSED_FORM_MODELS)}) "
                                  f"{'and the attentive filter ' if key != 'grid' else ''}read it, "
                                  f"not {cfg.name!r}")
        _check_grid(cfg, START_GRID_KEYS.get(cfg.name, ()))
        return
    reads = set(MODEL_KEYS[cfg.name])
    for key in _MODEL_KEYS:
        if getattr(cfg, key) is not None and key not in reads:
            raise ConfigError(f"model.{key}: {cfg.name!r} does not read it (it reads "
                              f"{sorted(reads - {'seed'}) or 'no keys'})")
    _check_grid(cfg, sorted(reads - {"seed"}))
    if cfg.name == "blend":
        members = member_configs(cfg)
        weights = [cfg.weights] if cfg.weights is not None else []
        for w in [*weights, *cfg.grid.get("weights", [])]:
            if not isinstance(w, list) or len(w) != len(members):
                raise ConfigError(f"model.weights: {len(members)} members need a list of "
                                  f"{len(members)} weights, got {snippet(w)}")
        if not weights and "weights" not in cfg.grid:
            raise ConfigError("model.weights: a blend needs one weight per member "
                              "(or a grid over them)")


def member_configs(cfg: ModelConfig) -> list[ModelConfig]:
    """A blend's members as model sections, each checked like ``model``; errors name
    ``model.members[i]``."""
    if not cfg.members:
        raise ConfigError("model.members: a blend needs at least one member model")
    out = []
    for i, raw in enumerate(cfg.members):
        where = f"model.members[{i}]"
        member = section_from_dict(ModelConfig, raw, where, "model")
        if member.name == "blend" or not is_closed_form(member):
            raise ConfigError(f"{where}.name: a blend member must be a closed-form model "
                              f"({', '.join(n for n in CLOSED_FORM_MODELS if n != 'blend')}), "
                              f"got {member.name!r}")
        if member.grid:
            raise ConfigError(f"{where}.grid: members are fitted as configured; choose their "
                              f"settings in runs of their own")
        try:
            check_model_config(member)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("model.", f"{where}.", 1)) from exc
        out.append(member)
    return out


def _check_grid(cfg: ModelConfig, keys: Sequence[str]) -> None:
    """Refuse grid keys outside ``keys`` and grids that are not lists of values."""
    for key, values in cfg.grid.items():
        if key not in keys:
            raise ConfigError(f"model.grid.{key}: {cfg.name!r} cannot choose it on validation "
                              f"(its grid may hold {sorted(keys) or 'no keys'})")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"model.grid.{key}: expected a non-empty list of values")


def build_closed_form(cfg: ModelConfig, graph: RecGraph, params: dict[str, Any] | None = None,
                      seed: int = 0, members: Sequence[ScoringModel] | None = None) -> ScoringModel:
    """The configured closed-form model on ``graph`` (unfitted); ``params`` override
    config keys (a grid point). A blend's ``members`` may be given (built on ``graph``,
    fitted or not) instead of built from ``model.members``."""
    check_model_config(cfg)
    values = {**asdict(cfg), "seed": seed, **(params or {})}
    if cfg.name == "blend":
        from graphrec.models.blend import Blend
        if members is None:
            members = [build_closed_form(m, graph, seed=seed) for m in member_configs(cfg)]
        try:
            return Blend(graph, members, values["weights"])
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"model (blend): {exc}") from exc
    kwargs = {arg: values[key] for key, arg in MODEL_KEYS[cfg.name].items()
              if values.get(key) is not None}
    try:
        return _factory(cfg.name)(graph, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model ({cfg.name}): {exc}") from exc


def run_closed_form(cfg: RunConfig, split: Split, social: Any = None,
                    out_dir: str | Path | None = None) -> SearchResult:
    """Fit, choose on validation, test once; with ``out_dir`` save the run.

    The run directory receives ``final.pt`` (the refitted model) or ``best.pt`` (the
    model fitted on training), and ``results.json`` with the chosen settings
    (``selected``), every grid point's validation metrics, the ranges whose end was
    chosen (``grid_edges``) and the test metrics.
    """
    check_model_config(cfg.model)
    monitor = cfg.train.monitor
    ks = sorted({*cfg.eval.ks, *cfg.train.ks})
    start = time.perf_counter()
    members = None
    if cfg.model.name == "blend":
        from graphrec.models.blend import shared_members
        member_cfgs = member_configs(cfg.model)
        # Fitted once per graph and shared by every point of a grid over the weights.
        members = shared_members(lambda g: [build_closed_form(m, g, seed=cfg.train.seed)
                                            for m in member_cfgs])

    def build(graph: RecGraph, params: dict[str, Any]) -> ScoringModel:
        return build_closed_form(cfg.model, graph, params, seed=cfg.train.seed,
                                 members=members(graph) if members is not None else None)

    result = grid_search(
        build,
        cfg.model.grid, split, monitor=monitor, ks=ks, refit=cfg.train.refit,
        memory_budget_mb=cfg.eval.memory_budget_mb,
        score_backend=cfg.eval.score_backend, social=social)
    if out_dir is not None:
        out = Path(out_dir)
        save_checkpoint({"model": result.model.state_dict(), "selected": result.best},
                        out / ("final.pt" if result.refit else "best.pt"))
        summary = {"selected": result.best, "monitor": monitor, "valid": result.best_valid,
                   "grid": [{"params": p.params, "valid": p.valid, "fit_seconds": p.fit_seconds}
                            for p in result.points],
                   "grid_edges": result.grid_edges, "test": result.test, "refit": result.refit,
                   "seconds": time.perf_counter() - start}
        atomic_write_bytes(out / "results.json", json.dumps(summary, indent=1).encode())
    return result


def selected_config(cfg: ModelConfig, selected: dict[str, Any]) -> ModelConfig:
    """``cfg`` with a grid point's settings filled in and the grid removed."""
    return replace(cfg, grid={}, **selected)
