"""Hyper-parameters of closed-form models chosen on validation, test reported once.

:func:`grid_search` fits a model for every point of a small grid on the training part,
scores each on the validation part, keeps the best by one metric and then either refits
it on training + validation (as papers train on the whole training file) or keeps the
model fitted on training; only that one model is evaluated on test. The test part never
takes part in the choice.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from graphrec.data.graph import RecGraph
from graphrec.data.interactions import Interactions
from graphrec.data.social import SocialEdges
from graphrec.data.splits import Split
from graphrec.evaluate import Evaluator, ScoreBackend
from graphrec.models.blend import Blend, evaluate_blends
from graphrec.models.scoring_model import ScoringModel

Builder = Callable[[RecGraph, dict[str, Any]], ScoringModel]

logger = logging.getLogger(__name__)


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last key varying fastest.

    An empty grid has one point, ``{}`` (the model's own settings).
    """
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"grid[{key!r}]: expected a non-empty list of values, got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def grid_edges(grid: Mapping[str, Sequence[Any]], chosen: Mapping[str, Any],
               same_as: Callable[[dict[str, Any]], Hashable] | None = None) -> list[str]:
    """The grid's ranges at whose end validation chose, one phrase per axis.

    An axis is a range when it holds three or more distinct numbers (``None``, strings and
    booleans are options, not ranges); choosing its smallest or largest number says the
    best value may lie beyond the grid, which then wants extending in that direction. An
    axis whose values are lists (a blend's ``weights``) is read one position at a time.

    With ``same_as`` (see :func:`choose_on_validation`), an axis none of whose values
    changes the chosen point's model is skipped: its end says nothing.

    Returns:
        e.g. ``["rank = 16, the smallest of [16, 64, 256]"]``; empty when every chosen
        number lies inside its range.
    """
    notes = []
    identity = same_as(dict(chosen)) if same_as is not None else None
    for key, values in grid.items():
        if same_as is not None and all(same_as({**chosen, key: v}) == identity for v in values):
            continue
        value = chosen.get(key)
        if isinstance(value, (list, tuple)):
            # A list per point (a blend's weights): each position is an axis of its own.
            same_length = [v for v in values if isinstance(v, (list, tuple)) and len(v) == len(value)]
            for pos in range(len(value)):
                note = _edge(f"{key}[{pos}]", [v[pos] for v in same_length], value[pos])
                if note:
                    notes.append(note)
            continue
        note = _edge(key, values, value)
        if note:
            notes.append(note)
    return notes


