r"""Which neighbours and multi-hop paths carried attention into a user's or an item's embedding.

Message passing with attention computes, in layer :math:`l` and head :math:`h`,

.. math::
    e^{(l+1)}_{d,h} = \sum_{s \to d} \alpha^{(l)}_{d \leftarrow s,h}\, e^{(l)}_{s,h}.

Unrolling :math:`k` layers, a node's layer-:math:`k` embedding is a weighted sum of the
layer-0 (ego) embeddings of the nodes :math:`k` hops away, one term per path
:math:`x_0 \to x_1 \to \dots \to x_k`, weighted by the product of the attention along it
(hop :math:`j` is taken in layer :math:`j-1`). Those products are what this module ranks.

Nodes live in one index space: users ``0 .. U-1``, items ``U .. U+I-1``; everything
returned to callers uses raw ids (``graph.user_map`` / ``graph.item_map``).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from torch import Tensor

from graphrec.data.graph import RecGraph
from graphrec.explain.weights import check_attention, model_attention

ItemNames = Mapping[Any, str] | pd.Series


class UnknownIdError(KeyError, ValueError):
    """A raw user or item id that the graph does not know (both a ``KeyError`` and a
    ``ValueError``, so either ``except`` catches it)."""

    def __str__(self) -> str:
        # KeyError would show the message in quotes.
        return str(self.args[0]) if self.args else ""


def lookup(graph: RecGraph, kind: str, raw_id: Any) -> int:
    """Index of a user or item (``kind``) of ``graph`` given by its raw id.

    Raises:
        UnknownIdError: naming the id when the graph does not have it.
    """
    if kind not in ("user", "item"):
        raise ValueError(f"kind must be 'user' or 'item', not {kind!r}")
    id_map = graph.user_map if kind == "user" else graph.item_map
    try:
        idx = int(id_map.to_index(raw_id, missing="mask"))
    except (TypeError, ValueError) as exc:
        raise UnknownIdError(f"{kind} id {raw_id!r} cannot be looked up: {exc}") from exc
    if idx < 0:
        raise UnknownIdError(f"unknown {kind} id {raw_id!r}: it is not among the graph's "
                             f"{len(id_map)} {kind}s (ids are raw ids, e.g. "
                             f"{id_map.raw[:3].tolist()})")
    return idx


class AttentionGraph:
    r"""A graph's attention weights as one sparse matrix per layer and head.

    ``matrix(l, h)[d, s]`` is :math:`\alpha^{(l)}_{d \leftarrow s, h}`, the weight of the
    message ``s → d`` in layer ``l`` and head ``h``, over the joint node space (users
    first, then items). Build it once and reuse it to explain many users: matrices are
    built on first use and cached.

    Args:
        graph: the training graph the attention was computed on.
        attention: one dict per layer (see :mod:`graphrec.explain.weights`).
    """

    def __init__(self, graph: RecGraph, attention: Sequence[Mapping[str, Tensor | np.ndarray]]) -> None:
        self.graph = graph
        self.layers = check_attention(attention, graph)
        self.num_layers = len(self.layers)
        self.num_heads = next(iter(self.layers[0].values())).shape[1]
        nu = graph.num_users
        users, items = graph.edges()
        # (source, destination) of every relation's edges in the joint node space.
        self._ends: dict[str, tuple[np.ndarray, np.ndarray]] = {
            "item_to_user": (items + nu, users),
            "user_to_item": (users, items + nu),
        }
        if graph.social is not None:
            self._ends["user_to_user"] = graph.social_edges()
        self.degree = np.concatenate([graph.user_degree(), graph.item_degree()])
        self._matrices: dict[tuple[int, int], sp.csr_matrix] = {}

    @classmethod
    def from_model(cls, model: Any) -> AttentionGraph:
        """The attention of ``model`` (``model.attention()``, or LightGCN's fixed weights)."""
        return cls(model.graph, model_attention(model))

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    def __repr__(self) -> str:
        return (f"AttentionGraph({self.num_layers} layers, {self.num_heads} heads, "
                f"relations {sorted(self.layers[0])}, {self.graph!r})")

    # ------------------------------------------------------------------ ids
    def node(self, kind: str, raw_id: Any) -> int:
        """Joint index of a user or item given by its raw id.

        Raises:
            UnknownIdError: naming the id when the graph does not have it.
        """
        idx = lookup(self.graph, kind, raw_id)
        return idx if kind == "user" else idx + self.graph.num_users

    def kind_of(self, node: int) -> str:
        return "user" if node < self.graph.num_users else "item"

    def raw_id(self, node: int) -> Any:
        """The raw id of joint index ``node``."""
        nu = self.graph.num_users
        if node < nu:
            return self.graph.user_map.raw[node]
        return self.graph.item_map.raw[node - nu]

    def label(self, node: int, item_names: ItemNames | None = None) -> str:
        """``"user 42"``, ``"item 7"``, or ``"Heat (1995) [item 7]"`` with a name."""
        kind, raw = self.kind_of(node), self.raw_id(node)
        name = _name(raw, item_names) if kind == "item" else None
        return f"{kind} {raw}" if name is None else f"{name} [item {raw}]"

    # ------------------------------------------------------------------ matrices
    def matrix(self, layer: int, head: int) -> sp.csr_matrix:
        """``(N, N)`` CSR of layer ``layer``, head ``head``: rows destinations, columns sources."""
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must lie in [0, {self.num_layers}), got {layer}")
        if not 0 <= head < self.num_heads:
            raise ValueError(f"head must lie in [0, {self.num_heads}), got {head}")
        key = (layer, head)
        if key not in self._matrices:
            rows, cols, vals = [], [], []
            for relation, weights in self.layers[layer].items():
                src, dst = self._ends[relation]
                rows.append(dst)
                cols.append(src)
                vals.append(weights[:, head])
            n = self.num_nodes
            m = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(n, n))
            # Masked or fully suppressed edges carry nothing and would only lengthen searches.
            m.eliminate_zeros()
            m.sort_indices()
            self._matrices[key] = m
        return self._matrices[key]

    # ------------------------------------------------------------------ paths
    def contributions(self, node: int, hops: int, head: int) -> np.ndarray:
        r"""Summed weight of all ``hops``-hop paths from every node into ``node``.

        .. math::
            c_x = \big(A^{(0)\top} A^{(1)\top} \cdots A^{(k-1)\top}\, \mathbb{1}_t\big)_x
                = \sum_{p:\, x \to \dots \to t} w(p)

        i.e. the coefficient of :math:`e^{(0)}_x` in :math:`e^{(k)}_t` (head ``head``).
        """
        self._check_hops(hops)
        c = np.zeros(self.num_nodes)
        c[node] = 1.0
        for layer in range(hops - 1, -1, -1):
            c = self.matrix(layer, head).T @ c
        return c

    def top_paths(self, node: int, hops: int, head: int, top_k: int = 5,
                  allow_revisits: bool = False) -> list[tuple[float, tuple[int, ...]]]:
        r"""The ``top_k`` heaviest ``hops``-hop paths into ``node``, exactly, best first.

        Returns ``(weight, path)`` pairs; ``path`` lists joint node indices in message
        order (source first, ``node`` last) and ``weight`` is the product of the
        attention along it (hop :math:`j` in layer :math:`j-1`).

        Best-first search from ``node`` backwards, ordered by the weight of a partial
        path times the best weight any completion can still reach,
        :math:`g_r(x) = \max_{y} A^{(r-1)}_{x y}\, g_{r-1}(y)`, :math:`g_0 = 1`. The bound
        is exact when revisits are allowed (and an upper bound otherwise), so paths come
        out in order after expanding only few nodes, even on high-degree graphs.

        Args:
            allow_revisits: also rank paths that pass through a node twice (e.g.
                ``user → item → user``: the user's own embedding coming back, which
                propagation does include; such back-and-forth paths often outweigh the
                others and say little, hence off by default).
        """
        self._check_hops(hops)
        bound = [np.ones(self.num_nodes)]
        for r in range(1, hops):
            bound.append(_row_max(self.matrix(r - 1, head), bound[r - 1]))
        tie = itertools.count()
        # Entries: (-priority, hops left, tie-break, weight, path from node backwards).
        # Fewer hops left first among equal priorities: completions come out sooner.
        heap: list[tuple[float, int, int, float, tuple[int, ...]]] = [(-1.0, hops, 0, 1.0, (node,))]
        found: list[tuple[float, tuple[int, ...]]] = []
        while heap and len(found) < top_k:
            _, left, _, weight, path = heapq.heappop(heap)
            if left == 0:
                found.append((weight, path[::-1]))
                continue
            m = self.matrix(left - 1, head)
            lo, hi = m.indptr[path[-1]], m.indptr[path[-1] + 1]
            nxt = m.indices[lo:hi]
            w = weight * m.data[lo:hi]
            priority = w * bound[left - 1][nxt]
            keep = priority > 0
            if not allow_revisits:
                keep &= ~np.isin(nxt, path)
            nxt, w, priority = nxt[keep], w[keep], priority[keep]
            if allow_revisits and len(nxt) > top_k:
                # With an exact bound each of the top_k best children completes to a path
                # at least as heavy as anything through the others, so those never matter.
                best = np.argpartition(-priority, top_k - 1)[:top_k]
                nxt, w, priority = nxt[best], w[best], priority[best]
            for y, wy, py in zip(nxt.tolist(), w.tolist(), priority.tolist()):
                heapq.heappush(heap, (-py, left - 1, next(tie), wy, path + (y,)))
        return found

    def explain(self, user: Any, item: Any, *, top_k: int = 5,
                item_names: ItemNames | None = None, allow_revisits: bool = False) -> pd.DataFrame:
        """Top paths into ``user``'s and ``item``'s embeddings; see :func:`explain_recommendation`."""
        targets = [("user", user, self.node("user", user)), ("item", item, self.node("item", item))]
        rows = []
        for side, raw, node in targets:
            for hops in range(1, self.num_layers + 1):
                for head in range(self.num_heads):
                    total = self.contributions(node, hops, head)
                    for rank, (weight, path) in enumerate(
                            self.top_paths(node, hops, head, top_k, allow_revisits), start=1):
                        source = path[0]
                        rows.append({
                            "side": side, "target": raw, "hops": hops, "head": head, "rank": rank,
                            "source_type": self.kind_of(source), "source": self.raw_id(source),
                            "source_name": (_name(self.raw_id(source), item_names)
                                            if self.kind_of(source) == "item" else None),
                            "weight": weight, "source_total": float(total[source]),
                            "path": " → ".join(self.label(n, item_names) for n in path),
                            "nodes": tuple((self.kind_of(n), self.raw_id(n)) for n in path),
                        })
        return pd.DataFrame(rows, columns=_EXPLAIN_COLUMNS)

    def neighbors(self, kind: str, raw_id: Any, *, item_names: ItemNames | None = None,
                  top_k: int | None = None) -> pd.DataFrame:
        """Direct neighbours' attention into one node, per layer and head; see
        :func:`neighbor_attention`."""
        node = self.node(kind, raw_id)
        social_in_degree = 0
        if kind == "user" and "user_to_user" in self._ends:
            social_in_degree = int((self._ends["user_to_user"][1] == node).sum())
        frames = []
        for layer in range(self.num_layers):
            for head in range(self.num_heads):
                m = self.matrix(layer, head)
                lo, hi = m.indptr[node], m.indptr[node + 1]
                frames.append(pd.DataFrame({"layer": layer, "head": head,
                                            "neighbor_index": m.indices[lo:hi],
                                            "weight": m.data[lo:hi]}))
        df = pd.concat(frames, ignore_index=True)
        src = df["neighbor_index"].to_numpy()
        src_kind = np.where(src < self.graph.num_users, "user", "item")
        relation = np.where(src_kind == "item", "item_to_user",
                            np.where(kind == "item", "user_to_item", "user_to_user"))
        in_degree = np.where(relation == "user_to_user", social_in_degree, self.degree[node])
        df = df.assign(
            target=[raw_id] * len(df),
            neighbor_type=src_kind,
            neighbor=[self.raw_id(s) for s in src.tolist()],
            neighbor_name=[_name(self.raw_id(s), item_names) if k == "item" else None
                           for s, k in zip(src.tolist(), src_kind)],
            relation=relation,
            neighbor_degree=self.degree[src],
            uniform=1.0 / np.maximum(in_degree, 1),
        )
        df = df.sort_values(["layer", "head", "weight"], ascending=[True, True, False], kind="stable")
        df["rank"] = df.groupby(["layer", "head"]).cumcount() + 1
        if top_k is not None:
            df = df[df["rank"] <= top_k]
        return df[_NEIGHBOR_COLUMNS].reset_index(drop=True)

    def _check_hops(self, hops: int) -> None:
        if not 1 <= hops <= self.num_layers:
            raise ValueError(f"hops must lie in [1, {self.num_layers}] (the number of layers), "
                             f"got {hops}")


