r"""Implicit alternating least squares (iALS), vectorised over all users and items.

Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets" (ICDM 2008)
fit user factors :math:`x_u \in \mathbb{R}^f` and item factors :math:`y_i \in \mathbb{R}^f`
to *every* user–item pair, observed or not, with a confidence weight:

.. math::
    L(X, Y) = \sum_{u, i} c_{ui} \left(p_{ui} - x_u^\top y_i\right)^2
              + \sum_u \lambda_u \lVert x_u \rVert^2 + \sum_i \lambda_i \lVert y_i \rVert^2,

with :math:`p_{ui} = 1` and :math:`c_{ui} = 1 + \alpha` on training pairs (interaction
values are binarised) and :math:`p_{ui} = 0`, :math:`c_{ui} = 1` elsewhere. The
regulariser is scaled by frequency (Rendle et al., "Revisiting the Performance of iALS on
Item Recommendation Benchmarks", RecSys 2022): with :math:`n_u` the training items of
user :math:`u`, :math:`m_i` the training users of item :math:`i` and :math:`I, U` the
numbers of items and users,

.. math::
    \lambda_u = \lambda \left(\textstyle\sum_i c_{ui}\right)^{\nu}
              = \lambda \left(I + \alpha\, n_u\right)^{\nu}, \qquad
    \lambda_i = \lambda \left(U + \alpha\, m_i\right)^{\nu}.

With :math:`\nu = 1` (the default) :math:`\lambda` is a penalty per unit of confidence
weight: dividing user :math:`u`'s terms by :math:`\sum_i c_{ui}` leaves a weighted *mean*
squared error plus :math:`\lambda \lVert x_u \rVert^2`, so one :math:`\lambda` suits
datasets of any size, and heavy users and popular items are held back in proportion to
their data. Up to the factor :math:`1 + \alpha` this is Rendle et al.'s
:math:`\lambda(|I_u| + \alpha_0 |I|)` with their unobserved weight
:math:`\alpha_0 = 1/(1 + \alpha)`. :math:`\nu = 0` gives the plain :math:`\lambda` of
Hu et al. and of the ``implicit`` library (whose confidence is :math:`\alpha r_{ui}`, not
:math:`1 + \alpha r_{ui}`: its ``alpha=a`` is this ``alpha=a-1`` on binary data).

With :math:`Y` fixed, :math:`L` is a ridge regression per user, solved by the normal
equations

.. math::
    \underbrace{\left(Y^\top Y + \alpha\, Y_u^\top Y_u + \lambda_u I\right)}_{A_u} x_u
    = (1 + \alpha)\, Y_u^\top \mathbf{1},

where :math:`Y_u` holds the rows of the user's training items: :math:`Y^\top Y` is shared
by all users and the rest is sparse. One iteration solves every user, then every item
(the same system with the roles of :math:`X` and :math:`Y` swapped), each solve lowering
:math:`L`.

The solves are a few conjugate-gradient steps per sweep, warm-started from the current
factors, as in the ``implicit`` library (Takács, Pilászy & Tikk, RecSys 2011), but with all
rows advancing together: for the search directions :math:`P` of every user,

.. math::
    A P = P\, Y^\top Y + \lambda \circ P + \alpha\, \bigl(R \circ P Y^\top\bigr)\, Y,

one dense product, one sampled dense–dense product on the pattern of :math:`R` and one
sparse–dense product: :math:`O(U f^2 + \mathrm{nnz}\, f)` per step. An exact batched
Cholesky solve (build every :math:`A_u` in :math:`O(\mathrm{nnz}\, f^2)`, factorise in
:math:`O(U f^3)`) was measured on Gowalla at :math:`f = 64`, one thread: 122 s for 15
iterations, over 15 times the time of 3 CG steps per sweep, for the same validation
Recall@20 (0.1357 vs 0.1358), so it was left out; ``cg_steps = f`` gives the exact solve
when one is wanted.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec.data.graph import RecGraph
from graphrec.linalg import to_torch_csr
from graphrec.models.scoring_model import NotFittedError, ScoringModel
from graphrec.scoring import DotScorer


def _row_sums(crow: Tensor, col: Tensor, weights: Tensor, y: Tensor) -> Tensor:
    r""":math:`W Y` for the sparse :math:`W` with pattern ``(crow, col)`` and values
    ``weights``: row :math:`u` is :math:`\sum_i w_{ui}\, y_i`.

    ``embedding_bag`` (one bag of item rows per user) is torch's tuned kernel for this
    gather-and-sum; on the CPU it runs 2-3x faster than a sparse CSR @ dense product.
    """
    return F.embedding_bag(col, y, crow, mode="sum", per_sample_weights=weights,
                           include_last_offset=True)


def solve_cg(x0: Tensor, y: Tensor, r: Tensor, alpha: float, reg: Tensor, steps: int,
             block_rows: int | None = None) -> Tensor:
    r"""``steps`` conjugate-gradient steps on every row's normal equations.

    Solves :math:`\left(Y^\top Y + \alpha\, Y_u^\top Y_u + \lambda_u I\right) x_u =
    (1 + \alpha)\, Y_u^\top \mathbf{1}` for all rows :math:`u` of ``r`` (see the module
    docstring), starting from ``x0``. CG on a symmetric positive definite system lowers
    the quadratic it minimises at every step, so even a truncated solve lowers the iALS
    loss; with ``steps = f`` it is exact up to rounding.

    The rows' systems are independent, so they are solved in blocks of ``block_rows``
    rows, every step vectorised over the block. On the CPU the default block keeps each
    ``[rows, f]`` temporary near 4 MiB: the block's CG state stays in cache and its
    temporaries are reused by the allocator, where whole-matrix temporaries (40 MiB on
    Gowalla at :math:`f = 256`) would be fresh pages every step and cost as much as the
    arithmetic. Elsewhere (GPU) the default is all rows at once.

    Args:
        x0: ``[n, f]`` starting point (not modified).
        y: ``[m, f]`` the fixed side's factors.
        r: ``[n, m]`` sparse CSR tensor of the training pairs (only its pattern is used),
            same dtype and device as the factors.
        alpha: :math:`\alpha` (observed pairs weigh :math:`1 + \alpha`).
        reg: ``[n]`` per-row :math:`\lambda_u`.
        steps: CG steps.
        block_rows: rows solved together (see above).

    Returns:
        ``[n, f]`` the new factors.
    """
    n, f = x0.shape
    if block_rows is None:
        block_rows = max(1, (1 << 20) // f) if x0.device.type == "cpu" else max(n, 1)
    crow, col, ones = r.crow_indices(), r.col_indices(), r.values()
    gram = y.T @ y
    x = x0.clone()
    # A row without training pairs has b = 0: its exact solution is 0 (as in implicit).
    x[crow.diff() == 0] = 0.0
    for s in range(0, n, block_rows):
        e = min(n, s + block_rows)
        a, b = int(crow[s]), int(crow[e])
        rb = torch.sparse_csr_tensor(crow[s:e + 1] - a, col[a:b], ones[a:b],
                                     size=(e - s, r.shape[1]))
        _cg_block(x[s:e], y, gram, rb, alpha, reg[s:e, None], steps)
    return x


def _cg_block(x: Tensor, y: Tensor, gram: Tensor, r: Tensor, alpha: float, reg: Tensor,
              steps: int) -> None:
    """CG for the rows of ``r``, updating ``x`` (their factors) in place."""
    crow, col = r.crow_indices(), r.col_indices()
    yt = y.T  # row-major y as the sampled product's right factor: its fast layout

    def dots(p: Tensor) -> Tensor:
        """The dot products of each row of ``p`` with its items' factors, in CSR order."""
        return torch.sparse.sampled_addmm(r, p, yt, beta=0.0).values()

    def rowdot(a: Tensor, b: Tensor) -> Tensor:
        return torch.einsum("ij,ij->i", a, b)  # no [rows, f] temporary, unlike (a*b).sum(1)

    # Residual b - A x with b folded into the sparse part: observed pairs carry
    # (1 + alpha) - alpha * (x_u . y_i), so one sampled and one sparse product serve both.
    res = _row_sums(crow, col, dots(x).mul_(-alpha).add_(1.0 + alpha), y)
    res.addmm_(x, gram, alpha=-1.0).addcmul_(reg, x, value=-1.0)
    p = res.clone()
    ap = torch.empty_like(p)
    rs = rowdot(res, res)
    for _ in range(steps):
        torch.mm(p, gram, out=ap)
        ap.add_(_row_sums(crow, col, dots(p).mul_(alpha), y)).addcmul_(reg, p)
        pap = rowdot(p, ap)
        # Rows already solved have p = 0 and stay where they are.
        step = torch.where(pap > 0, rs / torch.where(pap > 0, pap, 1.0), 0.0)[:, None]
        x.addcmul_(step, p)
        res.addcmul_(step, ap, value=-1.0)
        rs_new = rowdot(res, res)
        beta = torch.where(rs > 0, rs_new / torch.where(rs > 0, rs, 1.0), 0.0)[:, None]
        p.mul_(beta).add_(res)
        rs = rs_new


