"""Figures for exploring data, training runs and attention, built with matplotlib.

Every function returns a :class:`matplotlib.figure.Figure` and never calls
``plt.show()``: in a notebook the figure is shown when the cell ends, in a script save it
with ``fig.savefig(...)`` (and ``plt.close(fig)`` when making many). Only the object API
is used, so the functions work under any backend, including the non-interactive Agg.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphrec._optional import require
from graphrec.data.graph import RecGraph
from graphrec.data.interactions import Interactions
from graphrec.explain.paths import ItemNames, _name, as_attention_graph, lookup
from graphrec.explain.stats import attention_entropy, attention_vs_degree, bin_by_degree

# This module is imported only by callers who want figures, so matplotlib is imported
# here once, with an error that names the extra when it is missing.
plt = require("matplotlib.pyplot", "plots", "graphrec.explain.plots")
Figure = require("matplotlib.figure", "plots", "graphrec.explain.plots").Figure

_MAX_LABEL = 60
_HEATMAP_SPAN = 1000.0  # the heatmap's colour range: 1/1000 to 1000 times uniform


def _short(text: str, limit: int = _MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------- data
def _degree_arrays(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """(user degrees, item degrees) of a RecGraph, Interactions or Dataset."""
    if isinstance(data, RecGraph):
        return data.user_degree(), data.item_degree()
    if isinstance(data, Interactions):
        return data.user_degrees(), data.item_degrees()
    if callable(getattr(data, "all_interactions", None)):
        inter = data.all_interactions()
        return inter.user_degrees(), inter.item_degrees()
    raise TypeError(f"expected a RecGraph, Interactions or Dataset, got {type(data).__name__}")


def plot_degree_histogram(data: Any, bins: int = 25, title: str | None = None) -> Figure:
    """Log-log histogram of user and item degrees.

    Degrees are counted in ``bins`` logarithmically spaced bins and divided by the bin
    width (nodes per unit of degree). A roughly straight line on log-log axes is a heavy
    (power-law-like) tail: a few very active users and very popular items next to many
    with a handful of interactions. Nodes of degree 0 cannot be drawn on a log axis and
    are left out.

    Args:
        data: a :class:`~graphrec.data.graph.RecGraph`, an ``Interactions`` log or a
            ``Dataset``.
        bins: number of log-spaced bins (fewer remain where low degrees coincide).

    Returns:
        A figure with one axis and two marker lines (users, items).
    """
    user_deg, item_deg = _degree_arrays(data)
    fig, ax = plt.subplots(layout="constrained", figsize=(6, 4))
    for name, deg, marker in (("users", user_deg, "o"), ("items", item_deg, "s")):
        deg = deg[deg > 0]
        if len(deg) == 0:
            continue
        # Log-spaced bins, counts divided by bin width: with one bin per degree value
        # the sparse tail would show as a flat row of ones.
        edges = np.unique(np.floor(np.geomspace(1, deg.max() + 1, bins + 1)))
        if len(edges) < 2:
            edges = np.array([1.0, 2.0])
        counts, _ = np.histogram(deg, edges)
        keep = counts > 0
        centres = np.sqrt(edges[:-1] * np.maximum(edges[1:] - 1, edges[:-1]))
        ax.loglog(centres[keep], (counts / np.diff(edges))[keep], marker=marker, linestyle="-",
                  markersize=4, alpha=0.8, label=f"{name} ({len(deg):,} with ≥1 interaction)")
    ax.set_xlabel("degree (interactions)")
    ax.set_ylabel("nodes per unit of degree")
    ax.set_title(title or "Degree distribution")
    ax.legend()
    return fig


def plot_long_tail(data: Any, head_share: float = 0.2, title: str | None = None) -> Figure:
    r"""Cumulative share of interactions held by the most popular items.

    Items are sorted by popularity; the curve at :math:`x` is the share of all
    interactions that fall on the top :math:`x` fraction of items. The diagonal is what
    equally popular items would give; the gap between them is the long tail.

    Args:
        data: a RecGraph, Interactions or Dataset.
        head_share: where to mark "the top ``head_share`` of items hold …".

    Returns:
        A figure with one axis and three lines: the curve, the diagonal and the marker.
    """
    if not 0 < head_share < 1:
        raise ValueError(f"head_share must lie in (0, 1), got {head_share}")
    _, item_deg = _degree_arrays(data)
    pop = np.sort(item_deg)[::-1].astype(np.float64)
    n = len(pop)
    x = np.arange(1, n + 1) / n
    cum = np.cumsum(pop) / max(pop.sum(), 1.0)
    held = float(np.interp(head_share, x, cum))
    fig, ax = plt.subplots(layout="constrained", figsize=(5.5, 4))
    ax.plot(x, cum, label="items by popularity")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="equal popularity")
    ax.axvline(head_share, color="tab:red", linestyle=":",
               label=f"top {head_share:.0%} of items: {held:.0%} of interactions")
    ax.set_xlabel("share of items (most popular first)")
    ax.set_ylabel("cumulative share of interactions")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title(title or "Long tail of item popularity")
    ax.legend(loc="lower right")
    return fig


# ---------------------------------------------------------------------- training logs
def _history_frame(log: Any) -> pd.DataFrame:
    """A training log as a DataFrame, from any of the forms plot_learning_curves accepts."""
    if isinstance(log, pd.DataFrame):
        return log
    if hasattr(log, "history"):
        log = log.history
    if isinstance(log, str | Path):
        path = Path(log)
        if path.is_dir():
            csv, js = path / "metrics.csv", path / "metrics.json"
            if csv.exists():
                path = csv
            elif js.exists():
                path = js
            else:
                raise FileNotFoundError(f"{path} holds neither metrics.csv nor metrics.json")
        if path.suffix == ".json":
            return pd.DataFrame(json.loads(path.read_text()))
        return pd.read_csv(path)
    if isinstance(log, Sequence) and all(isinstance(row, Mapping) for row in log):
        return pd.DataFrame(list(log))
    raise TypeError(f"cannot read a training log from {type(log).__name__}; pass a run "
                    f"directory, metrics.csv/.json, a DataFrame, a list of dicts or a TrainResult")


def _lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better (losses and errors)."""
    name = metric.removeprefix("valid_").split("@")[0]
    return name in ("loss", "rmse", "mae", "mse")