_EXPLAIN_COLUMNS = ["side", "target", "hops", "head", "rank", "source_type", "source",
                    "source_name", "weight", "source_total", "path", "nodes"]
_NEIGHBOR_COLUMNS = ["target", "layer", "head", "rank", "neighbor_type", "neighbor",
                     "neighbor_name", "relation", "weight", "neighbor_degree", "uniform"]


def _row_max(m: sp.csr_matrix, values: np.ndarray) -> np.ndarray:
    """``out[x] = max_y m[x, y] * values[y]`` over stored entries (0 for empty rows)."""
    out = np.zeros(m.shape[0])
    if m.nnz == 0:
        return out
    prod = m.data * values[m.indices]
    starts = m.indptr[:-1]
    nonempty = np.diff(m.indptr) > 0
    # Empty rows have zero-length segments, so the starts of non-empty rows alone
    # delimit every row's segment.
    out[nonempty] = np.maximum.reduceat(prod, starts[nonempty])
    return out


def _name(raw: Any, item_names: ItemNames | None) -> str | None:
    if item_names is None:
        return None
    name = item_names.get(raw)
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return None
    return str(name)


def as_attention_graph(model: Any) -> AttentionGraph:
    """``model`` itself if it is an :class:`AttentionGraph`, else its attention graph."""
    return model if isinstance(model, AttentionGraph) else AttentionGraph.from_model(model)


