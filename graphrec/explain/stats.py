r"""Attention statistics over a whole graph: entropy, degree dependence, distributions.

All functions take a graph model (``model.attention()``, or LightGCN's fixed weights) or
an :class:`~graphrec.explain.paths.AttentionGraph`, and return pandas DataFrames in long
format (one row per edge or node and per layer and head), ready for ``groupby`` and
plotting.

Two normalisations make nodes of different degrees comparable:

* **relative weight** :math:`d_t\,\alpha_{t \leftarrow s}`, with :math:`d_t` the
  destination's number of incoming edges of that relation: 1 is what uniform attention
  gives every neighbour, 2 means twice the uniform share;
* **normalised entropy** :math:`H_t / \log d_t`, with
  :math:`H_t = -\sum_{s} \alpha_{t \leftarrow s} \log \alpha_{t \leftarrow s}`: 1 for
  uniform attention, towards 0 when one neighbour takes all of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from graphrec.explain.paths import AttentionGraph, as_attention_graph
from graphrec.explain.weights import RELATIONS


def _relations(ag: AttentionGraph, relations: Sequence[str] | str | None) -> list[str]:
    present = list(ag.layers[0])
    if relations is None:
        return present
    wanted = [relations] if isinstance(relations, str) else list(relations)
    for r in wanted:
        if r not in present:
            raise ValueError(f"relation {r!r} has no attention here; available: {present}")
    return wanted


def _relation_ends(ag: AttentionGraph, relation: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-type (source, destination) indices of a relation's edges, and #destinations."""
    g = ag.graph
    users, items = g.edges()
    if relation == "item_to_user":
        return items, users, g.num_users
    if relation == "user_to_item":
        return users, items, g.num_items
    src, dst = g.social_edges()
    return src, dst, g.num_users


def _degrees(ag: AttentionGraph, kind: str) -> np.ndarray:
    return ag.graph.user_degree() if kind == "user" else ag.graph.item_degree()


def _raw(ag: AttentionGraph, kind: str, index: np.ndarray) -> np.ndarray:
    id_map = ag.graph.user_map if kind == "user" else ag.graph.item_map
    return id_map.raw.take(index).to_numpy()


def edge_attention(model: Any, relations: Sequence[str] | str | None = None) -> pd.DataFrame:
    """Every attention weight with its edge's degrees: one row per (relation, layer, head, edge).

    Args:
        model: a graph model or an :class:`~graphrec.explain.paths.AttentionGraph`.
        relations: ``"item_to_user"``, ``"user_to_item"``, ``"user_to_user"`` or a list
            of them (default: all the attention has).

    Returns:
        Columns ``relation``, ``layer``, ``head``, ``edge`` (edge id within the
        relation), ``source``, ``target`` (raw ids), ``weight``, ``source_degree``
        (the source's interactions: a neighbour's popularity or activity),
        ``target_in_degree`` (incoming edges of the relation at the target) and
        ``relative_weight`` (``weight * target_in_degree``; 1 = uniform share).
    """
    ag = as_attention_graph(model)
    frames = []
    for relation in _relations(ag, relations):
        src_kind, dst_kind = RELATIONS[relation]
        src, dst, num_dst = _relation_ends(ag, relation)
        in_degree = np.bincount(dst, minlength=num_dst)[dst]
        base = pd.DataFrame({
            "edge": np.arange(len(src)), "source": _raw(ag, src_kind, src),
            "target": _raw(ag, dst_kind, dst), "source_degree": _degrees(ag, src_kind)[src],
            "target_in_degree": in_degree,
        })
        for layer, weights in enumerate(ag.layers):
            for head in range(ag.num_heads):
                w = weights[relation][:, head]
                frames.append(base.assign(relation=relation, layer=layer, head=head, weight=w,
                                          relative_weight=w * in_degree))
    columns = ["relation", "layer", "head", "edge", "source", "target", "weight",
               "source_degree", "target_in_degree", "relative_weight"]
    return pd.concat(frames, ignore_index=True)[columns]