def _edge(name: str, values: Sequence[Any], value: Any) -> str | None:
    """``"name = value, the smallest of [...]"`` when ``value`` ends a range of three or
    more distinct numbers among ``values``; else ``None``."""
    numbers = sorted({v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if len(numbers) < 3 or value is None or isinstance(value, bool) or value not in numbers:
        return None
    side = "smallest" if value == numbers[0] else "largest" if value == numbers[-1] else None
    return f"{name} = {value}, the {side} of {numbers}" if side else None


@dataclass
class GridPoint:
    """One evaluated point: its settings, validation metrics and costs."""

    params: dict[str, Any]
    valid: dict[str, float]
    fit_seconds: float
    eval_seconds: float


@dataclass
class SearchResult:
    """What :func:`grid_search` returns.

    ``model`` is the chosen model: refitted on training + validation when ``refit``,
    else the one fitted on training. ``test`` holds its test metrics;
    ``fit_seconds``/``eval_seconds`` are those of that model's fit and test evaluation.
    ``grid_edges`` names the ranges the choice lies at the end of (:func:`grid_edges`).
    """

    best: dict[str, Any]
    monitor: str
    points: list[GridPoint]
    model: ScoringModel
    test: dict[str, float]
    refit: bool
    fit_seconds: float
    eval_seconds: float
    search_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    grid_edges: list[str] = field(default_factory=list)

    @property
    def best_valid(self) -> dict[str, float]:
        """Validation metrics of the chosen point."""
        return next(p.valid for p in self.points if p.params == self.best)

    def table(self) -> pd.DataFrame:
        """One row per grid point: its settings, the monitored metric and the costs."""
        return pd.DataFrame([{**p.params, f"valid_{self.monitor}": p.valid.get(self.monitor),
                              "fit_seconds": p.fit_seconds, "eval_seconds": p.eval_seconds}
                             for p in self.points])


def _cutoffs(monitor: str, ks: Sequence[int]) -> tuple[int, ...]:
    """``ks`` with the monitored metric's cut-off added, sorted."""
    k = monitor.partition("@")[2]
    if not k.isdigit():
        raise ValueError(f"monitor: expected a metric like 'recall@20', got {monitor!r}")
    return tuple(sorted({*map(int, ks), int(k)}))


def choose_on_validation(
    build: Builder,
    grid: Mapping[str, Sequence[Any]],
    graph: RecGraph,
    valid: Interactions,
    monitor: str = "recall@20",
    ks: Sequence[int] = (20,),
    memory_budget_mb: float = 512.0,
    score_backend: ScoreBackend = "auto",
    log: Callable[[str], None] | None = None,
    same_as: Callable[[dict[str, Any]], Hashable] | None = None,
) -> tuple[int, list[GridPoint], ScoringModel]:
    """Score every grid point on ``valid``; nothing else is looked at.

    Args:
        build: ``build(graph, params) -> model``, **fitted**, for one grid point.
        grid: ``{name: [values, ...]}``; see :func:`grid_points`.
        graph: the training graph; its interactions are masked when ranking.
        valid: the validation interactions.
        monitor: the metric to maximise, e.g. ``recall@20``.
        ks: cut-offs of the reported metrics (the monitor's cut-off is added).
        memory_budget_mb: the Evaluator's budget.
        score_backend: the Evaluator's ``score_backend`` (``auto``, ``torch``, ``numpy``).
        log: called with one line per evaluated point.
        same_as: ``same_as(params)`` is equal for points that build the same model
            (keys the model ignores at that point); such a point is not fitted or ranked
            again but reported with the first one's scores (and zero seconds).

    Returns:
        The index of the best point (the first on ties, in grid order), every evaluated
        point, and the best point's model. A choice at the end of a range of the grid is
        logged as a warning (:func:`grid_edges`).
    """
    ks = _cutoffs(monitor, ks)
    evaluator = Evaluator(exclude=[graph], ks=ks, memory_budget_mb=memory_budget_mb,
                          score_backend=score_backend)
    evaluated: list[GridPoint] = []
    best_i, best_model = -1, None
    seen: dict[Hashable, int] = {}
    # Consecutive blends over the same member objects (a weight grid): fitted, waiting to
    # be ranked together, each member scored once (evaluate_blends).
    pending: list[tuple[int, dict[str, Any], Blend, float]] = []

    def rank_pending() -> None:
        nonlocal best_i, best_model
        if len(pending) == 1:
            found = [evaluator.evaluate(pending[0][2], valid)]
        else:
            found = evaluate_blends(evaluator, [p[2] for p in pending], valid)
        for (i, params, model, fit_s), scores in zip(pending, found):
            assert isinstance(scores, dict)
            if monitor not in scores:
                raise ValueError(f"monitor {monitor!r} is not among the metrics {sorted(scores)}")
            evaluated.append(GridPoint(params, scores, fit_s, scores["eval_seconds"]))
            if log is not None:
                log(f"{params}: valid {monitor} {scores[monitor]:.4f} (fit {fit_s:.1f} s, "
                    f"eval {scores['eval_seconds']:.1f} s)")
            if best_i < 0 or scores[monitor] > evaluated[best_i].valid[monitor]:
                best_i, best_model = i, model
        pending.clear()

    for i, params in enumerate(grid_points(grid)):
        key = same_as(dict(params)) if same_as is not None else None
        if key is not None and key in seen:
            if pending:
                rank_pending()
            # Ties go to the first point in grid order, so a repeat is never chosen.
            evaluated.append(GridPoint(dict(params), evaluated[seen[key]].valid, 0.0, 0.0))
            continue
        if key is not None:
            seen[key] = i
        t = time.perf_counter()
        model = build(graph, dict(params))
        fit_s = time.perf_counter() - t
        if pending and not (isinstance(model, Blend) and model.same_members(pending[0][2])):
            rank_pending()
        pending.append((i, dict(params), model, fit_s))  # type: ignore[arg-type]
        if not isinstance(model, Blend):
            rank_pending()
        del model
    if pending:
        rank_pending()
    assert best_model is not None
    edges = grid_edges(grid, evaluated[best_i].params, same_as)
    if edges:
        logger.warning("validation chose the end of a grid range (%s): the best may lie "
                       "beyond it; consider extending the grid", "; ".join(edges))
    return best_i, evaluated, best_model


def grid_search(
    build: Builder,
    grid: Mapping[str, Sequence[Any]],
    split: Split,
    monitor: str = "recall@20",
    ks: Sequence[int] = (20,),
    refit: bool = True,
    memory_budget_mb: float = 512.0,
    score_backend: ScoreBackend = "auto",
    social: SocialEdges | None = None,
    log: Callable[[str], None] | None = None,
) -> SearchResult:
    """Choose a closed-form model's settings on ``split.valid``; test the choice once.

    Args:
        build: ``build(graph, params) -> model`` (unfitted) for one grid point.
        grid: ``{name: [values, ...]}``; see :func:`grid_points`.
        split: a split with a validation part (carve one with
            :func:`~graphrec.data.splits.holdout_valid` if it has none).
        monitor: the validation metric to maximise, e.g. ``recall@20``.
        ks: cut-offs of the reported metrics (the monitor's cut-off is added).
        refit: refit the chosen point on training + validation before testing.
        memory_budget_mb: the Evaluator's budget.
        score_backend: the Evaluator's ``score_backend`` (``auto``, ``torch``, ``numpy``).
        social: social edges for the graphs (models that read them).
        log: called with one line per evaluated point.

    Returns:
        A :class:`SearchResult`; on ties the first point in grid order wins.
    """
    if getattr(split, "valid", None) is None or len(split.valid) == 0:
        raise ValueError("grid_search needs a validation part; carve one with holdout_valid")
    ks = _cutoffs(monitor, ks)
    points = grid_points(grid)
    start = time.perf_counter()
    best_i, evaluated, best_model = choose_on_validation(
        lambda g, p: build(g, p).fit(), grid, RecGraph(split.train, social), split.valid,
        monitor=monitor, ks=ks, memory_budget_mb=memory_budget_mb,
        score_backend=score_backend, log=log)
    best = dict(points[best_i])
    if refit:
        best_model = None  # free it before the refit
        full = split.train.concat(split.valid)
        t = time.perf_counter()
        chosen = build(RecGraph(full, social), dict(best)).fit()
        fit_s = time.perf_counter() - t
        exclude = [full]
    else:
        assert best_model is not None
        chosen, fit_s = best_model, evaluated[best_i].fit_seconds
        exclude = [split.train, split.valid]
    test = Evaluator(exclude=exclude, ks=ks, memory_budget_mb=memory_budget_mb,
                     score_backend=score_backend).evaluate(chosen, split.test)
    assert isinstance(test, dict)
    return SearchResult(best=best, monitor=monitor, points=evaluated, model=chosen, test=test,
                        refit=refit, fit_seconds=fit_s, eval_seconds=test["eval_seconds"],
                        search_seconds=time.perf_counter() - start,
                        grid_edges=grid_edges(grid, best))
