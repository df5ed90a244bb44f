r"""Polynomial graph filters by Chebyshev interpolation (ChebyCF).

Kim et al., "Graph Spectral Filtering with Chebyshev Interpolation for Recommendation"
(SIGIR 2025) filter a user's interaction row with a *non-linear* function of the item–item
graph instead of GF-CF's linear filter, and approximate that function by a polynomial so
that no eigendecomposition is ever needed. With
:math:`\tilde R = D_U^{-1/2} R D_I^{-1/2}` and :math:`\tilde P = \tilde R^\top \tilde R`
built from the binarised training graph:

**Spectrum and its mapping to** :math:`[-1, 1]`. :math:`\tilde P` is symmetric with
eigenvalues :math:`p \in [0, 1]` (1: the smoothest signals, 0: the noisiest). Its
normalised Laplacian :math:`L = I - \tilde P` has eigenvalues :math:`1 - p \in [0, 1]`,
and the rescaled Laplacian

.. math::  \tilde L = 2L/\lambda_{\max} - I = I - 2\tilde P \qquad (\lambda_{\max} = 1)

has eigenvalues :math:`x = 1 - 2p \in [-1, 1]`, the interval where Chebyshev polynomials
:math:`T_k(\cos\theta) = \cos k\theta` live. A response :math:`h(p)` on :math:`\tilde P`'s
spectrum is the function :math:`f(x) = h\big((1 - x)/2\big)` of :math:`\tilde L`'s.

**Response.** By default the paper's *plateau*, a smoothed low-pass step of flatness
:math:`\varphi > 0`:

.. math::  h_\varphi(p) = \tfrac12 + \tfrac12\,\operatorname{sign}(2p - 1)\,|2p - 1|^{\varphi},
           \qquad f_\varphi(x) = \tfrac12 - \tfrac12\,\operatorname{sign}(x)\,|x|^{\varphi}.

:math:`h(1) = 1` (smooth signals pass), :math:`h(0) = 0` (noise is cut) and
:math:`h(\tfrac12) = \tfrac12`; :math:`\varphi = 1` is GF-CF's linear filter
:math:`h(p) = p`, :math:`\varphi \to 0` the ideal step at :math:`p = \tfrac12`, and
:math:`\varphi > 1` flattens the response around the middle of the spectrum (keeps more
mid-frequency signal than the linear filter and suppresses the ends less sharply). Any
other response may be given as a function of :math:`p`.

**Chebyshev interpolation.** :math:`f` is replaced by the polynomial of degree :math:`K`
(``order``) that interpolates it at the :math:`K + 1` Chebyshev nodes of the first kind,
:math:`x_j = \cos\big(\pi (j + \tfrac12)/(K + 1)\big)`, :math:`j = 0..K` (the roots of
:math:`T_{K+1}`):

.. math::  f(x) \approx \sum_{k=0}^{K} c_k T_k(x), \qquad
           c_k = \frac{2 - [k = 0]}{K + 1} \sum_{j=0}^{K} f(x_j)\, T_k(x_j)

(discrete orthogonality of the :math:`T_k` at these nodes makes the sum reproduce
:math:`f(x_j)` exactly; computed in float64 by :func:`numpy.polynomial.chebyshev.chebinterpolate`).
Interpolation at these nodes is within a factor :math:`O(\log K)` of the best uniform
polynomial approximation, so a smooth response converges geometrically in :math:`K`.

**Filtering.** A signal :math:`x_0` (column form) is filtered as
:math:`\sum_k c_k T_k(\tilde L)\, x_0` through the three-term recurrence
:math:`T_0 x_0 = x_0`, :math:`T_1 x_0 = \tilde L x_0`,
:math:`T_{k+1} x_0 = 2\tilde L\, T_k x_0 - T_{k-1} x_0`, where
:math:`\tilde L y = y - 2\,\tilde R^\top(\tilde R\, y)`: two sparse products per order with
the ``nnz``-entry matrix :math:`\tilde R`, never the (far denser) :math:`\tilde P` and never
a dense item × item matrix. A batch of :math:`B` users costs :math:`O(K \cdot
\mathrm{nnz} \cdot B)`; the first order exploits the sparsity of the users' rows.

**Generalised normalisation.** ``user_norm`` :math:`a` and ``item_norm`` :math:`b` build
the graph from :math:`D_U^{-a} R D_I^{-b}` instead of :math:`a = b = \tfrac12`, scaled to
unit spectral norm so that :math:`\tilde P`'s spectrum stays in :math:`[0, 1]`
(:func:`~graphrec.linalg.filter_interactions`). SGFCF (Xia et al., KDD 2024) found
exponents below 1/2 better on dense logs. On Gowalla, chosen on validation
(:math:`a = 0.35`, :math:`b = 0.4`), they lift this filter at :math:`K = 6` from 0.1899 to
0.1921 Recall@20 on the test file (benchmarks/README.md).

**ChebyCF.** Add an ideal low-pass filter (the top-``rank`` right singular vectors
:math:`V` of :math:`\tilde R`, as in GF-CF; its SVD is computed by the
:class:`~graphrec.models.graph_filter.IdealLowPassFilter` this model holds) with weight
:math:`\alpha`, and wrap both in a degree normalisation of power :math:`\beta` (pre:
divide the signal by item degree to the :math:`\beta`, post: multiply back):

.. math::  s_u = \Big[\big(\textstyle\sum_k c_k T_k(\tilde L) + \alpha\, V V^\top\big)
           D_I^{-\beta} r_u\Big] \odot d_I^{\beta}

(:math:`r_u` the user's binary training row, :math:`d_I` item degrees; items without
training interactions score 0). The paper's Gowalla setting is :math:`K = 8`,
:math:`\varphi = 1.5`, rank 512, :math:`\alpha = 0.2`, :math:`\beta = 0.4`; its reference
code samples the plateau at the Chebyshev extrema rather than at the nodes where it
interpolates (``sampling="extrema"``, see :func:`chebyshev_coefficients`), which its
published numbers depend on.

Backends (measured on Gowalla, one CPU thread, 256 users): scipy's CSR × dense product
takes about 0.26 s per order, torch's sparse CSR about 0.35–0.38 s, so on the CPU the
recurrence runs on scipy arrays (zero-copy torch views for the dense updates), the rows of
each product split over ``torch.get_num_threads()`` threads; on another device (CUDA) it
runs on torch sparse CSR copies of :math:`\tilde R` built there on first use. ``backend``
forces either. Gowalla (29,858 users, 810k training pairs) costs about 1 ms per order
per user on one CPU thread: some 4 minutes to score every user at :math:`K = 8`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp
import torch
from numpy.polynomial import chebyshev as npcheb
from torch import Tensor

from graphrec.data.graph import RecGraph
from graphrec.linalg import degree_scale, filter_interactions, row_split_matmul, to_torch_csr
from graphrec.models.graph_filter import IdealLowPassFilter
from graphrec.models.scoring_model import ScoringModel

Response = Callable[[np.ndarray], np.ndarray]
BACKENDS = ("auto", "scipy", "torch")
SAMPLINGS = ("nodes", "extrema")


def plateau(flatness: float) -> Response:
    r"""The plateau response :math:`h_\varphi(p) = \frac12 + \frac12\,\mathrm{sign}(2p-1)
    |2p-1|^{\varphi}` on :math:`\tilde P`'s spectrum (``flatness`` :math:`= \varphi > 0`)."""
    if not (math.isfinite(flatness) and flatness > 0):
        raise ValueError(f"the plateau's flatness must be a positive number, got {flatness}")

    def h(p: np.ndarray) -> np.ndarray:
        y = 2.0 * np.asarray(p, dtype=np.float64) - 1.0
        return 0.5 + 0.5 * np.sign(y) * np.abs(y) ** flatness

    return h