def ials_loss(x: Tensor, y: Tensor, r: Tensor, alpha: float, reg_x: Tensor,
              reg_y: Tensor) -> float:
    r"""The iALS objective :math:`L(X, Y)` of the module docstring, in float64.

    The sum over all :math:`U \times I` pairs never forms them:
    :math:`\sum_{u,i} (x_u^\top y_i)^2 = \langle X^\top X, Y^\top Y \rangle_F`, and the
    observed pairs add :math:`(1 + \alpha)(1 - s_{ui})^2 - s_{ui}^2` with
    :math:`s_{ui} = x_u^\top y_i`.
    """
    x, y, r = x.double(), y.double(), r.double()
    s = torch.sparse.sampled_addmm(r, x, y.T, beta=0.0).values()
    total = ((x.T @ x) * (y.T @ y)).sum()
    total = total + ((1.0 + alpha) * (1.0 - s) ** 2 - s**2).sum()
    total = total + (reg_x.double() * (x * x).sum(1)).sum()
    total = total + (reg_y.double() * (y * y).sum(1)).sum()
    return float(total)


class IALS(ScoringModel):
    r"""Implicit ALS matrix factorisation: :math:`s_{ui} = x_u^\top y_i`.

    ``fit()`` draws :math:`X, Y` from :math:`\mathcal{N}(0, \sigma^2)` and runs
    ``iterations`` alternating sweeps (all users, then all items) on the objective of the
    module docstring. Everything runs on the device of the model's buffers.

    The defaults ``l2=3e-3``, ``alpha=100`` were the best validation Recall@20 on a
    Gowalla carve at both 64 and 256 factors (``benchmarks/ials_vs_implicit.py``); more
    factors fit better there (Recall@20 on test 0.150 at 64, 0.172 at 256, for 5-6 times
    the fit time), as Rendle et al. found.

    Args:
        graph: the training graph; interaction values are binarised.
        factors: :math:`f`.
        l2: :math:`\lambda`, the regularisation per unit of confidence weight (with
            ``reg_exponent=1``).
        alpha: :math:`\alpha`, the extra confidence weight of an observed pair.
        iterations: alternating sweeps.
        cg_steps: conjugate-gradient steps per row and sweep (``factors`` solves exactly).
        seed: seed of the initial factors (drawn on the CPU, so the same on any device).
        init_std: :math:`\sigma`.
        reg_exponent: :math:`\nu`; 0 gives an unscaled :math:`\lambda` as in ``implicit``.
    """

    def __init__(self, graph: RecGraph, factors: int = 64, l2: float = 3e-3,
                 alpha: float = 100.0, iterations: int = 15, cg_steps: int = 3, seed: int = 0,
                 init_std: float = 0.01, reg_exponent: float = 1.0) -> None:
        super().__init__(graph)
        if int(factors) != factors or factors < 1:
            raise ValueError(f"factors must be a positive integer, got {factors}")
        if not l2 > 0:
            raise ValueError(f"l2 must be positive (it keeps every row's system well posed), "
                             f"got {l2}")
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0 (observed pairs weigh 1 + alpha), got {alpha}")
        if int(iterations) != iterations or iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations}")
        if int(cg_steps) != cg_steps or cg_steps < 1:
            raise ValueError(f"cg_steps must be a positive integer, got {cg_steps}")
        if not init_std > 0:
            # Zero factors are a fixed point of ALS: nothing would ever be learned.
            raise ValueError(f"init_std must be positive, got {init_std}")
        if not reg_exponent >= 0:
            raise ValueError(f"reg_exponent must be >= 0, got {reg_exponent}")
        self.factors = int(factors)
        self.l2 = float(l2)
        self.alpha = float(alpha)
        self.iterations = int(iterations)
        self.cg_steps = int(cg_steps)
        self.seed = seed
        self.init_std = float(init_std)
        self.reg_exponent = float(reg_exponent)
        self.register_buffer("user_factors", torch.zeros(graph.num_users, self.factors))
        self.register_buffer("item_factors", torch.zeros(graph.num_items, self.factors))
        ui = sp.csr_matrix(graph.ui, dtype=np.float32, copy=True)
        ui.sum_duplicates()
        ui.data[:] = 1.0
        self._ui = ui

    def regularization(self) -> tuple[Tensor, Tensor]:
        r"""``(λ_u [U], λ_i [I])`` float32 on the CPU: :math:`\lambda (I + \alpha n_u)^\nu`
        and :math:`\lambda (U + \alpha m_i)^\nu`."""
        n_u = np.diff(self._ui.indptr).astype(np.float64)
        m_i = np.bincount(self._ui.indices, minlength=self.num_items).astype(np.float64)
        reg_u = self.l2 * (self.num_items + self.alpha * n_u) ** self.reg_exponent
        reg_i = self.l2 * (self.num_users + self.alpha * m_i) ** self.reg_exponent
        return (torch.from_numpy(reg_u.astype(np.float32)),
                torch.from_numpy(reg_i.astype(np.float32)))

    def initial_factors(self) -> tuple[Tensor, Tensor]:
        """The seeded starting ``(X, Y)`` on the model's device."""
        gen = torch.Generator().manual_seed(self.seed)
        x = torch.randn(self.num_users, self.factors, generator=gen) * self.init_std
        y = torch.randn(self.num_items, self.factors, generator=gen) * self.init_std
        return x.to(self.device), y.to(self.device)

    def _matrices(self) -> tuple[Tensor, Tensor]:
        dev = self.device
        return to_torch_csr(self._ui, dev), to_torch_csr(self._ui.T.tocsr(), dev)

    def _fit(self) -> None:
        r, rt = self._matrices()
        reg_u, reg_i = (t.to(self.device) for t in self.regularization())
        x, y = self.initial_factors()
        for _ in range(self.iterations):
            x = solve_cg(x, y, r, self.alpha, reg_u, self.cg_steps)
            y = solve_cg(y, x, rt, self.alpha, reg_i, self.cg_steps)
        self.user_factors.copy_(x)
        self.item_factors.copy_(y)

    @torch.no_grad()
    def loss(self) -> float:
        """The training objective :math:`L` at the current factors (see :func:`ials_loss`)."""
        r, _ = self._matrices()
        reg_u, reg_i = (t.to(self.device) for t in self.regularization())
        return ials_loss(self.user_factors, self.item_factors, r, self.alpha, reg_u, reg_i)

    def workspace_bytes_per_user(self) -> int:
        # The product writes straight into the [B, I] output.
        return 0

    @property
    def scorer(self) -> DotScorer:
        """How :meth:`embeddings` are compared: the dot product."""
        return DotScorer()

    def embeddings(self) -> tuple[Tensor, Tensor]:
        """The fitted factors ``(X [U, f], Y [I, f])``, whose dot products are the scores.

        With them the :class:`~graphrec.evaluate.Evaluator` ranks an iALS model as it
        ranks embedding models (skipping items by their norm bound, exactly), and
        ``graphrec export --what embeddings`` writes them.
        """
        if not bool(self.fitted):
            raise NotFittedError(f"{type(self).__name__}: call fit() before asking for embeddings")
        return self.user_factors, self.item_factors

    def _score(self, users: Tensor) -> Tensor:
        return self.user_factors[users] @ self.item_factors.T
