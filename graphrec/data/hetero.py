"""HeteroGraph: a validated container for graphs of your own, with several node and edge types.

A :class:`~graphrec.data.graph.RecGraph` has users, items and follows. Real problems
often have more: genres, tags, item–item co-occurrence, users grouped in households.
:class:`HeteroGraph` holds any number of node types (each with a count and optional
feature matrix) and relations keyed like PyG's edge types, ``(src_type, relation,
dst_type)``, each an array of (source, destination) index pairs with optional weights.
Everything is checked once, when the graph is built, with errors that name the relation,
the position and the offending id, so that a bad edge list fails here rather than as an
index error deep inside a layer.

Edge ``e`` of a relation is its ``e``-th pair as given; :meth:`HeteroGraph.adjacency`
keeps that id (``Adjacency.edge_id``), so a mask or attention weights over a relation
line up with the arrays you built it from. :meth:`HeteroGraph.from_recgraph` keeps the
RecGraph's interaction and social edge ids the same way.

>>> g = HeteroGraph({"user": 3, "item": 2},
...                 {("user", "rates", "item"): ([0, 1, 2], [1, 0, 1])})
>>> g.adjacency(("user", "rates", "item")).num_dst
2
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from graphrec._optional import require
from graphrec.data.adjacency import Adjacency
from graphrec.data.convert import FOLLOWS, INTERACTS, ITEM, REV_INTERACTS, USER
from graphrec.data.errors import DataError, quote
from graphrec.data.idmap import IdMap

if TYPE_CHECKING:
    from graphrec.data.graph import RecGraph

EdgeType = tuple[str, str, str]


@dataclass(frozen=True)
class Relation:
    """The edges of one relation.

    Attributes:
        src, dst: ``int64`` indices into the source and destination node types.
        weight: optional ``float32`` weight per edge.
    """

    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.src)


class UnknownRelationError(KeyError):
    """A relation the graph does not have (a ``KeyError`` with a readable message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _name(rel: EdgeType) -> str:
    return "(" + ", ".join(repr(p) for p in rel) + ")"


def _as_array(values: Any) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.detach().cpu().numpy()
    if isinstance(values, pd.Series | pd.Index):
        return values.to_numpy()
    return np.asarray(values)


def _check_ids(values: Any, rel: EdgeType, side: str, node_type: str, count: int) -> np.ndarray:
    """``values`` as int64 node indices of ``node_type``, or a DataError naming the first bad one."""
    where = f"relation {_name(rel)}, {side}"
    arr = _as_array(values)
    if arr.ndim != 1:
        raise DataError(f"{where}: expected a 1-D array of node ids, got shape {arr.shape}")
    if arr.dtype == bool:
        raise DataError(f"{where}: got booleans; expected integer node ids")
    if np.issubdtype(arr.dtype, np.floating):
        frac = np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))
        pos = int(frac[0]) if len(frac) else 0
        raise DataError(f"{where} position {pos}: {arr[pos].item()!r} is not an integer node id "
                        f"(ids are {arr.dtype}; pass integers, e.g. .astype('int64'))")
    if not np.issubdtype(arr.dtype, np.integer):
        for pos, value in enumerate(arr.tolist()):
            whole = isinstance(value, int | np.integer) and not isinstance(value, bool)
            if not whole:
                raise DataError(f"{where} position {pos}: {quote(value)} is not an integer node id "
                                f"(map raw ids to indices first, e.g. with graphrec.data.IdMap)")
        arr = arr.astype(np.int64)
    arr = arr.astype(np.int64, copy=False)
    if len(arr):
        bad = np.flatnonzero((arr < 0) | (arr >= count))
        if len(bad):
            pos = int(bad[0])
            what = "is negative" if arr[pos] < 0 else "is out of range"
            raise DataError(f"{where} position {pos}: id {int(arr[pos])} {what}; node type "
                            f"{node_type!r} has {count} nodes (ids 0..{count - 1})"
                            + (f"; {len(bad)} bad ids in all" if len(bad) > 1 else ""))
    return arr