def chebyshev_nodes(order: int) -> np.ndarray:
    r"""The :math:`K + 1` Chebyshev nodes of the first kind in :math:`[-1, 1]` (ascending)
    where a response of ``order`` :math:`K` is interpolated."""
    return npcheb.chebpts1(order + 1)


def chebyshev_coefficients(response: Response, order: int, sampling: str = "nodes") -> np.ndarray:
    r"""Coefficients :math:`c_0..c_K` (float64) of the degree-``order`` Chebyshev interpolant
    of :math:`f(x) = h\big((1 - x)/2\big)`, ``h = response`` a function of
    :math:`\tilde P`'s eigenvalue :math:`p \in [0, 1]`, so that
    :math:`\sum_k c_k T_k(1 - 2p) = h(p)` at the nodes :math:`p_j = (1 - x_j)/2`.

    With ``sampling="extrema"`` the value interpolated at the :math:`j`-th node (in
    ascending order) is instead :math:`f(e_j)` at the :math:`j`-th of the :math:`K + 1`
    Chebyshev extrema :math:`e_j = -\cos(j\pi/K)`, as ChebyCF's reference code computes
    its coefficients. The nodes lie inside the extrema (:math:`x_0 = -\cos\frac{\pi}{2K+2}
    > -1 = e_0`), so this interpolates :math:`f` on an axis stretched towards the ends of
    the spectrum: the same shape reaches its ends sooner, and for the plateau the
    response is nearer the linear filter (φ = 1.5, K = 8: :math:`h(0.875)` is 0.87
    against 0.83). Only this sampling reproduces the paper's published numbers (0.1941
    Recall@20 on Gowalla at its setting, against 0.1936 with the nodes).

    Raises:
        ValueError: ``order < 1``, an unknown ``sampling``, or ``response`` does not return
            one finite value per node.
    """
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be an integer >= 1, got {order!r}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    order = int(order)
    x = chebyshev_nodes(order)
    where = x if sampling == "nodes" else npcheb.chebpts2(order + 1)
    values = np.asarray(response((1.0 - where) / 2.0), dtype=np.float64)
    if values.shape != x.shape or not np.all(np.isfinite(values)):
        raise ValueError(f"the response must map an array of eigenvalues in [0, 1] to as many "
                         f"finite values; got shape {values.shape} for {x.shape}")
    # c_k = (2 - [k = 0]) / (K + 1) * sum_j f(x_j) T_k(x_j), with T_k(x_j) from chebvander.
    coefficients = npcheb.chebvander(x, order).T @ values * (2.0 / (order + 1))
    coefficients[0] /= 2.0
    return coefficients