def attention_entropy(model: Any, relations: Sequence[str] | str | None = None) -> pd.DataFrame:
    r"""Entropy of each node's incoming attention, per relation, layer and head.

    .. math::
        H_t = -\sum_{s \to t} \alpha_{t \leftarrow s} \log \alpha_{t \leftarrow s},
        \qquad 0 \le H_t \le \log d_t,

    with equality on the right exactly for uniform attention
    :math:`\alpha = 1/d_t` (:math:`0 \log 0 = 0`). Nodes without incoming edges of a
    relation are left out.

    Returns:
        Columns ``relation``, ``layer``, ``head``, ``node_type``, ``node`` (raw id),
        ``degree`` (incoming edges), ``entropy``, ``normalized_entropy``
        (:math:`H_t / \log d_t`; NaN for degree 1, where there is no choice to make) and
        ``max_weight``.
    """
    ag = as_attention_graph(model)
    frames = []
    for relation in _relations(ag, relations):
        dst_kind = RELATIONS[relation][1]
        _, dst, num_dst = _relation_ends(ag, relation)
        degree = np.bincount(dst, minlength=num_dst)
        nodes = np.flatnonzero(degree)
        log_deg = np.log(degree[nodes].astype(np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            norm_by = np.where(degree[nodes] > 1, log_deg, np.nan)
        base = pd.DataFrame({"node_type": dst_kind, "node": _raw(ag, dst_kind, nodes),
                             "degree": degree[nodes]})
        for layer, weights in enumerate(ag.layers):
            for head in range(ag.num_heads):
                w = weights[relation][:, head]
                plogp = np.where(w > 0, w * np.log(np.where(w > 0, w, 1.0)), 0.0)
                entropy = -np.bincount(dst, plogp, minlength=num_dst)[nodes]
                top = np.zeros(num_dst)
                np.maximum.at(top, dst, w)
                frames.append(base.assign(relation=relation, layer=layer, head=head,
                                          entropy=entropy, normalized_entropy=entropy / norm_by,
                                          max_weight=top[nodes]))
    columns = ["relation", "layer", "head", "node_type", "node", "degree", "entropy",
               "normalized_entropy", "max_weight"]
    return pd.concat(frames, ignore_index=True)[columns]


def attention_vs_degree(model: Any, relation: str = "item_to_user") -> pd.DataFrame:
    """Attention against the neighbour's degree, one row per (layer, head, edge).

    Does attention favour popular items (or active users)? Plot ``relative_weight``
    against ``neighbor_degree`` on a log axis, or bin it with :func:`bin_by_degree`.

    Returns:
        Columns ``layer``, ``head``, ``neighbor_degree``, ``target_in_degree``,
        ``weight`` and ``relative_weight`` (1 = uniform share).
    """
    df = edge_attention(model, relation)
    return df.rename(columns={"source_degree": "neighbor_degree"})[
        ["layer", "head", "neighbor_degree", "target_in_degree", "weight", "relative_weight"]]


def bin_by_degree(frame: pd.DataFrame, bins: int = 8, degree: str = "neighbor_degree",
                  value: str = "relative_weight") -> pd.DataFrame:
    """Mean and median of ``value`` in log-spaced bins of ``degree``, per layer and head.

    Returns:
        Columns ``layer``, ``head``, ``degree_low``, ``degree_high``, ``degree_mid``
        (geometric middle), ``mean``, ``median`` and ``edges``; empty bins are left out.
    """
    d = frame[degree].to_numpy(dtype=np.float64)
    lo, hi = max(d.min(), 1.0), max(d.max(), 1.0)
    edges = np.unique(np.geomspace(lo, hi * (1 + 1e-9), bins + 1))
    binned = frame.assign(_bin=pd.cut(d, edges, include_lowest=True, labels=False))
    out = (binned.dropna(subset=["_bin"])
           .groupby(["layer", "head", "_bin"])[value]
           .agg(mean="mean", median="median", edges="size").reset_index())
    b = out.pop("_bin").to_numpy(dtype=np.int64)
    out.insert(2, "degree_low", edges[b])
    out.insert(3, "degree_high", edges[b + 1])
    out.insert(4, "degree_mid", np.sqrt(edges[b] * edges[b + 1]))
    return out


def attention_summary(model: Any) -> pd.DataFrame:
    """How attention is distributed, per relation (interaction vs social), layer and head.

    Returns:
        One row per (relation, layer, head): ``edges``, ``mean_weight``,
        ``relative_p10``/``relative_median``/``relative_p90`` (quantiles of the relative
        weight; all 1 for uniform attention), ``max_weight``, ``mean_entropy`` and
        ``mean_normalized_entropy`` (1 = uniform).
    """
    ag = as_attention_graph(model)
    edges = edge_attention(ag)
    keys = ["relation", "layer", "head"]
    rel = edges.groupby(keys)["relative_weight"]
    summary = edges.groupby(keys).agg(edges=("weight", "size"), mean_weight=("weight", "mean"),
                                      max_weight=("weight", "max"))
    summary["relative_p10"] = rel.quantile(0.1)
    summary["relative_median"] = rel.median()
    summary["relative_p90"] = rel.quantile(0.9)
    ent = attention_entropy(ag).groupby(keys).agg(
        mean_entropy=("entropy", "mean"), mean_normalized_entropy=("normalized_entropy", "mean"))
    return summary.join(ent).reset_index()


__all__ = ["attention_entropy", "attention_summary", "attention_vs_degree", "bin_by_degree",
           "edge_attention"]
