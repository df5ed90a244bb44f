r"""EASE: a closed-form linear item–item autoencoder (Steck, WWW 2019).

With the binarised user × item matrix :math:`X \in \{0,1\}^{U \times I}`, EASE learns the
item–item weights

.. math::
    B = \operatorname*{arg\,min}_{B}\ \lVert X - XB \rVert_F^2 + \lambda \lVert B \rVert_F^2
    \quad \text{s.t.}\ \operatorname{diag}(B) = 0,

whose closed form is :math:`P = (X^\top X + \lambda I)^{-1}`,
:math:`B = I - P\,\operatorname{diag}(1 / \operatorname{diag}(P))`, i.e.
:math:`B_{ij} = -P_{ij} / P_{jj}` for :math:`i \ne j` and :math:`B_{jj} = 0`. Column
:math:`j` of :math:`B` is the ridge regression of item :math:`j` on all other items.
A user's scores are :math:`s_u = x_u B`.

:math:`B` is inherently dense, so the model holds an :math:`I \times I` float32 matrix
(6.7 GB for Gowalla's 40,981 items) and ``fit()`` costs one Cholesky factorisation and
inverse, about :math:`I^3` flops. Both are computed in place in that matrix (LAPACK
``spotrf``/``spotri``): float32 is enough, as :math:`X^\top X + \lambda I` is well
conditioned for the :math:`\lambda` EASE uses (its condition number is at most
:math:`1 + \sigma_{\max}^2(X) / \lambda`), and float64 would double both the memory and
the time.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
from scipy.linalg import lapack
from torch import Tensor

from graphrec.data.graph import RecGraph
from graphrec.linalg import row_split_matmul, to_torch_csr
from graphrec.models.scoring_model import ScoringModel

# Bytes of scratch per step of the blocked loops in fit() (sparse Gram rows, transposes).
_BLOCK_BYTES = 256 * 2**20


def ease_bytes(num_items: int) -> int:
    """Bytes of the dense float32 ``num_items × num_items`` matrix EASE needs (it holds
    the Gram matrix, its inverse and finally the weights, in place)."""
    return 4 * num_items * num_items


class EASE(ScoringModel):
    r"""EASE (Embarrassingly Shallow Autoencoder): :math:`s_u = x_u B` with

    .. math::
        P = (X^\top X + \lambda I)^{-1}, \qquad
        B = I - P\,\operatorname{diag}\!\left(1 / \operatorname{diag}(P)\right)

    (:math:`X` the binarised training interactions, so :math:`B` has a zero diagonal and
    column :math:`j` is the ridge regression of item :math:`j` on the others).

    The weights are a dense ``[I, I]`` float32 buffer ``weights``, allocated here; the
    constructor refuses a graph whose matrix would not fit ``memory_budget_mb``.
    ``fit()`` runs on the CPU (LAPACK, with as many threads as OpenBLAS is given, e.g.
    ``OPENBLAS_NUM_THREADS``) and copies the result to the model's device.

    Args:
        graph: the training graph (interaction values are binarised).
        l2: :math:`\lambda > 0`, the ridge penalty (Steck reports 200–1000 as good values).
        memory_budget_mb: MiB the dense matrix may take.

    Raises:
        ValueError: for :math:`\lambda \le 0`, a non-positive budget, or a matrix larger
            than the budget.
    """

    def __init__(self, graph: RecGraph, l2: float = 500.0, memory_budget_mb: float = 4096) -> None:
        super().__init__(graph)
        if not (math.isfinite(l2) and l2 > 0):
            raise ValueError(f"l2 must be a positive finite number, got {l2}")
        if not memory_budget_mb > 0:
            raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
        need = ease_bytes(graph.num_items)
        if need > memory_budget_mb * 2**20:
            raise ValueError(
                f"EASE needs a dense {graph.num_items:,} x {graph.num_items:,} float32 item-item "
                f"matrix ({need / 2**20:,.0f} MiB), over memory_budget_mb={memory_budget_mb:,.0f} "
                f"MiB; raise memory_budget_mb if the memory is there, or use ItemKNN or a graph "
                f"filter (GFCF), whose item-item matrices are sparse")
        self.l2 = float(l2)
        self.memory_budget_mb = float(memory_budget_mb)
        self.register_buffer("weights", torch.zeros(graph.num_items, graph.num_items))
        self._ui = sp.csr_matrix(graph.ui, dtype=np.float32, copy=True)
        self._ui.data[:] = 1.0

    # ------------------------------------------------------------------ fit
    def _fit(self) -> None:
        n = self.num_items
        on_cpu = self.weights.device.type == "cpu"
        # On the CPU the buffer itself is the workspace: the only dense I x I matrix.
        w = self.weights.numpy() if on_cpu else np.empty((n, n), dtype=np.float32)
        ease_weights_(self._ui, self.l2, w)
        if not on_cpu:
            self.weights.copy_(torch.from_numpy(w))

    # ------------------------------------------------------------------ scoring
    def workspace_bytes_per_user(self) -> int:
        # A block's sparse x dense product, before it lands in the [B, I] output.
        return 4 * self.num_items

    def _score(self, users: Tensor) -> Tensor:
        rows = self._ui[users.cpu().numpy()]
        if self.device.type != "cpu":
            return torch.sparse.mm(to_torch_csr(rows, self.device), self.weights)
        return torch.from_numpy(row_split_matmul(rows, self.weights.numpy(),
                                                 torch.get_num_threads()))


def ease_weights_(x: sp.csr_matrix, l2: float, out: np.ndarray) -> np.ndarray:
    r"""Write EASE's :math:`B` for the (binary) interaction matrix ``x`` into ``out``.

    ``out`` is a C-contiguous float32 ``[I, I]`` array and the only dense matrix used:
    it receives :math:`G = X^\top X + \lambda I` (built from sparse row blocks of
    :math:`X^\top X`), then :math:`P = G^{-1}` by an in-place Cholesky factorisation and
    inverse, then :math:`B_{ij} = -P_{ij} / P_{jj}`, :math:`B_{jj} = 0`.

    Returns:
        ``out``.

    Raises:
        ValueError: when :math:`G` is not numerically positive definite in float32
            (:math:`\lambda` far too small for the data).
    """
    n = x.shape[1]
    if out.shape != (n, n) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {(n, n)}")
    xt = x.T.tocsr()
    step = max(1, _BLOCK_BYTES // (12 * max(n, 1)))
    for s in range(0, n, step):
        e = min(n, s + step)
        out[s:e] = 0.0
        (xt[s:e] @ x).toarray(out=out[s:e])  # zeroed first: older scipy adds into out
    out[np.diag_indices(n)] += np.float32(l2)
    # G is symmetric, so its transpose (a Fortran-ordered view of the same memory) is G
    # too, and LAPACK can work on it in place; 'upper' of the view is the array's lower
    # triangle.
    view = out.T
    factor, info = lapack.spotrf(view, lower=0, overwrite_a=1, clean=0)
    if info != 0 or not np.shares_memory(factor, out):
        raise ValueError(_not_pd(info, l2) if info > 0 else f"spotrf failed (info={info})")
    inv, info = lapack.spotri(factor, lower=0, overwrite_c=1)
    if info != 0 or not np.shares_memory(inv, out):
        raise ValueError(_not_pd(info, l2) if info > 0 else f"spotri failed (info={info})")
    # Only the lower triangle of `out` holds P: mirror it, block by block to stay in place.
    for s in range(0, n, step):
        e = min(n, s + step)
        block = out[s:e, s:e]
        block[np.triu_indices(e - s, 1)] = block.T[np.triu_indices(e - s, 1)]
        out[s:e, e:] = out[e:, s:e].T
    scale = (-1.0 / out[np.diag_indices(n)].astype(np.float64)).astype(np.float32)
    for s in range(0, n, step):
        out[s:s + step] *= scale
    out[np.diag_indices(n)] = 0.0
    return out


def _not_pd(info: int, l2: float) -> str:
    return (f"X^T X + l2 I is not numerically positive definite in float32 (leading minor "
            f"{info}); l2={l2:g} is too small for these data, use a larger l2")
