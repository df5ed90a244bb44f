"""Look inside graph recommenders: attention paths, attention statistics and figures.

>>> from graphrec.explain import explain_recommendation, item_labels
>>> explain_recommendation(model, user=1, item=318, item_names=item_labels(data))  # doctest: +SKIP

* :mod:`~graphrec.explain.weights`: attention from ``model.attention()``, or LightGCN's
  fixed weights in the same format (:func:`fixed_attention`).
* :mod:`~graphrec.explain.paths`: the neighbours and multi-hop paths that carried the
  most attention into a user's and an item's embedding, with raw ids and item names.
* :mod:`~graphrec.explain.stats`: per-node entropy, attention against degree, and the
  distribution per head and relation.
* :mod:`~graphrec.explain.plots`: matplotlib figures (returned, never shown) for all of
  the above and for degree distributions and learning curves.
"""

from graphrec.explain.paths import (
    AttentionGraph,
    UnknownIdError,
    as_attention_graph,
    explain_recommendation,
    item_labels,
    neighbor_attention,
)
from graphrec.explain.stats import (
    attention_entropy,
    attention_summary,
    attention_vs_degree,
    bin_by_degree,
    edge_attention,
)
from graphrec.explain.weights import check_attention, fixed_attention, model_attention

__all__ = [
    "AttentionGraph", "UnknownIdError", "as_attention_graph", "attention_entropy",
    "attention_summary", "attention_vs_degree", "bin_by_degree", "check_attention",
    "edge_attention", "explain_recommendation", "fixed_attention", "item_labels",
    "model_attention", "neighbor_attention",
]
