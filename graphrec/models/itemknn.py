r"""Item-based k-nearest-neighbour recommendation on co-occurrence similarities.

With the binarised user × item matrix :math:`X`, items :math:`i` and :math:`j` co-occur
:math:`c_{ij} = (X^\top X)_{ij}` times (the number of users who have both) and item
:math:`i` has degree :math:`d_i = c_{ii}`. The similarity of a user's item :math:`i` to a
candidate item :math:`j` is

* ``cosine``: :math:`\mathrm{sim}(i \to j) = c_{ij} / (\sqrt{d_i d_j} + h)`;
* ``asymmetric`` (asymmetric cosine, Aiolli, RecSys 2013):
  :math:`\mathrm{sim}(i \to j) = c_{ij} / (d_i^{\alpha} d_j^{1-\alpha} + h)`; with
  :math:`\alpha = 1` it is the conditional probability :math:`P(j \mid i)` of the
  candidate given the user's item, with :math:`\alpha = \tfrac12` the cosine,

where :math:`h \ge 0` is a shrinkage term that damps similarities resting on few users.
Each item :math:`i` keeps its neighbourhood :math:`N_k(i)`: the ``neighbours`` items
:math:`j \ne i` with the largest :math:`\mathrm{sim}(i \to j) > 0`. A user :math:`u`
with items :math:`I_u` scores

.. math::
    s_{u,j} = \sum_{i \in I_u,\ j \in N_k(i)} \mathrm{sim}(i \to j),

that is, every item the user has adds its own neighbours' similarities (a user's
candidate is not looked up in the candidate's neighbourhood).

No dense item × item matrix is formed: ``fit()`` multiplies sparse row blocks of
:math:`X^\top X` (scipy, float32 counts, exact below :math:`2^{24}` users) and keeps each
row's top :math:`k`; scoring multiplies a batch's sparse rows with the sparse
:math:`I \times I` neighbour matrix (at most :math:`k` entries a row).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from graphrec.data.graph import RecGraph
from graphrec.linalg import row_split_matmul
from graphrec.models.scoring_model import ScoringModel

SIMILARITIES = ("cosine", "asymmetric")

# Bound on the co-occurrence entries handled at once in fit(); each costs about 60 bytes
# of temporaries (counts, row and column indices, similarities, the sort's permutation).
_CHUNK_ENTRIES = 4_000_000


def item_neighbours(x: sp.csr_matrix, k: int, similarity: str = "cosine", shrink: float = 0.0,
                    alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    r"""Each item's ``k`` most similar other items, from the user × item ``x`` (binarised).

    Similarities are those of :mod:`graphrec.models.itemknn` (module docs), computed in
    float64 from the exact co-occurrence counts and rounded to float32. Only items with
    :math:`c_{ij} > 0` (so :math:`\mathrm{sim} > 0`) and :math:`j \ne i` are candidates;
    they are ranked by decreasing float32 similarity, **ties going to the smaller item
    index**, and the first ``k`` kept (so a row's weights never increase, and equal
    weights come with increasing indices).

    Returns:
        ``(index [I, k] int64, weight [I, k] float32)``: row ``i`` lists item ``i``'s
        neighbours, most similar first; rows with fewer than ``k`` candidates are padded
        with index 0 and weight 0.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    x.data[:] = 1.0  # counts of users, whatever the interaction values
    n = x.shape[1]
    xt = x.T.tocsr()
    deg = np.diff(xt.indptr).astype(np.float64)
    if similarity == "cosine":
        def denominator(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            return np.sqrt(deg[rows] * deg[cols]) + shrink
    else:
        left, right = deg ** alpha, deg ** (1.0 - alpha)

        def denominator(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            return left[rows] * right[cols] + shrink

    index = np.zeros((n, k), dtype=np.int64)
    weight = np.zeros((n, k), dtype=np.float32)
    # Row i of X^T X has at most sum_{u in i} d_u entries: cut the rows into blocks
    # whose bound stays under _CHUNK_ENTRIES (a single heavier row is a block alone).
    bound = np.cumsum(xt @ np.diff(x.indptr).astype(np.float64))
    s = 0
    while s < n:
        base = bound[s - 1] if s else 0.0
        e = max(s + 1, int(np.searchsorted(bound, base + _CHUNK_ENTRIES, side="right")))
        e = min(e, n)
        c = (xt[s:e] @ x).tocsr()
        c.sort_indices()
        rows = np.repeat(np.arange(s, e), np.diff(c.indptr))
        cols = c.indices.astype(np.int64)
        other = cols != rows
        rows, cols = rows[other], cols[other]
        # Ranked on the stored float32 values, so that similarities equal in exact
        # arithmetic but a rounding apart in float64 still tie.
        sim = (c.data[other].astype(np.float64) / denominator(rows, cols)).astype(np.float32)
        # By row, then decreasing similarity, then increasing item index (the tie rule):
        # a stable sort of the entries, already in (row, item) order, on one int64 key
        # holding the row above the similarity's bits (monotone for positive floats),
        # is several times faster than np.lexsort on the three keys.
        key = ((rows - s) << 31) | (0x7FFFFFFF - sim.view(np.int32).astype(np.int64))
        order = np.argsort(key, kind="stable")
        rows, cols, sim = rows[order], cols[order], sim[order]
        counts = np.bincount(rows - s, minlength=e - s)
        rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        top = rank < k
        index[rows[top], rank[top]] = cols[top]
        weight[rows[top], rank[top]] = sim[top]
        s = e
    return index, weight


class ItemKNN(ScoringModel):
    r"""Item-based kNN: :math:`s_{u,j} = \sum_{i \in I_u,\ j \in N_k(i)} \mathrm{sim}(i \to j)`.

    ``sim`` is ``cosine`` (:math:`c_{ij} / (\sqrt{d_i d_j} + h)`) or ``asymmetric``
    (:math:`c_{ij} / (d_i^{\alpha} d_j^{1-\alpha} + h)`), with :math:`i` the user's item
    and :math:`j` the candidate; :math:`N_k(i)` holds the :math:`k` items :math:`j \ne i`
    of largest positive :math:`\mathrm{sim}(i \to j)`, ties to the smaller item index
    (see :func:`item_neighbours` and the module docs). For each item the user has, its
    neighbours' weights are added to their scores.

    Buffers (saved): ``neighbour_index [I, k]`` (int64) and ``neighbour_weight [I, k]``
    (float32), padded with index 0 and weight 0, where
    :math:`k = \min(\text{neighbours}, \max(I - 1, 1))`. The sparse neighbour matrix used
    for scoring is built from them on first use and kept (not saved).

    Args:
        graph: the training graph (interaction values are binarised).
        neighbours: :math:`k \ge 1`, neighbours kept per item.
        similarity: ``"cosine"`` or ``"asymmetric"``.
        shrink: :math:`h \ge 0`.
        alpha: :math:`\alpha \in [0, 1]` of the asymmetric cosine (unused by ``cosine``).
    """

    def __init__(self, graph: RecGraph, neighbours: int = 100, similarity: str = "cosine",
                 shrink: float = 0.0, alpha: float = 0.5) -> None:
        super().__init__(graph)
        if isinstance(neighbours, bool) or not isinstance(neighbours, int | np.integer) \
                or neighbours < 1:
            raise ValueError(f"neighbours must be an integer >= 1, got {neighbours!r}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        if not (math.isfinite(shrink) and shrink >= 0):
            raise ValueError(f"shrink must be a finite number >= 0, got {shrink}")
        if not (math.isfinite(alpha) and 0 <= alpha <= 1):
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self.neighbours = int(neighbours)
        self.similarity = similarity
        self.shrink = float(shrink)
        self.alpha = float(alpha)
        # An item has at most I - 1 others: a wider table would hold only padding.
        self.width = min(self.neighbours, max(graph.num_items - 1, 1))
        self.register_buffer("neighbour_index",
                             torch.zeros(graph.num_items, self.width, dtype=torch.long))
        self.register_buffer("neighbour_weight", torch.zeros(graph.num_items, self.width))
        self._ui = sp.csr_matrix(graph.ui, dtype=np.float32, copy=True)
        self._ui.data[:] = 1.0
        self._matrix: tuple[tuple[int, ...], sp.csr_matrix] | None = None

    def _fit(self) -> None:
        index, weight = item_neighbours(self._ui, self.width, self.similarity, self.shrink,
                                        self.alpha)
        self.neighbour_index.copy_(torch.from_numpy(index))
        self.neighbour_weight.copy_(torch.from_numpy(weight))

    def neighbour_matrix(self) -> sp.csr_matrix:
        r"""The sparse float32 :math:`I \times I` matrix with entry :math:`(i, j)` equal to
        :math:`\mathrm{sim}(i \to j)` for :math:`j \in N_k(i)` (0 elsewhere), built from
        the buffers on first use and rebuilt whenever they change (``fit``,
        ``load_state_dict``, ``to``)."""
        bufs = (self.neighbour_index, self.neighbour_weight)
        key = tuple(v for b in bufs for v in (b._version, b.data_ptr()))
        if self._matrix is None or self._matrix[0] != key:
            n, k = self.neighbour_index.shape
            # Copies: on the CPU .numpy() shares the buffers' memory, and the in-place
            # clean-up below would reorder them.
            m = sp.csr_matrix((self.neighbour_weight.cpu().numpy().ravel().copy(),
                               self.neighbour_index.cpu().numpy().ravel().copy(),
                               np.arange(0, n * k + 1, k)), shape=(n, self.num_items))
            m.eliminate_zeros()  # the padding
            m.sort_indices()
            self._matrix = (key, m)
        return self._matrix[1]

    def workspace_bytes_per_user(self) -> int:
        # The sparse product's output (value + column) and its dense copy.
        return 12 * self.num_items

    def _score(self, users: Tensor) -> Tensor:
        rows = self._ui[users.cpu().numpy()]
        scores = row_split_matmul(rows, self.neighbour_matrix(), torch.get_num_threads())
        return torch.from_numpy(scores).to(self.device)
