"""Sparse, edge-masked graph attention layers and the primitives they are built from.

Layers: :class:`GATConv`, :class:`GATv2Conv`, :class:`DotProductAttentionConv`,
:class:`LightAttentionConv` (attention's light propagation),
:class:`AttentiveAggregator` (GraphRec's MLP attention) and :class:`CosineAttention`
(dense attention over a whole set, e.g. a user over all users).
Primitives: :func:`spmm`, :func:`sddmm`, :func:`edge_softmax`,
:func:`additive_edge_softmax`, :func:`additive_attention`, :func:`gatv2_scores`.
"""

from graphrec.nn.additive_attention import additive_attention
from graphrec.nn.cosine_attention import CosineAttention
from graphrec.nn.gat import GATConv
from graphrec.nn.gatv2 import GATv2Conv
from graphrec.nn.gatv2_score import gatv2_scores
from graphrec.nn.graph_input import GraphInput, as_adjacency, prepare_graph
from graphrec.nn.light_attention import LightAttentionConv
from graphrec.nn.mlp_attention import AttentiveAggregator
from graphrec.nn.softmax import additive_edge_softmax, edge_softmax
from graphrec.nn.sparse_matmul import sddmm, spmm
from graphrec.nn.transformer import DotProductAttentionConv

__all__ = [
    "GATConv",
    "GATv2Conv",
    "DotProductAttentionConv",
    "LightAttentionConv",
    "AttentiveAggregator",
    "CosineAttention",
    "spmm",
    "sddmm",
    "edge_softmax",
    "additive_edge_softmax",
    "additive_attention",
    "gatv2_scores",
    "GraphInput",
    "as_adjacency",
    "prepare_graph",
]