def _split_edges(edges: Any, rel: EdgeType) -> tuple[Any, Any, Any]:
    """(src, dst, weight or None) from the accepted edge forms."""
    if isinstance(edges, Relation):
        return edges.src, edges.dst, edges.weight
    if isinstance(edges, pd.DataFrame):
        missing = [c for c in ("src", "dst") if c not in edges.columns]
        if missing:
            raise DataError(f"relation {_name(rel)}: edge DataFrame lacks columns {missing}; "
                            f"it has {list(edges.columns)}")
        return edges["src"], edges["dst"], edges["weight"] if "weight" in edges.columns else None
    if isinstance(edges, tuple | list) and len(edges) in (2, 3):
        return edges[0], edges[1], edges[2] if len(edges) == 3 else None
    arr = _as_array(edges)
    if arr.ndim == 2 and arr.shape[0] == 2:
        return arr[0], arr[1], None
    raise DataError(f"relation {_name(rel)}: edges must be (src, dst), (src, dst, weight), a "
                    f"(2, E) array or tensor, or a DataFrame with src/dst columns; got "
                    f"{type(edges).__name__}" + (f" of shape {arr.shape}" if arr.ndim else ""))


class HeteroGraph:
    """Node types with counts and features, relations with edges, all validated.

    Args:
        num_nodes: node type → number of nodes (ids ``0 .. n-1``).
        relations: ``(src_type, relation, dst_type)`` → edges, given as ``(src, dst)``,
            ``(src, dst, weight)``, a ``(2, E)`` array/tensor or a DataFrame with ``src``,
            ``dst`` (and optionally ``weight``) columns. Ids are integer node indices.
        features: node type → feature matrix (``(n, F)`` array, tensor or DataFrame; a
            1-D array is one feature), stored as float32 tensors.
        id_maps: node type → :class:`~graphrec.data.idmap.IdMap` of raw ids (optional).

    Raises:
        DataError: a relation whose node types are not declared, an id that is not an
            integer, negative or out of range (naming relation, side, position and id),
            feature rows that do not match the node count, non-finite features,
            weights of the wrong length.
    """

    def __init__(
        self,
        num_nodes: Mapping[str, int],
        relations: Mapping[EdgeType, Any] | None = None,
        *,
        features: Mapping[str, Any] | None = None,
        id_maps: Mapping[str, IdMap] | None = None,
    ) -> None:
        self.num_nodes: dict[str, int] = {}
        for node_type, count in num_nodes.items():
            if not isinstance(node_type, str) or not node_type:
                raise DataError(f"node types must be non-empty strings, got {node_type!r}")
            if isinstance(count, bool):
                raise DataError(f"node type {node_type!r}: count must be an integer, got {count!r}")
            try:
                n = operator.index(count)
            except TypeError:
                raise DataError(f"node type {node_type!r}: count must be an integer, "
                                f"got {count!r}") from None
            if n < 0:
                raise DataError(f"node type {node_type!r}: count must be >= 0, got {n}")
            self.num_nodes[node_type] = n
        self.relations: dict[EdgeType, Relation] = {}
        for rel, edges in (relations or {}).items():
            rel = self._check_type(rel)
            self.relations[rel] = self._check_edges(rel, edges)
        self.features: dict[str, Tensor] = {}
        for node_type, x in (features or {}).items():
            self.features[node_type] = self._check_features(node_type, x)
        self.id_maps: dict[str, IdMap] = {}
        for node_type, id_map in (id_maps or {}).items():
            self._check_node_type(node_type, "id map")
            if len(id_map) != self.num_nodes[node_type]:
                raise DataError(f"id map of node type {node_type!r} has {len(id_map)} ids for "
                                f"{self.num_nodes[node_type]} nodes")
            self.id_maps[node_type] = id_map
        self._adjacency: dict[tuple[EdgeType, str], Adjacency] = {}

    # ------------------------------------------------------------------ validation
    def _check_node_type(self, node_type: str, what: str) -> None:
        if node_type not in self.num_nodes:
            raise DataError(f"{what}: node type {node_type!r} is not declared; declared types "
                            f"are {sorted(self.num_nodes)}")

    def _check_type(self, rel: Any) -> EdgeType:
        if not (isinstance(rel, tuple) and len(rel) == 3 and all(isinstance(p, str) for p in rel)):
            raise DataError(f"edge types must be (src_type, relation, dst_type) tuples of "
                            f"strings, got {rel!r}")
        for side, node_type in (("source", rel[0]), ("destination", rel[2])):
            self._check_node_type(node_type, f"relation {_name(rel)} {side}")
        return rel

    def _check_edges(self, rel: EdgeType, edges: Any) -> Relation:
        src, dst, weight = _split_edges(edges, rel)
        src = _check_ids(src, rel, "src", rel[0], self.num_nodes[rel[0]])
        dst = _check_ids(dst, rel, "dst", rel[2], self.num_nodes[rel[2]])
        if len(src) != len(dst):
            raise DataError(f"relation {_name(rel)}: {len(src)} sources but {len(dst)} "
                            f"destinations")
        w = None
        if weight is not None:
            w = _as_array(weight).astype(np.float32)
            if w.shape != src.shape:
                raise DataError(f"relation {_name(rel)}: weight has shape {w.shape} for "
                                f"{len(src)} edges")
            bad = np.flatnonzero(~np.isfinite(w))
            if len(bad):
                raise DataError(f"relation {_name(rel)}, weight position {int(bad[0])}: "
                                f"{w[bad[0]]} is not finite")
        return Relation(src, dst, w)

    def _check_features(self, node_type: str, x: Any) -> Tensor:
        self._check_node_type(node_type, "features")
        arr = x.to_numpy() if isinstance(x, pd.DataFrame) else _as_array(x)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise DataError(f"features of node type {node_type!r} must be 2-D (nodes × "
                            f"features), got shape {arr.shape}")
        if arr.shape[0] != self.num_nodes[node_type]:
            raise DataError(f"features of node type {node_type!r} have {arr.shape[0]} rows but "
                            f"the type has {self.num_nodes[node_type]} nodes")
        try:
            arr = arr.astype(np.float32)
        except (TypeError, ValueError) as exc:
            raise DataError(f"features of node type {node_type!r} are not numeric: {exc}") from None
        bad = np.argwhere(~np.isfinite(arr))
        if len(bad):
            row, col = (int(v) for v in bad[0])
            raise DataError(f"features of node type {node_type!r}, row {row}, column {col}: "
                            f"{arr[row, col]} is not finite")
        return torch.from_numpy(np.ascontiguousarray(arr))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_recgraph(
        cls,
        graph: RecGraph,
        relations: Mapping[EdgeType, Any] | None = None,
        *,
        num_nodes: Mapping[str, int] | None = None,
        features: Mapping[str, Any] | None = None,
        reverse: bool = True,
    ) -> HeteroGraph:
        """A RecGraph's users, items and edges, plus relations and node types of your own.

        The interactions become ``("user", "interacts", "item")`` (and, with
        ``reverse``, ``("item", "rev_interacts", "user")``), social edges
        ``("user", "follows", "user")``: the names of
        :func:`~graphrec.data.convert.to_pyg`. Edge ``e`` of each is the RecGraph's edge
        ``e``, so a model can pass the Trainer's interaction ``edge_mask`` straight to
        these relations' adjacencies.

        Args:
            graph: the training graph; its user and item id maps are kept.
            relations: extra relations (see the class docstring).
            num_nodes: extra node types they need (e.g. ``{"genre": 20}``).
            features: node features, e.g. ``{"item": genre_matrix}``.
            reverse: add the reversed interaction relation.
        """
        counts = {USER: graph.num_users, ITEM: graph.num_items, **(num_nodes or {})}
        users, items = graph.edges()
        weight = graph.ui.data.astype(np.float32)
        base: dict[EdgeType, Any] = {INTERACTS: (users, items, weight)}
        if reverse:
            base[REV_INTERACTS] = (items, users, weight)
        if graph.social is not None:
            src, dst = graph.social_edges()
            base[FOLLOWS] = (src, dst, graph.social.data.astype(np.float32))
        for rel in relations or {}:
            if rel in base:
                raise DataError(f"relation {_name(rel)} already comes from the RecGraph")
        return cls(counts, {**base, **(relations or {})}, features=features,
                   id_maps={USER: graph.user_map, ITEM: graph.item_map})

    def with_relation(self, rel: EdgeType, edges: Any) -> HeteroGraph:
        """A copy with relation ``rel`` added (or replaced); arrays are shared, not copied."""
        return HeteroGraph(self.num_nodes, {**self.relations, rel: edges},
                           features=self.features, id_maps=self.id_maps)

    def with_features(self, node_type: str, x: Any) -> HeteroGraph:
        """A copy with the features of ``node_type`` set (or replaced)."""
        return HeteroGraph(self.num_nodes, self.relations, features={**self.features, node_type: x},
                           id_maps=self.id_maps)

    def with_reverse(self, rel: EdgeType | str, name: str | None = None) -> HeteroGraph:
        """A copy with the reverse of ``rel`` added as ``(dst_type, name, src_type)``.

        ``name`` defaults to ``"rev_" + relation``. Edge ``e`` of the reverse is edge
        ``e`` of ``rel``.
        """
        rel = self.edge_type(rel)
        r = self.relations[rel]
        return self.with_relation((rel[2], name or f"rev_{rel[1]}", rel[0]), (r.dst, r.src, r.weight))

    # ------------------------------------------------------------------ access
    @property
    def node_types(self) -> list[str]:
        return list(self.num_nodes)

    @property
    def edge_types(self) -> list[EdgeType]:
        return list(self.relations)

    def edge_type(self, rel: EdgeType | str) -> EdgeType:
        """The full edge type of ``rel``; a bare relation name works when it is unique."""
        known = ", ".join(_name(r) for r in self.relations) or "none"
        if isinstance(rel, tuple):
            if rel not in self.relations:
                raise UnknownRelationError(f"no relation {_name(rel)}; relations are {known}")
            return rel
        matches = [r for r in self.relations if r[1] == rel]
        if len(matches) != 1:
            what = "no relation" if not matches else "several relations"
            raise UnknownRelationError(f"{what} named {rel!r}; relations are {known}")
        return matches[0]

    def num_edges(self, rel: EdgeType | str) -> int:
        return len(self.relations[self.edge_type(rel)])

    def edges(self, rel: EdgeType | str) -> tuple[np.ndarray, np.ndarray]:
        """``(src, dst)`` index arrays of ``rel``, in edge-id order."""
        r = self.relations[self.edge_type(rel)]
        return r.src, r.dst

    def edge_index(self, rel: EdgeType | str, device: torch.device | str = "cpu") -> Tensor:
        """``(2, E)`` int64 tensor of (source, destination) rows in edge-id order."""
        src, dst = self.edges(rel)
        return torch.from_numpy(np.stack([src, dst])).to(device)

    def degree(self, rel: EdgeType | str, side: str = "dst") -> np.ndarray:
        """Edges per node of the destination (``side="dst"``) or source type of ``rel``."""
        rel = self.edge_type(rel)
        if side not in ("src", "dst"):
            raise ValueError(f"side must be 'src' or 'dst', not {side!r}")
        ids, node_type = (self.relations[rel].dst, rel[2]) if side == "dst" else (
            self.relations[rel].src, rel[0])
        return np.bincount(ids, minlength=self.num_nodes[node_type])

    def adjacency(self, rel: EdgeType | str, device: torch.device | str = "cpu") -> Adjacency:
        """``rel`` as a destination-major :class:`~graphrec.data.adjacency.Adjacency`.

        Its ``edge_id`` is the edge's position in the relation, its weight the relation's
        weights. The object is built once per device and cached: the graphrec.nn layers
        cache their derived indices on it, so reusing it is the fast path.

        >>> conv = GATConv((16, 16), 8, heads=2, add_self_loops=False)  # doctest: +SKIP
        >>> out = conv((x_user, x_item), g.adjacency(("user", "interacts", "item")))  # doctest: +SKIP
        """
        rel = self.edge_type(rel)
        key = (rel, str(torch.device(device)))
        if key not in self._adjacency:
            r = self.relations[rel]
            weight = None if r.weight is None else torch.from_numpy(r.weight)
            adj = Adjacency.from_edge_index(self.edge_index(rel),
                                            (self.num_nodes[rel[0]], self.num_nodes[rel[2]]), weight)
            self._adjacency[key] = adj.to(device)
        return self._adjacency[key]

    def summary(self) -> pd.DataFrame:
        """One row per relation: its types, edges, weighting and mean in-degree."""
        rows = []
        for rel, r in self.relations.items():
            rows.append({"src_type": rel[0], "relation": rel[1], "dst_type": rel[2],
                         "edges": len(r), "weighted": r.weight is not None,
                         "mean_in_degree": len(r) / max(self.num_nodes[rel[2]], 1)})
        return pd.DataFrame(rows, columns=["src_type", "relation", "dst_type", "edges", "weighted",
                                           "mean_in_degree"])

    def __repr__(self) -> str:
        nodes = ", ".join(f"{t}={n}" + (f" (features {tuple(self.features[t].shape)[1]})"
                                        if t in self.features else "")
                          for t, n in self.num_nodes.items())
        rels = ", ".join(f"{_name(r)}: {len(e)}" for r, e in self.relations.items())
        return f"HeteroGraph(nodes: {nodes}; relations: {rels})"

    # ------------------------------------------------------------------ other libraries
    def to_pyg(self) -> Any:
        """A PyG ``HeteroData`` with ``num_nodes``, ``x``, ``edge_index``, ``edge_weight``."""
        HeteroData = require("torch_geometric.data", "pyg", "HeteroGraph.to_pyg()").HeteroData

        data = HeteroData()
        for node_type, n in self.num_nodes.items():
            data[node_type].num_nodes = n
            if node_type in self.features:
                data[node_type].x = self.features[node_type]
        for rel, r in self.relations.items():
            data[rel].edge_index = self.edge_index(rel)
            if r.weight is not None:
                data[rel].edge_weight = torch.from_numpy(r.weight)
        return data
