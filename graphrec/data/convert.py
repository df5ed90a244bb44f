"""Converters from :class:`~graphrec.data.graph.RecGraph` to PyG, DGL and networkx graphs.

Every converter keeps the graph's stable edge ids: interaction ``e`` is the ``e``-th
stored entry of ``RecGraph.ui`` and social edge ``s`` the ``s``-th stored entry of
``RecGraph.social``. Each converted edge carries that id (``edge_id``), so a boolean mask
or a per-edge value computed in one library can be applied to the graph in any other.

Relations, with the same names in every library:

* ``("user", "interacts", "item")``: one edge per interaction, in edge-id order.
* ``("item", "rev_interacts", "user")``: the same interactions reversed, also in
  edge-id order (edge ``e`` of both relations is interaction ``e``). :func:`to_pyg`
  leaves it to PyG's ``ToUndirected()``, which adds it under this name, unless asked.
* ``("user", "follows", "user")``: social edges ``src → dst``, only when the graph has
  a social part.

The heavy libraries are imported inside the functions, so importing this module costs
nothing and a missing optional library only matters to the converter that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from graphrec._optional import require

if TYPE_CHECKING:
    from graphrec.data.graph import RecGraph

USER, ITEM = "user", "item"
INTERACTS = (USER, "interacts", ITEM)
REV_INTERACTS = (ITEM, "rev_interacts", USER)
FOLLOWS = (USER, "follows", USER)

# DGL's newest wheel (2.1) is built against torch <= 2.2.1; keep in sync with docs/concepts/interop.md.
DGL_MAX_TORCH = "2.2.1"


def _edge_tensors(graph: RecGraph) -> dict[tuple[str, str, str], tuple[Any, Any, Any]]:
    """``relation -> (src, dst, weight)`` as torch tensors, each in its edge-id order."""
    u, i = graph.edges()
    users = torch.from_numpy(u.astype(np.int64))
    items = torch.from_numpy(i.astype(np.int64))
    weight = torch.from_numpy(graph.ui.data.astype(np.float32))
    relations = {INTERACTS: (users, items, weight), REV_INTERACTS: (items, users, weight)}
    if graph.social is not None:
        s, d = graph.social_edges()
        relations[FOLLOWS] = (torch.from_numpy(s.astype(np.int64)),
                              torch.from_numpy(d.astype(np.int64)),
                              torch.from_numpy(graph.social.data.astype(np.float32)))
    return relations


def to_pyg(graph: RecGraph, reverse: bool = False) -> Any:
    """A :class:`torch_geometric.data.HeteroData` of ``graph``.

    Node types ``user`` and ``item`` have ``num_nodes`` set (isolated nodes included).
    Each edge type (see the module docstring) has ``edge_index`` of shape ``(2, E)`` in
    edge-id order, ``edge_id`` (``arange(E)``, kept so that it survives PyG's subgraph
    and sampling utilities) and ``edge_weight`` (the edge values of the RecGraph).

    Args:
        graph: the graph to convert.
        reverse: also add ``("item", "rev_interacts", "user")``. By default only the
            forward relations are stored, as PyG's datasets do, so that
            ``torch_geometric.transforms.ToUndirected()`` adds that same reverse type
            (with ``edge_id`` and ``edge_weight``) instead of a ``rev_rev_interacts``
            one built from an existing reverse.

    Returns:
        The ``HeteroData``.
    """
    HeteroData = require("torch_geometric.data", "pyg", "to_pyg()").HeteroData

    data = HeteroData()
    data[USER].num_nodes = graph.num_users
    data[ITEM].num_nodes = graph.num_items
    for relation, (src, dst, weight) in _edge_tensors(graph).items():
        if relation == REV_INTERACTS and not reverse:
            continue
        store = data[relation]
        store.edge_index = torch.stack([src, dst])
        store.edge_id = torch.arange(src.numel(), dtype=torch.long)
        store.edge_weight = weight
    return data


def import_dgl() -> Any:
    """Import and return the ``dgl`` module, or raise an ImportError that says what to do.

    DGL fails to import in several ways when its build does not match the installed
    torch (ImportError, OSError for a missing shared library, FileNotFoundError,
    RuntimeError …), so any exception is turned into one explanatory ImportError.
    """
    try:
        import dgl
    except Exception as exc:
        raise ImportError(
            f"DGL could not be imported ({type(exc).__name__}: {exc}). "
            f"DGL's newest release (2.1) only loads with torch <= {DGL_MAX_TORCH}, and this "
            f"environment has torch {torch.__version__}. To use to_dgl(), create an "
            f"environment with torch <= {DGL_MAX_TORCH} and install the DGL extra there, "
            f'e.g. `pip install torch==2.2.1 dgl==2.1.0` then `pip install "graphrec[dgl]"`. '
            f"Meanwhile to_pyg() and to_networkx() work with the current torch."
        ) from exc
    return dgl


def to_dgl(graph: RecGraph) -> Any:
    """A DGL heterograph of ``graph``.

    Node types ``user`` and ``item`` (isolated nodes included) and the relations of the
    module docstring. Edges are added in edge-id order, so DGL's own edge id (``eid``) of
    each relation equals the RecGraph edge id; ``edata["edge_id"]`` stores it explicitly
    (it survives subgraphing) and ``edata["weight"]`` holds the edge values.

    Raises:
        ImportError: DGL is not installed or does not load with this torch; the message
            says which versions to install.
    """
    dgl = import_dgl()
    relations = _edge_tensors(graph)
    g = dgl.heterograph(
        {rel: (src, dst) for rel, (src, dst, _) in relations.items()},
        num_nodes_dict={USER: graph.num_users, ITEM: graph.num_items},
    )
    for rel, (src, _, weight) in relations.items():
        g.edges[rel].data["edge_id"] = torch.arange(src.numel(), dtype=torch.long)
        g.edges[rel].data["weight"] = weight
    return g


def to_networkx(graph: RecGraph) -> Any:
    """A networkx graph of ``graph``.

    Nodes are ``("user", u)`` and ``("item", i)`` for every index (isolated ones too),
    with attributes ``bipartite`` (0 for users, 1 for items, the convention of
    :mod:`networkx.algorithms.bipartite`) and ``raw_id`` (the id in the input data).

    Edges carry ``edge_id``, ``weight`` and ``relation`` (``"interacts"`` or
    ``"follows"``). The graph type depends on whether there is a social part:

    * without one, an undirected :class:`networkx.Graph`: one edge per interaction,
      ready for the bipartite algorithms;
    * with one, a :class:`networkx.DiGraph`, because following is not mutual: each
      interaction becomes the two arcs user → item and item → user, which share the
      interaction's ``edge_id``, and each social edge one arc ``src → dst`` (with its
      social edge id). ``G.to_undirected()`` gives the undirected view, with mutual
      follows merged.

    ``G.graph`` holds ``num_users``, ``num_items`` and ``directed``.
    """
    nx = require("networkx", "graph", "to_networkx()")

    directed = graph.social is not None
    g = nx.DiGraph() if directed else nx.Graph()
    g.graph.update(num_users=graph.num_users, num_items=graph.num_items, directed=directed)
    g.add_nodes_from(((USER, u), {"bipartite": 0, "raw_id": raw})
                     for u, raw in enumerate(graph.user_map.raw.tolist()))
    g.add_nodes_from(((ITEM, i), {"bipartite": 1, "raw_id": raw})
                     for i, raw in enumerate(graph.item_map.raw.tolist()))

    users, items = graph.edges()
    weights = graph.ui.data.astype(np.float64)
    interactions = [
        ((USER, u), (ITEM, i), {"edge_id": e, "weight": w, "relation": "interacts"})
        for e, (u, i, w) in enumerate(zip(users.tolist(), items.tolist(), weights.tolist()))
    ]
    g.add_edges_from(interactions)
    if directed:
        g.add_edges_from((b, a, dict(attrs)) for a, b, attrs in interactions)
        src, dst = graph.social_edges()
        g.add_edges_from(
            ((USER, s), (USER, d), {"edge_id": e, "weight": w, "relation": "follows"})
            for e, (s, d, w) in enumerate(zip(src.tolist(), dst.tolist(),
                                              graph.social.data.astype(np.float64).tolist()))
        )
    return g
