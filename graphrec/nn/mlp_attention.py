r"""GraphRec's attention: an MLP scores each incoming edge from its message and its
destination, a softmax over the destination's edges weighs the messages."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphrec.data.adjacency import Adjacency
from graphrec.nn.softmax import edge_softmax
from graphrec.nn.sparse_matmul import spmm

__all__ = ["AttentiveAggregator"]


class AttentiveAggregator(nn.Module):
    r"""GraphRec's attention-weighted aggregation over each destination's incoming edges.

    For a destination :math:`d` with own embedding :math:`\mathbf{t}_d` and incoming edges
    :math:`e` carrying messages :math:`\mathbf{m}_e`:

    .. math::
        a_e = \mathbf{w}_2^\top \mathrm{ReLU}\big(\mathbf{W}_1[\mathbf{m}_e \oplus
              \mathbf{t}_d] + \mathbf{b}_1\big), \qquad
        \alpha_e = \operatorname{softmax}_{e' \to d}(a_{e'})_e, \qquad
        \mathbf{h}_d = \mathrm{ReLU}\Big(\mathbf{W} \sum_{e \to d} \alpha_e \mathbf{m}_e
              + \mathbf{b}\Big),

    or, with ``self_connection``, :math:`\mathbf{h}_d = \mathrm{ReLU}\big(\mathbf{W}
    [\mathbf{t}_d \oplus \sum_{e \to d} \alpha_e \mathbf{m}_e] + \mathbf{b}\big)`, which
    keeps the destination's own embedding in its representation (the authors' released
    implementation of GraphRec does this; the paper's equations do not).

    (A bias on :math:`a_e` would cancel in the softmax and is left out.)
    :math:`\mathbf{W}_1` is stored as two maps, ``att_message`` and ``att_target``, so the
    target part is computed once per node, and :math:`\mathbf{W}_1\mathbf{m}` once per
    source node: a friend (social aggregation) or an (entity, rating level) pair (the
    opinion-aware aggregations). A destination without kept incoming edges sums nothing, so
    :math:`\mathbf{h}_d = \mathrm{ReLU}(\mathbf{b})` (with ``self_connection``,
    :math:`\mathrm{ReLU}(\mathbf{W}[\mathbf{t}_d \oplus \mathbf{0}] + \mathbf{b})`): finite.

    Args:
        dim: embedding size :math:`D`.
        dropout: dropout on the attention MLP's hidden layer during training.
        self_connection: concatenate the destination's own embedding before ``out``.
    """

    def __init__(self, dim: int, dropout: float = 0.0, self_connection: bool = False) -> None:
        super().__init__()
        self.dropout = dropout
        self.self_connection = self_connection
        self.att_message = nn.Linear(dim, dim, bias=False)
        self.att_target = nn.Linear(dim, dim)
        self.att_out = nn.Linear(dim, 1, bias=False)
        self.out = nn.Linear(2 * dim if self_connection else dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.att_message, self.att_target, self.att_out, self.out):
            lin.reset_parameters()

    def forward(self, adj: Adjacency, target: Tensor, messages: Tensor,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Aggregate over ``adj``: edge ``s → d`` carries message row ``s``.

        Args:
            adj: destination-major graph.
            target: ``(num_dst, D)`` destination embeddings :math:`\\mathbf{t}`.
            messages: ``(num_src, D)`` one message per source node (a friend, or an
                (entity, rating level) pair).
            mask: optional bool ``(E,)`` in stored order; ``False`` removes the edge.

        Returns:
            ``(num_dst, D)`` outputs and the attention weights ``(E,)`` in stored order.
        """
        proj = self.att_message(messages).index_select(0, adj.col)
        hidden = F.relu(proj + self.att_target(target).index_select(0, adj.dst_index_cached()))
        hidden = F.dropout(hidden, self.dropout, self.training)
        alpha = edge_softmax(self.att_out(hidden), adj, mask)
        summed = spmm(adj, alpha, messages.unsqueeze(1)).squeeze(1)
        if self.self_connection:
            summed = torch.cat([target, summed], dim=1)
        return F.relu(self.out(summed)), alpha.squeeze(1)