def explain_recommendation(model: Any, user: Any, item: Any, *, top_k: int = 5,
                           item_names: ItemNames | None = None,
                           allow_revisits: bool = False) -> pd.DataFrame:
    r"""The neighbours and paths that carried the most attention into a user and an item.

    For the user's and the item's embedding separately, for every path length
    :math:`k = 1 .. L` (the model's number of layers) and every head :math:`h`, the
    ``top_k`` paths :math:`p = (x_0 \to x_1 \to \dots \to x_k)` ending at the target,
    ranked by their weight

    .. math::
        w_h(p) = \prod_{j=1}^{k} \alpha^{(j-1)}_{x_j \leftarrow x_{j-1},\,h},

    the product of the attention along the path, hop :math:`j` taken in layer
    :math:`j-1`. One-hop paths are the direct neighbours (layer 0). Summed over all
    :math:`k`-hop paths from :math:`x_0`, the weights give the coefficient of
    :math:`x_0`'s ego embedding in the target's layer-:math:`k` embedding
    (``source_total``); a model that averages its :math:`L+1` layer outputs, as LightGCN
    and GATRecommender do, scales it by a further :math:`1/(L+1)`.

    With social edges (``"user_to_user"`` attention), paths may run through friends;
    each relation's weights sum to one over a node's incoming edges of that relation, and
    the model's own mixing of relations (e.g. a learned gate) is not part of the weight.

    Args:
        model: a graph model (``model.attention()``, or LightGCN's fixed weights), or an
            :class:`AttentionGraph` (e.g. built from :func:`~graphrec.explain.fixed_attention`
            to compare with LightGCN's weights).
        user: raw user id.
        item: raw item id (typically one recommended to ``user``).
        top_k: paths per (side, hops, head).
        item_names: raw item id → display name (a dict or a Series such as
            :func:`item_labels` gives), used in ``source_name`` and ``path``.
        allow_revisits: also rank paths through a node twice (``u → i → u``); off by
            default, as they mostly echo the one-hop neighbours. ``source_total`` always
            counts every path.

    Returns:
        A DataFrame with one row per path: ``side`` (``"user"``/``"item"``: whose
        embedding), ``target`` (its raw id), ``hops``, ``head``, ``rank``,
        ``source_type``, ``source`` (raw id of the path's first node), ``source_name``,
        ``weight``, ``source_total``, ``path`` (readable, in message order) and ``nodes``
        (tuple of ``(type, raw id)``, in message order).

    Raises:
        UnknownIdError: (a ``KeyError`` and ``ValueError``) naming an unknown user or item.
    """
    return as_attention_graph(model).explain(user, item, top_k=top_k, item_names=item_names,
                                             allow_revisits=allow_revisits)


