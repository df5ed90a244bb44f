"""What graphrec's attention layers share: sizes, head combination, residual and bias."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def glorot_(t: Tensor) -> Tensor:
    """Glorot-uniform init over the last two dims (as for a ``(1, H, C)`` attention vector)."""
    bound = (6.0 / (t.size(-2) + t.size(-1))) ** 0.5
    with torch.no_grad():
        return t.uniform_(-bound, bound)


class AttentionConv(nn.Module):
    """Base of the attention layers: ``H`` heads of ``C`` channels over ``(src, dst)`` inputs.

    Subclasses build their projections in ``__init__`` (after calling this one), compute
    per-head messages ``(num_dst, H, C)``, and finish with :meth:`combine_heads` and, for
    layers with them, :meth:`add_residual_and_bias`.

    Args:
        in_channels: input size, or ``(src_size, dst_size)`` for bipartite graphs.
        out_channels: ``C``, size per head.
        heads: ``H``.
        concat: concatenate heads (output ``H·C``), else average them (output ``C``).
        dropout: dropout probability on the attention weights (training only).
    """

    def __init__(self, in_channels: int | tuple[int, int], out_channels: int, heads: int,
                 concat: bool, dropout: float) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.concat = concat
        self.dropout = dropout

    @property
    def src_dst_channels(self) -> tuple[int, int]:
        """Input sizes of sources and destinations."""
        c = self.in_channels
        return (c, c) if isinstance(c, int) else (c[0], c[1])

    @property
    def total_out(self) -> int:
        """Output size: ``H·C`` when concatenating heads, else ``C``."""
        return self.heads * self.out_channels if self.concat else self.out_channels

    def _init_residual_and_bias(self, residual: bool, bias: bool) -> None:
        """Create ``res`` (a linear map of the destination input) and ``bias``."""
        dst_in = self.src_dst_channels[1]
        self.res: nn.Linear | None = (nn.Linear(dst_in, self.total_out, bias=False)
                                      if residual else None)
        if bias:
            self.bias: nn.Parameter | None = nn.Parameter(torch.empty(self.total_out))
        else:
            self.register_parameter("bias", None)

    def attention_dropout(self, alpha: Tensor) -> Tensor:
        """Dropout on attention weights while training (identity otherwise)."""
        if self.training and self.dropout > 0:
            return F.dropout(alpha, p=self.dropout)
        return alpha

    def combine_heads(self, out: Tensor) -> Tensor:
        """``(N, H, C)`` → ``(N, H·C)`` (concat) or ``(N, C)`` (mean)."""
        return out.reshape(out.size(0), out.size(1) * out.size(2)) if self.concat else out.mean(dim=1)

    def add_residual_and_bias(self, out: Tensor, x_dst: Tensor | None) -> Tensor:
        """Add ``res(x_dst)`` (when there is a residual and destination input) and ``bias``."""
        if self.res is not None and x_dst is not None:
            out = out + self.res(x_dst)
        if self.bias is not None:
            out = out + self.bias
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"heads={self.heads})")