class ChebyshevFilter(ScoringModel):
    r"""ChebyCF: a Chebyshev-interpolated response of the item–item graph, plus an ideal
    low-pass filter, inside a degree normalisation (see the module docstring).

    .. math::  s_u = \Big[\big(\textstyle\sum_{k=0}^{K} c_k T_k(I - 2\tilde P)
               + \alpha\, V V^\top\big) D_I^{-\beta} r_u\Big] \odot d_I^{\beta}

    ``fit()`` computes the truncated SVD of the ideal part (nothing else depends on the
    data: the coefficients follow from ``order`` and ``response`` alone and are set at
    construction). Saved state: the coefficients and the singular vectors.

    Args:
        graph: the training graph (user rows are the signals; it is binarised).
        order: :math:`K`, the polynomial degree (sparse products per user: about
            :math:`2K`).
        response: the plateau's flatness :math:`\varphi` (a positive number), or any
            function ``h(p)`` mapping an array of eigenvalues :math:`p \in [0, 1]` of
            :math:`\tilde P` to the filter's response.
        ideal_weight: :math:`\alpha` (0: no ideal part and no SVD).
        rank: singular vectors of the ideal part (the paper's :math:`\eta`).
        degree_power: :math:`\beta` (0: no normalisation).
        svd_iters: block Krylov iterations of the truncated SVD.
        seed: seed of the SVD's random start.
        backend: ``"scipy"`` (CPU sparse products), ``"torch"`` (torch sparse CSR on the
            model's device) or ``"auto"`` (scipy on the CPU, torch elsewhere).
        sampling: where the response is sampled for its interpolation: ``"nodes"`` (the
            Chebyshev nodes, a true interpolant) or ``"extrema"`` (ChebyCF's reference
            code; see :func:`chebyshev_coefficients`).
        user_norm: the user degree exponent :math:`a` of the graph,
            :math:`\tilde R \propto D_U^{-a} R D_I^{-b}` scaled to unit spectral norm
            (:func:`~graphrec.linalg.filter_interactions`); ChebyCF's is 1/2.
        item_norm: the item degree exponent :math:`b` of the graph; ChebyCF's is 1/2.
    """

    def __init__(self, graph: RecGraph, order: int = 8, response: float | Response = 1.5,
                 ideal_weight: float = 0.2, rank: int = 256, degree_power: float = 0.4,
                 svd_iters: int = 6, seed: int = 0, backend: str = "auto",
                 sampling: str = "nodes", user_norm: float = 0.5, item_norm: float = 0.5) -> None:
        super().__init__(graph)
        if callable(response):
            h = response
        elif isinstance(response, numbers.Real) and not isinstance(response, bool):
            h = plateau(float(response))
        else:
            raise ValueError(f"response must be the plateau's flatness (a number) or a "
                             f"function of the eigenvalues, got {response!r}")
        coefficients = chebyshev_coefficients(h, order, sampling)
        self.sampling = sampling
        if not math.isfinite(ideal_weight) or ideal_weight < 0:
            raise ValueError(f"ideal_weight must be a finite number >= 0, got {ideal_weight}")
        if not math.isfinite(degree_power):
            raise ValueError(f"degree_power must be finite, got {degree_power}")
        if ideal_weight and rank < 1:
            raise ValueError(f"an ideal part (ideal_weight={ideal_weight}) needs rank >= 1, "
                             f"got {rank}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.order = int(order)
        self.response = response
        self.ideal_weight = float(ideal_weight)
        self.rank = rank
        self.degree_power = float(degree_power)
        self.backend = backend
        self.register_buffer("coefficients", torch.from_numpy(coefficients))
        # The ideal part: GF-CF's ideal filter owns the SVD (it checks the rank's range).
        self.user_norm = float(user_norm)
        self.item_norm = float(item_norm)
        self.ideal = (IdealLowPassFilter(graph, rank=rank, svd_iters=svd_iters, seed=seed,
                                         user_norm=user_norm, item_norm=item_norm)
                      if ideal_weight else None)

        ui = sp.csr_matrix(graph.ui, dtype=np.float32, copy=True)
        ui.sum_duplicates()
        ui.data[:] = 1.0
        self._ui = ui
        di = np.bincount(ui.indices, minlength=graph.num_items)
        self._pre = degree_scale(di, -self.degree_power)
        self._post = degree_scale(di, self.degree_power)
        self._rn = filter_interactions(ui, self.user_norm, self.item_norm)  # R~  [U, I]
        self._rnt = self._rn.T.tocsr()              # R~ᵀ [I, U]
        self._torch_mats: dict[torch.device, tuple[Tensor, Tensor]] = {}

    # ------------------------------------------------------------------ protocol
    def _fit(self) -> None:
        if self.ideal is not None:
            self.ideal.fit()

    def workspace_bytes_per_user(self) -> int:
        # Column-form work arrays: T_{k-1}, T_k, the next term and the sum (I each), the
        # user-space product (U), the transposed output (I) and the ideal part's rank.
        rank = self.rank if self.ideal is not None else 0
        return 4 * (5 * self.num_items + self.num_users + rank)

    def _score(self, users: Tensor) -> Tensor:
        x0 = self.signals(users)
        acc: Tensor | None = None
        for ck, term in zip(self.coefficients.tolist(), self.chebyshev_terms(x0)):
            acc = term * ck if acc is None else acc.add_(term, alpha=ck)
        assert acc is not None
        dev = acc.device
        if self.ideal is not None:
            v = self.ideal.item_vectors.to(dev)
            if dev.type == "cpu":
                left = torch.from_numpy(x0 @ v.numpy())
            else:
                left = to_torch_csr(x0, dev) @ v
            acc.addmm_(v, left.T, alpha=self.ideal_weight)  # + α V Vᵀ D^-β r_u
        acc.mul_(self.post_scale(dev)[:, None])
        return acc.T.contiguous().to(self.device)

    # ------------------------------------------------------------------ pieces
    def signals(self, users: Tensor | np.ndarray) -> sp.csr_matrix:
        r"""The filtered signals :math:`D_I^{-\beta} r_u` of ``users``: sparse float32 rows
        ``[B, I]`` on the CPU."""
        idx = users.cpu().numpy() if isinstance(users, Tensor) else np.asarray(users)
        x0 = self._ui[idx]
        x0.data *= self._pre[x0.indices]
        return x0

    def post_scale(self, device: torch.device | str = "cpu") -> Tensor:
        r""":math:`d_I^{\beta}` ``[I]``, applied to the filtered signals."""
        return torch.from_numpy(self._post).to(device)

    def chebyshev_terms(self, x0: sp.csr_matrix) -> Iterator[Tensor]:
        r"""Yield :math:`T_k(\tilde L)\, x_0^\top` for :math:`k = 0..K`, each a new float32
        ``[I, B]`` tensor (column form) that later terms do not modify.

        ``x0`` are sparse signal rows (:meth:`signals`). On the scipy backend they live on
        the CPU and share memory with numpy arrays; on the torch backend on the model's
        device. :meth:`_score` weighs them with the coefficients; other weights (a
        different response of the same or a lower order) reuse the same terms.
        """
        use_torch = self.backend == "torch" or (self.backend == "auto" and self.device.type != "cpu")
        if use_torch:
            dev = self.device
            if dev not in self._torch_mats:
                self._torch_mats[dev] = (to_torch_csr(self._rn, dev), to_torch_csr(self._rnt, dev))
            rn_t, rnt_t = self._torch_mats[dev]
            t0 = torch.from_numpy(np.ascontiguousarray(x0.T.toarray())).to(dev)

            def prop(y: Tensor) -> Tensor:
                return rnt_t @ (rn_t @ y)

            p0 = prop(t0)
        else:
            rn, rnt = self._rn, self._rnt
            t0 = torch.from_numpy(np.ascontiguousarray(x0.T.toarray()))

            threads = torch.get_num_threads()

            def prop(y: Tensor) -> Tensor:
                z = row_split_matmul(rn, y.numpy(), threads)
                return torch.from_numpy(row_split_matmul(rnt, z, threads))

            # First order from the sparse rows: R~ x0ᵀ is sparse (a few hundred users each).
            p0 = torch.from_numpy(np.asarray(rnt @ np.ascontiguousarray((x0 @ rnt).T.toarray())))
        yield t0
        t_prev, t_cur = t0, p0.mul_(-2.0).add_(t0)  # T_1 x0 = x0 - 2 P~ x0
        yield t_cur
        for _ in range(2, self.order + 1):
            # T_k = 2 L~ T_{k-1} - T_{k-2} = 2 T_{k-1} - 4 P~ T_{k-1} - T_{k-2}
            nxt = prop(t_cur).mul_(-4.0).add_(t_cur, alpha=2.0).sub_(t_prev)
            yield nxt
            t_prev, t_cur = t_cur, nxt