def neighbor_attention(model: Any, node: Any, kind: str = "user", *,
                       item_names: ItemNames | None = None, top_k: int | None = None) -> pd.DataFrame:
    """Attention from each direct neighbour into one user or item, in every layer and head.

    Args:
        model: a graph model or an :class:`AttentionGraph`.
        node: raw id of the user (``kind="user"``) or item (``kind="item"``).
        item_names: raw item id → display name.
        top_k: keep the ``top_k`` heaviest neighbours per (layer, head).

    Returns:
        One row per (layer, head, neighbour): ``target``, ``layer``, ``head``, ``rank``,
        ``neighbor_type``, ``neighbor`` (raw id), ``neighbor_name``, ``relation``,
        ``weight``, ``neighbor_degree`` (its interactions) and ``uniform`` (the weight
        every neighbour of that relation would get under uniform attention,
        ``1 / in-degree``).
    """
    return as_attention_graph(model).neighbors(kind, node, item_names=item_names, top_k=top_k)


def item_labels(dataset: Any, column: str = "title") -> pd.Series:
    """Raw item id → ``column`` of a dataset's ``items`` frame (e.g. MovieLens titles).

    The ``items`` frame of :mod:`graphrec.datasets` is indexed by item index; the
    explanation functions speak raw ids, so the frame is re-indexed by
    ``dataset.item_map``.
    """
    items = getattr(dataset, "items", None)
    if items is None:
        raise ValueError(f"{getattr(dataset, 'name', 'this dataset')!r} has no item metadata")
    if column not in items.columns:
        raise ValueError(f"item metadata has no column {column!r}; it has {list(items.columns)}")
    values = items[column].reindex(pd.RangeIndex(dataset.num_items)).to_numpy()
    return pd.Series(values, index=dataset.item_map.raw, name=column)


__all__ = [
    "AttentionGraph", "UnknownIdError", "as_attention_graph",
    "explain_recommendation", "item_labels", "lookup", "neighbor_attention",
]
