r"""Where attention weights come from: a model's ``attention()``, or LightGCN's fixed weights.

Every explanation in :mod:`graphrec.explain` reads attention in one format, the one graph
models return from ``model.attention()``: a list with one dict per layer, mapping

* ``"item_to_user"`` to an ``[E, H]`` tensor: row ``e`` is the weight of the message
  from item ``items[e]`` to user ``users[e]`` (``users, items = graph.edges()``), and each
  user's incoming weights sum to 1 per head;
* ``"user_to_item"`` to ``[E, H]``: the reverse messages, summing to 1 over each item's
  incoming edges;
* optionally ``"user_to_user"`` to ``[E_social, H]``: the message ``src → dst`` of social
  edge ``s`` (``src, dst = graph.social_edges()``), summing to 1 over ``dst``'s
  followees.

Each relation is normalised on its own; a model that mixes relations (social and
interaction messages into one user) does so with its own further weights, which are not
part of these numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphrec.data.graph import RecGraph

#: Relation names of the attention dicts, with the (source, destination) node types.
RELATIONS: dict[str, tuple[str, str]] = {
    "item_to_user": ("item", "user"),
    "user_to_item": ("user", "item"),
    "user_to_user": ("user", "user"),
}

AttentionLayers = Sequence[Mapping[str, Tensor | np.ndarray]]


def fixed_attention(graph: RecGraph, num_layers: int, heads: int = 1) -> list[dict[str, Tensor]]:
    r"""LightGCN's propagation weights in the attention format, for comparison with learned ones.

    LightGCN updates a user with :math:`\sum_{i \in N(u)} e_i / \sqrt{d_u d_i}`. These
    coefficients do not sum to one over :math:`N(u)`; renormalised per destination they
    become

    .. math::
        \alpha_{u \leftarrow i} = \frac{d_i^{-1/2}}{\sum_{k \in N(u)} d_k^{-1/2}},
        \qquad
        \alpha_{i \leftarrow u} = \frac{d_u^{-1/2}}{\sum_{v \in N(i)} d_v^{-1/2}},

    a softmax of :math:`-\tfrac12 \log d` over the neighbours (exactly the attention of
    :class:`~graphrec.models.gat.GATRecommender` before training). They are the same in
    every layer and head. The factor dropped by the renormalisation,
    :math:`\sum_{k} d_k^{-1/2} / \sqrt{d_u}`, scales a node's whole update and does not
    change which neighbours it listens to.

    Args:
        graph: the training graph.
        num_layers: number of layers to return (the same weights in each).
        heads: number of identical heads (to line up with a multi-head model).

    Returns:
        ``num_layers`` dicts with ``"item_to_user"`` and ``"user_to_item"`` float32
        tensors of shape ``[E, heads]`` in edge-id order.
    """
    if num_layers < 1 or heads < 1:
        raise ValueError(f"num_layers and heads must be >= 1, got {num_layers} and {heads}")
    users, items = graph.edges()
    du = graph.user_degree().astype(np.float64)
    di = graph.item_degree().astype(np.float64)
    # Every node at the end of an edge has degree >= 1, so no division by zero here.
    inv_i = di[items] ** -0.5
    inv_u = du[users] ** -0.5
    to_user = inv_i / np.bincount(users, inv_i, minlength=graph.num_users)[users]
    to_item = inv_u / np.bincount(items, inv_u, minlength=graph.num_items)[items]
    layer = {
        "item_to_user": torch.from_numpy(np.repeat(to_user[:, None], heads, 1).astype(np.float32)),
        "user_to_item": torch.from_numpy(np.repeat(to_item[:, None], heads, 1).astype(np.float32)),
    }
    return [dict(layer) for _ in range(num_layers)]


def model_attention(model: Any) -> list[dict[str, Tensor]]:
    """The attention weights of ``model`` in the format described in the module docstring.

    Models with an ``attention()`` method are asked for theirs; LightGCN, which has
    fixed weights, gets :func:`fixed_attention`. Anything else (e.g. MF, which has no
    graph propagation) raises ``TypeError``.
    """
    from graphrec.models.lightgcn import LightGCN

    if callable(getattr(model, "attention", None)):
        with torch.no_grad():
            return list(model.attention())
    if isinstance(model, LightGCN):
        return fixed_attention(model.graph, model.num_layers)
    raise TypeError(f"{type(model).__name__} has no attention() method and no fixed propagation "
                    f"weights to explain (explanations need a graph model such as LightGCN or "
                    f"GATRecommender)")


def check_attention(layers: AttentionLayers, graph: RecGraph) -> list[dict[str, np.ndarray]]:
    """Validate attention dicts against ``graph`` and convert them to float64 numpy arrays.

    1-D arrays are taken as one head. Every relation of every layer must have the same
    number of heads and one row per edge of its relation.

    Raises:
        ValueError: naming the layer and relation that does not fit.
    """
    if len(layers) == 0:
        raise ValueError("attention has no layers")
    out: list[dict[str, np.ndarray]] = []
    heads: int | None = None
    for layer, weights in enumerate(layers):
        missing = [r for r in ("item_to_user", "user_to_item") if r not in weights]
        if missing:
            raise ValueError(f"attention layer {layer} lacks {missing}; it has {sorted(weights)}")
        converted: dict[str, np.ndarray] = {}
        for relation, value in weights.items():
            if relation not in RELATIONS:
                raise ValueError(f"attention layer {layer}: unknown relation {relation!r}; "
                                 f"expected one of {sorted(RELATIONS)}")
            arr = value.detach().float().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
            arr = arr.astype(np.float64)
            if arr.ndim == 1:
                arr = arr[:, None]
            if relation == "user_to_user":
                if graph.social is None:
                    raise ValueError(f"attention layer {layer} has 'user_to_user' weights but "
                                     f"the graph has no social edges")
                expected = graph.num_social_edges
            else:
                expected = graph.num_edges
            if arr.ndim != 2 or arr.shape[0] != expected:
                raise ValueError(f"attention layer {layer}, {relation!r}: expected shape "
                                 f"({expected}, H), got {arr.shape}")
            if heads is None:
                heads = arr.shape[1]
            elif arr.shape[1] != heads:
                raise ValueError(f"attention layer {layer}, {relation!r} has {arr.shape[1]} heads; "
                                 f"earlier relations have {heads}")
            converted[relation] = arr
        out.append(converted)
    return out
