r"""Training-free graph filters over the normalised interaction matrix (GF-CF).

Shen et al., "How Powerful is Graph Convolution for Recommendation?" (CIKM 2021) read
collaborative filtering as low-pass filtering of a user's interaction row
:math:`r_u \in \{0,1\}^{I}` over the item–item graph. With
:math:`\tilde R = D_U^{-1/2} R D_I^{-1/2}` built from the training graph:

* **linear filter**: :math:`s_u = r_u \tilde P` with :math:`\tilde P = \tilde R^\top \tilde R`
  (eigenvalues in :math:`[0, 1]`; one step of a low-pass filter);
* **ideal low-pass filter**: :math:`s_u = r_u D_I^{-1/2} V_k V_k^\top D_I^{1/2}`, where
  :math:`V_k` holds the right singular vectors of :math:`\tilde R` for its :math:`k`
  largest singular values (a projection on the smoothest :math:`k` signals);
* **GF-CF**: their sum, :math:`s_u = r_u \tilde P + \alpha\, r_u D_I^{-1/2} V_k V_k^\top
  D_I^{1/2}` (the paper's defaults: :math:`k = 256`, :math:`\alpha = 0.3`).

**Generalised normalisation.** ``user_norm`` :math:`a` and ``item_norm`` :math:`b` build
:math:`\tilde R \propto D_U^{-a} R D_I^{-b}` instead, scaled to unit spectral norm
(:func:`~graphrec.linalg.filter_interactions`, as SGFCF generalises it). The defaults
are GF-CF's :math:`a = b = \tfrac12`.

``fit()`` is a truncated SVD (randomized block Krylov, :func:`graphrec.linalg.truncated_svd`)
and nothing else. Scoring never forms a dense item × item matrix: the linear part
multiplies a batch's sparse rows with the sparse :math:`\tilde P` (about 2.5% dense on
Gowalla, built once per model in a few seconds and not saved), and the ideal part is two
thin dense products.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from graphrec.data.graph import RecGraph
from graphrec.linalg import (
    check_degree_exponents,
    degree_scale,
    filter_interactions,
    row_split_matmul,
    truncated_svd,
)
from graphrec.models.scoring_model import ScoringModel


def item_gram(ui: sp.csr_matrix, user_norm: float = 0.5, item_norm: float = 0.5) -> sp.csr_matrix:
    r""":math:`\tilde P = \tilde R^\top \tilde R` as a sparse float32 item × item matrix
    (:math:`\tilde R` from :func:`~graphrec.linalg.filter_interactions`)."""
    rn = filter_interactions(ui, user_norm, item_norm)
    return (rn.T.tocsr() @ rn).tocsr()


class GFCF(ScoringModel):
    r"""GF-CF: linear filter plus ``ideal_weight`` times an ideal low-pass filter.

    .. math::
        s_u = w_{\mathrm{lin}}\; r_u \tilde R^\top \tilde R
              + \alpha\; r_u D_I^{-1/2} V_k V_k^\top D_I^{1/2}

    Args:
        graph: the training graph (users' rows are the signals filtered).
        rank: :math:`k`, singular vectors of the ideal filter (0: no ideal part).
        ideal_weight: :math:`\alpha`.
        linear_weight: :math:`w_{\mathrm{lin}}` (0: the ideal filter alone).
        svd_iters: block Krylov iterations of the truncated SVD (more: closer to the
            exact top-:math:`k` subspace, slower).
        seed: seed of the SVD's random start.
        user_norm: the user degree exponent :math:`a` of
            :math:`\tilde R \propto D_U^{-a} R D_I^{-b}` (scaled to unit spectral norm,
            :func:`~graphrec.linalg.filter_interactions`); GF-CF's is 1/2.
        item_norm: the item degree exponent :math:`b`, also the exponent of the ideal
            part's :math:`D_I^{\mp b}` around :math:`V_k V_k^\top`; GF-CF's is 1/2.
    """

    def __init__(self, graph: RecGraph, rank: int = 256, ideal_weight: float = 0.3,
                 linear_weight: float = 1.0, svd_iters: int = 6, seed: int = 0,
                 user_norm: float = 0.5, item_norm: float = 0.5) -> None:
        super().__init__(graph)
        if rank < 0 or rank > min(graph.num_users, graph.num_items):
            raise ValueError(f"rank must lie in [0, {min(graph.num_users, graph.num_items)}], "
                             f"got {rank}")
        if rank == 0 and ideal_weight != 0:
            raise ValueError("an ideal filter needs rank >= 1 (or set ideal_weight=0)")
        if linear_weight == 0 and (rank == 0 or ideal_weight == 0):
            raise ValueError("both filters are switched off: set linear_weight or "
                             "ideal_weight (with rank >= 1)")
        self.rank = rank
        self.ideal_weight = float(ideal_weight)
        self.linear_weight = float(linear_weight)
        self.svd_iters = svd_iters
        self.seed = seed
        check_degree_exponents(user_norm, item_norm)
        self.user_norm = float(user_norm)
        self.item_norm = float(item_norm)
        self.register_buffer("singular_values", torch.zeros(rank))
        self.register_buffer("item_vectors", torch.zeros(graph.num_items, rank))
        self._gram: sp.csr_matrix | None = None
        self._ui = sp.csr_matrix(graph.ui, dtype=np.float32)
        self._ui.data[:] = 1.0
        di = np.bincount(self._ui.indices, minlength=graph.num_items)
        self._item_scale = torch.from_numpy(degree_scale(di, -self.item_norm))
        self._item_unscale = torch.from_numpy(degree_scale(di, self.item_norm))

    def _fit(self) -> None:
        if self.rank and self.ideal_weight:
            s, v = truncated_svd(self.interactions(), self.rank, iters=self.svd_iters,
                                 seed=self.seed)
            self.singular_values.copy_(s)
            self.item_vectors.copy_(v)

    def interactions(self) -> sp.csr_matrix:
        r""":math:`\tilde R` (float32 CSR, built anew on each call)."""
        return filter_interactions(self._ui, self.user_norm, self.item_norm)

    def gram(self) -> sp.csr_matrix:
        r""":math:`\tilde R^\top \tilde R`, built on first use and kept (not saved)."""
        if self._gram is None:
            self._gram = item_gram(self._ui, self.user_norm, self.item_norm)
        return self._gram

    def workspace_bytes_per_user(self) -> int:
        # The sparse product's output (value + column, about half dense on Gowalla) and
        # its dense copy.
        return 12 * self.num_items

    def _score(self, users: Tensor) -> Tensor:
        rows = self._ui[users.cpu().numpy()]
        dev = self.device
        if self.linear_weight:
            lin = row_split_matmul(rows, self.gram(), torch.get_num_threads())
            scores = torch.from_numpy(lin).to(dev)
            if self.linear_weight != 1.0:
                scores.mul_(self.linear_weight)
        else:
            scores = torch.zeros(len(users), self.num_items, device=dev)
        if self.rank and self.ideal_weight:
            v = self.item_vectors
            # r_u D^{-1/2} V: a sparse row times a thin dense matrix.
            left = torch.from_numpy(rows @ (v.cpu() * self._item_scale[:, None]).numpy()).to(dev)
            right = (v * self._item_unscale.to(dev)[:, None]).T
            scores.addmm_(left, right, alpha=self.ideal_weight)
        return scores


class LinearFilter(GFCF):
    r"""The linear low-pass filter alone: :math:`s_u = r_u \tilde R^\top \tilde R`
    (GF-CF without its ideal part; nothing to fit).

    Args:
        graph: the training graph.
        user_norm: as in :class:`GFCF`.
        item_norm: as in :class:`GFCF`.
    """

    def __init__(self, graph: RecGraph, user_norm: float = 0.5, item_norm: float = 0.5) -> None:
        super().__init__(graph, rank=0, ideal_weight=0.0, user_norm=user_norm, item_norm=item_norm)


class IdealLowPassFilter(GFCF):
    r"""The ideal low-pass filter alone:
    :math:`s_u = r_u D_I^{-1/2} V_k V_k^\top D_I^{1/2}` (GF-CF without its linear part).

    Args:
        graph: the training graph.
        rank: :math:`k`.
        svd_iters: as in :class:`GFCF`.
        seed: as in :class:`GFCF`.
        user_norm: as in :class:`GFCF`.
        item_norm: as in :class:`GFCF`.
    """

    def __init__(self, graph: RecGraph, rank: int = 256, svd_iters: int = 6, seed: int = 0,
                 user_norm: float = 0.5, item_norm: float = 0.5) -> None:
        super().__init__(graph, rank=rank, ideal_weight=1.0, linear_weight=0.0,
                         svd_iters=svd_iters, seed=seed, user_norm=user_norm, item_norm=item_norm)