def _metric_label(metric: str) -> str:
    """An axis label for a metric column: ``valid_recall@20`` → ``validation Recall@20``."""
    if metric == "loss":
        return "training loss"
    if metric == "epoch_seconds":
        return "seconds per epoch"
    name = metric.removeprefix("valid_")
    base, _, k = name.partition("@")
    pretty = {"recall": "Recall", "ndcg": "NDCG", "precision": "Precision", "hit": "Hit rate",
              "mrr": "MRR", "rmse": "RMSE", "mae": "MAE"}.get(base, base)
    label = f"{pretty}@{k}" if k else pretty
    return f"validation {label}" if metric.startswith("valid_") else label


def plot_learning_curves(logs: Any, metrics: Sequence[str] = ("loss", "valid_recall@20"),
                         title: str | None = None) -> Figure:
    """Per-epoch curves of one or several training runs, one panel per metric.

    Args:
        logs: one run or a dict ``{name: run}``. A run is a run directory (holding
            ``metrics.csv`` or ``metrics.json`` as the Trainer writes them), one of those
            files, a DataFrame, a list of dicts (``TrainResult.history``) or a
            ``TrainResult``.
        metrics: columns to plot (``loss``, ``epoch_seconds``, ``valid_recall@20`` …).

    Validation panels mark each run's best epoch with a star (highest value; lowest for
    errors such as ``valid_rmse``), as early stopping chooses it.

    Returns:
        A figure with one axis per metric and one line per run that has that metric.

    Raises:
        ValueError: if no run has one of the metrics (the message lists the columns).
    """
    runs = dict(logs) if isinstance(logs, Mapping) else {"run": logs}
    frames = {name: _history_frame(log) for name, log in runs.items()}
    if not metrics:
        raise ValueError("metrics is empty")
    for metric in metrics:
        if not any(metric in f.columns for f in frames.values()):
            cols = sorted({c for f in frames.values() for c in f.columns})
            raise ValueError(f"no run has the metric {metric!r}; columns are {cols}")
    fig, axes = plt.subplots(1, len(metrics), layout="constrained", squeeze=False,
                             figsize=(4.2 * len(metrics), 3.4))
    for ax, metric in zip(axes[0], metrics):
        for name, frame in frames.items():
            if metric not in frame.columns:
                continue
            # Validation columns are empty on epochs without validation (eval_every > 1).
            rows = frame[frame[metric].notna()]
            x = np.asarray(rows["epoch"] if "epoch" in rows.columns else np.arange(1, len(rows) + 1))
            y = rows[metric].to_numpy(dtype=float)
            (line,) = ax.plot(x, y, marker="o", markersize=3, label=name)
            if metric.startswith("valid_") and len(y):
                best = int(np.argmin(y) if _lower_is_better(metric) else np.argmax(y))
                ax.plot(x[best], y[best], marker="*", markersize=13, color=line.get_color(),
                        markeredgecolor="black", linestyle="none",
                        label=f"{name}: best epoch {x[best]:g} ({y[best]:.4g})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(_metric_label(metric))
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if len(frames) > 1 or metric.startswith("valid_"):
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------- attention
def plot_attention_heatmap(model: Any, user: Any, *, item_names: ItemNames | None = None,
                           max_items: int = 20, title: str | None = None) -> Figure:
    """Heatmap of the attention a user pays to each of their items, per layer and head.

    Rows are the user's items (the ``max_items`` with the highest mean attention),
    columns ``(layer, head)``. Each cell is the weight relative to uniform attention,
    ``weight × d_u`` (1 = uniform), on a logarithmic colour scale centred on 1: attention
    spans orders of magnitude, and a linear scale would show only the largest cell.
    Cells are annotated with the ratio when the table is small enough to read.

    Args:
        model: a graph model or an :class:`~graphrec.explain.paths.AttentionGraph`.
        user: raw user id.
        item_names: raw item id → display name.

    Returns:
        A figure with the heatmap axis and a colour bar; the image has
        ``min(d_u, max_items)`` rows and ``layers × heads`` columns and holds the
        ratios to uniform.
    """
    from matplotlib.colors import LogNorm

    ag = as_attention_graph(model)
    nb = ag.neighbors("user", user, item_names=item_names)
    nb = nb[nb["relation"] == "item_to_user"]
    if nb.empty:
        raise ValueError(f"user {user!r} has no items in the training graph")
    labels = {i: _short(n if isinstance(n, str) else f"item {i}", 40)
              for n, i in zip(nb["neighbor_name"], nb["neighbor"])}
    nb = nb.assign(column=[f"L{layer} h{head}" for layer, head in zip(nb["layer"], nb["head"])])
    # Pivot on ids, not labels: titles need not be unique.
    table = nb.pivot_table(index="neighbor", columns="column", values="weight", sort=False)
    table = table.loc[table.mean(axis=1).sort_values(ascending=False).index[:max_items]]
    degree = int(ag.degree[ag.node("user", user)])
    ratio = table.to_numpy(dtype=float) * degree
    # A symmetric log range around 1 keeps "twice uniform" and "half uniform" equally far
    # from the neutral colour. It is capped at 1000× either way: sharp attention drives
    # some weights to 1e-10, which would squeeze every other cell into the neutral band.
    # Cells beyond the cap (and zero weights of masked edges) take the end colours.
    positive = ratio[ratio > 0]
    span = (max(float(positive.max()), 1.0 / float(positive.min()), 2.0)
            if positive.size else 2.0)
    span = min(span, _HEATMAP_SPAN)
    fig, ax = plt.subplots(layout="constrained",
                           figsize=(5 + 0.6 * table.shape[1], 1.8 + 0.28 * table.shape[0]))
    image = ax.imshow(np.clip(ratio, 1.0 / span, span), aspect="auto", cmap="RdBu_r",
                      norm=LogNorm(vmin=1.0 / span, vmax=span))
    if ratio.size <= 200:
        for (r, c), value in np.ndenumerate(ratio):
            dark = abs(np.log(max(value, 1e-12))) > 0.6 * np.log(span)
            ax.text(c, r, f"{value:.2g}", ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    ax.set_xticks(range(table.shape[1]), [c.replace(" ", "\n") for c in table.columns])
    ax.set_yticks(range(table.shape[0]), [labels[i] for i in table.index])
    ax.set_xlabel("layer, head")
    ax.set_title(title or f"Attention of user {user} over their {degree} items,\n"
                          f"relative to uniform (1/{degree})", fontsize=10)
    fig.colorbar(image, ax=ax, label="attention × degree (1 = uniform; log scale)", aspect=40,
                 extend="both" if span == _HEATMAP_SPAN else "neither")
    return fig


def plot_top_contributors(frame: pd.DataFrame, *, top_k: int = 10, title: str | None = None,
                          **where: Any) -> Figure:
    """Horizontal bar chart of the heaviest rows of an explanation.

    Args:
        frame: from :func:`~graphrec.explain.explain_recommendation` (bars labelled by
            path) or :func:`~graphrec.explain.neighbor_attention` (labelled by
            neighbour).
        top_k: number of bars.
        **where: column filters, e.g. ``side="user", hops=2, head=0`` or ``layer=0``.

    Returns:
        A figure with one axis holding ``min(top_k, matching rows)`` bars.
    """
    for column in where:
        if column not in frame.columns:
            raise ValueError(f"cannot filter on {column!r}; columns are {list(frame.columns)}")
    rows = frame
    for column, value in where.items():
        rows = rows[rows[column] == value]
    if rows.empty:
        raise ValueError(f"no rows match {where}")
    rows = rows.sort_values("weight", ascending=False).head(top_k)
    suffix = ""
    if "path" in rows.columns:
        labels = rows["path"].tolist()
        kinds = rows["source_type"].tolist()
        extra = [c for c in ("side", "hops", "head") if c not in where and rows[c].nunique() > 1]
        if rows["side"].nunique() == 1 and rows["target"].nunique() == 1:
            # Every path ends at the same node: name it once, in the title.
            target = labels[0].rsplit(" → ", 1)[-1]
            labels = [lab.rsplit(" → ", 1)[0] + " →" for lab in labels]
            suffix = f" into {target}"
    else:
        labels = [n if isinstance(n, str) else f"{t} {i}" for n, t, i in
                  zip(rows["neighbor_name"], rows["neighbor_type"], rows["neighbor"])]
        kinds = rows["neighbor_type"].tolist()
        extra = [c for c in ("layer", "head") if c not in where and rows[c].nunique() > 1]
    if extra:
        labels = [f"{lab} ({', '.join(f'{c} {r[c]}' for c in extra)})"
                  for lab, (_, r) in zip(labels, rows.iterrows())]
    colors = ["tab:blue" if k == "item" else "tab:orange" for k in kinds]
    fig, ax = plt.subplots(layout="constrained", figsize=(9, 1.0 + 0.38 * len(rows)))
    y = np.arange(len(rows))[::-1]
    ax.barh(y, rows["weight"].to_numpy(), color=colors)
    ax.set_yticks(y, [_short(str(lab), 90) for lab in labels], fontsize=8)
    ax.set_xlabel("attention weight (product along the path)" if "path" in rows.columns
                  else "attention weight")
    ax.set_title(title or "Top contributors" + suffix
                 + (f" ({', '.join(f'{k}={v}' for k, v in where.items())})" if where else ""))
    return fig


def plot_attention_vs_degree(model: Any, relation: str = "item_to_user", bins: int = 8,
                             title: str | None = None) -> Figure:
    """Mean relative attention (1 = uniform share) against the neighbour's degree.

    A line rising with degree means attention favours popular neighbours; LightGCN's
    fixed weights fall as :math:`d^{-1/2}`.

    Returns:
        A figure with one axis: one line per (layer, head) and a dashed line at 1.
    """
    binned = bin_by_degree(attention_vs_degree(model, relation), bins=bins)
    fig, ax = plt.subplots(layout="constrained", figsize=(6, 4))
    for (layer, head), part in binned.groupby(["layer", "head"]):
        ax.plot(part["degree_mid"], part["mean"], marker="o", markersize=4,
                label=f"layer {layer}, head {head}")
    ax.axhline(1.0, color="grey", linestyle="--")
    ax.set_xscale("log")
    ax.set_xlabel("neighbour degree")
    ax.set_ylabel("mean relative attention")
    ax.set_title(title or f"Attention vs neighbour degree ({relation})")
    ax.legend(fontsize=8)
    return fig


def plot_attention_entropy(model: Any, relation: str = "item_to_user", bins: int = 30,
                           title: str | None = None) -> Figure:
    """Histogram of normalised attention entropy (1 = uniform) per layer and head.

    Returns:
        A figure with one axis and one step histogram per (layer, head).
    """
    ent = attention_entropy(model, relation).dropna(subset=["normalized_entropy"])
    fig, ax = plt.subplots(layout="constrained", figsize=(6, 4))
    for (layer, head), part in ent.groupby(["layer", "head"]):
        ax.hist(part["normalized_entropy"], bins=bins, range=(0, 1.0), histtype="step",
                label=f"layer {layer}, head {head}")
    ax.set_xlabel("entropy / log(degree)")
    ax.set_ylabel("nodes")
    ax.set_title(title or f"Attention entropy ({relation})")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_ego_network(model: Any, user: Any, *, layer: int = 0, head: int = 0, max_items: int = 8,
                     max_users: int = 3, item_names: ItemNames | None = None,
                     title: str | None = None) -> Figure:
    """A user's two-hop ego network; edge width ∝ attention.

    The user sits in the centre, ``max_items`` of their items around it and, for each
    item, ``max_users`` other users who interacted with it on the outer ring. With a
    model (or :class:`~graphrec.explain.paths.AttentionGraph`) the heaviest edges of
    ``layer``/``head`` are kept and drawn thicker (item → user weights on the inner
    edges, user → item on the outer ones); with a plain
    :class:`~graphrec.data.graph.RecGraph` the most popular items and most active
    users are kept and all edges are equal.

    Returns:
        A figure with one axis holding the drawing.
    """
    if isinstance(model, RecGraph):
        graph, ag = model, None
    else:
        ag = as_attention_graph(model)
        graph = ag.graph
    nu = graph.num_users
    centre = lookup(graph, "user", user)
    labels: dict[int, str] = {centre: f"user {user}"}
    edges: list[tuple[int, int, float]] = []  # (source, destination, weight), joint ids

    def weighted(node: int, candidates: np.ndarray, degree: np.ndarray) -> list[tuple[int, float]]:
        """(neighbour, weight) pairs into ``node`` (joint ids), heaviest first."""
        if ag is None:
            order = np.argsort(-degree[candidates], kind="stable")
            return [(int(c), 1.0) for c in candidates[order]]
        m = ag.matrix(layer, head)
        lo, hi = m.indptr[node], m.indptr[node + 1]
        order = np.argsort(-m.data[lo:hi], kind="stable")
        return [(int(c), float(w)) for c, w in zip(m.indices[lo:hi][order], m.data[lo:hi][order])]

    joint_degree = np.concatenate([graph.user_degree(), graph.item_degree()])
    items = graph.ui.indices[graph.ui.indptr[centre]:graph.ui.indptr[centre + 1]] + nu
    kept_items = [(i, w) for i, w in weighted(centre, items, joint_degree) if i >= nu][:max_items]
    outer_of: dict[int, list[int]] = {}  # item → its outer users, in drawing order
    for item, w in kept_items:
        raw = graph.item_map.raw[item - nu]
        name = _name(raw, item_names)
        labels[item] = _short(str(name), 24) if name else f"item {raw}"
        edges.append((item, centre, w))
        i = item - nu
        users = graph.iu.indices[graph.iu.indptr[i]:graph.iu.indptr[i + 1]]
        others = [(u, wu) for u, wu in weighted(item, users, joint_degree)
                  if u != centre and u < nu][:max_users]
        outer_of[item] = []
        for u, wu in others:
            if u not in labels:
                labels[u] = f"user {graph.user_map.raw[u]}"
                outer_of[item].append(u)
            edges.append((u, item, wu))

    # Radial layout: items evenly on an inner ring, each item's other users on the outer
    # ring next to it, so most edges are short and do not cross the drawing.
    pos: dict[int, np.ndarray] = {centre: np.zeros(2)}
    n_items = max(len(kept_items), 1)
    for k, (item, _) in enumerate(kept_items):
        angle = 2 * np.pi * k / n_items + np.pi / 2
        pos[item] = np.array([np.cos(angle), np.sin(angle)])
        spread = min(2 * np.pi / n_items, np.pi / 2) * 0.8
        outer = outer_of[item]
        for j, u in enumerate(outer):
            a = angle + (j - (len(outer) - 1) / 2) * spread / max(len(outer), 1)
            pos[u] = 2.0 * np.array([np.cos(a), np.sin(a)])

    # Inner (into the user) and outer (into an item) weights are normalised over
    # different neighbourhoods, so each ring is scaled by its own maximum.
    weights = np.array([w for _, _, w in edges], dtype=np.float64)
    inner = np.array([dst == centre for _, dst, _ in edges], dtype=bool)
    widths = np.ones_like(weights)
    for ring in (inner, ~inner):
        if ring.any() and weights[ring].max() > 0:
            widths[ring] = 0.5 + 4.5 * weights[ring] / weights[ring].max()

    fig, ax = plt.subplots(layout="constrained", figsize=(8, 8))
    for (src, dst, _), width, is_inner in zip(edges, widths, inner):
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        ax.plot([x0, x1], [y0, y1], color="tab:purple" if is_inner else "0.45",
                linewidth=width, alpha=0.55, solid_capstyle="round", zorder=1)
    kinds = {"this user": ([centre], "tab:red", 260),
             "their items": ([i for i, _ in kept_items], "tab:blue", 200),
             "other users of those items": ([n for n in labels if n < nu and n != centre],
                                            "tab:orange", 120)}
    for label, (nodes, colour, size) in kinds.items():
        if nodes:
            xy = np.array([pos[n] for n in nodes])
            ax.scatter(xy[:, 0], xy[:, 1], s=size, color=colour, edgecolors="white",
                       linewidths=1.0, zorder=2, label=label)
    for n, text in labels.items():
        # Labels sit just outside their node, away from the centre, on a white box, so
        # edges pass beneath them instead of through them.
        x, y = pos[n]
        r = float(np.hypot(x, y))
        dx, dy = (x / r, y / r) if r > 0 else (0.0, -1.0)
        ax.annotate(text, (x, y), xytext=(12 * dx, 12 * dy), textcoords="offset points",
                    ha="left" if dx > 0.3 else "right" if dx < -0.3 else "center",
                    va="bottom" if dy > 0.3 else "top" if dy < -0.3 else "center",
                    fontsize=8, zorder=3,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                          "alpha": 0.85})
    if ag is not None:
        ax.plot([], [], color="tab:purple", linewidth=3, label="item → user attention (width)")
        ax.plot([], [], color="0.45", linewidth=3, label="user → item attention (width)")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.01), ncol=2, fontsize=8, frameon=False)
    what = f"attention, layer {layer}, head {head}" if ag is not None else "no attention"
    ax.set_title(title or f"Ego network of user {user} ({what})")
    ax.set_xlim(-2.9, 2.9)
    ax.set_ylim(-2.6, 2.6)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return fig


__all__ = [
    "plot_attention_entropy", "plot_attention_heatmap", "plot_attention_vs_degree",
    "plot_degree_histogram", "plot_ego_network", "plot_learning_curves", "plot_long_tail",
    "plot_top_contributors",
]
