"""Negative sampling: items a user has not interacted with in training.

:class:`NegativeSampler` draws, for each requested user, items that are not among that
user's training positives, either uniformly or in proportion to item popularity.

How it works. Positives are stored as sorted keys ``user * num_items + item``, so
"is (u, i) a positive?" is one :func:`numpy.searchsorted` for a whole batch. Candidates
are drawn in bulk from the item distribution and the ones that hit a positive are
redrawn, a few rounds at most. The rare entries still rejected after that (users who
have interacted with most items) are drawn exactly from their allowed items by a
vectorised bisection over cumulative weights, so the result always follows the
intended distribution restricted to the user's non-positives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, overload

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from graphrec.data.errors import DataError

if TYPE_CHECKING:
    from graphrec.data.graph import RecGraph
    from graphrec.data.interactions import Interactions


class NegativeSampler:
    """Draws negative items for users, excluding each user's training positives.

    Args:
        graph_or_interactions: the training data, as a
            :class:`~graphrec.data.graph.RecGraph` or
            :class:`~graphrec.data.interactions.Interactions`; its (user, item) pairs
            are the positives and its maps give the numbers of users and items.
        mode: ``"uniform"`` (every allowed item equally likely) or ``"popularity"``
            (item ``i`` drawn with weight ``(degree_i + smoothing) ** alpha``, where the
            degree is the number of distinct training users of ``i``).
        alpha: popularity exponent; 0 gives uniform, 1 proportional to degree.
        smoothing: added to every degree so that items without training interactions
            can still be drawn (0 makes them impossible negatives).
        seed: seed of the sampler's own random generator; the same seed and the same
            sequence of calls give the same negatives.
        max_rounds: rejection rounds before the exact fallback takes over.

    Example::

        sampler = NegativeSampler(split.train, mode="popularity", seed=1)
        neg = sampler.sample(users, num_negatives=4)   # shape (len(users), 4)
    """

    def __init__(
        self,
        graph_or_interactions: RecGraph | Interactions,
        mode: str = "uniform",
        alpha: float = 0.75,
        seed: int = 0,
        *,
        smoothing: float = 1.0,
        max_rounds: int = 8,
    ) -> None:
        if mode not in ("uniform", "popularity"):
            raise ValueError(f"mode must be 'uniform' or 'popularity', not {mode!r}")
        if alpha < 0 or smoothing < 0:
            raise ValueError(f"alpha and smoothing must be >= 0, got {alpha} and {smoothing}")
        ui = _positives_csr(graph_or_interactions)
        self.num_users, self.num_items = ui.shape
        if self.num_items == 0:
            raise DataError("cannot sample negatives: there are no items")
        if self.num_users * self.num_items >= 2**62:
            raise DataError(f"{self.num_users} users x {self.num_items} items is too large for "
                            f"int64 (user, item) keys")
        self.mode = mode
        self.alpha = float(alpha)
        self.smoothing = float(smoothing)
        self.max_rounds = int(max_rounds)
        self._rng = np.random.default_rng(seed)

        self._indptr = ui.indptr.astype(np.int64)
        items = ui.indices.astype(np.int64)
        row_of = np.repeat(np.arange(self.num_users, dtype=np.int64), np.diff(self._indptr))
        # CSR rows are sorted by user and columns sorted within rows: the keys are sorted.
        self._keys = row_of * self.num_items + items

        if mode == "uniform":
            w = np.ones(self.num_items)
        else:
            degree = np.bincount(items, minlength=self.num_items).astype(np.float64)
            w = (degree + self.smoothing) ** self.alpha
            if smoothing == 0:
                w[degree == 0] = 0.0  # 0 ** 0 would otherwise make them drawable at alpha=0
        if not np.isfinite(w).all() or w.sum() <= 0:
            raise DataError("popularity weights are all zero; use smoothing > 0 or mode='uniform'")
        #: Probability of drawing each item before positives are excluded.
        self.weights: np.ndarray = w / w.sum()
        # Unnormalised weights keep the uniform case in exact integer arithmetic.
        self._cdf = np.cumsum(w)
        # Running sum of positive weights along the CSR entries (with a leading 0), so the
        # weight of a user's positives up to any item is a difference of two entries.
        self._pos_cum = np.concatenate([[0.0], np.cumsum(w[items])])
        # Allowed items per user, counted exactly (not from float sums) for the error check.
        drawable = w > 0
        self._allowed = int(drawable.sum()) - np.bincount(
            row_of, weights=drawable[items], minlength=self.num_users).astype(np.int64)

    def __repr__(self) -> str:
        extra = f", alpha={self.alpha}, smoothing={self.smoothing}" if self.mode == "popularity" else ""
        return (f"NegativeSampler({self.num_users} users, {self.num_items} items, "
                f"{len(self._keys)} positives, mode={self.mode!r}{extra})")

    # ------------------------------------------------------------------ public
    @overload
    def sample(self, users: np.ndarray, num_negatives: int = 1) -> np.ndarray: ...

    @overload
    def sample(self, users: Tensor, num_negatives: int = 1) -> Tensor: ...

    def sample(self, users: np.ndarray | Tensor, num_negatives: int = 1) -> np.ndarray | Tensor:
        """Negative items for each user: ``(len(users), num_negatives)`` int64.

        Draws are independent (with replacement), so a row can repeat an item. A torch
        tensor in gives a torch tensor out, on the same device.

        Raises:
            DataError: a user index is out of range, or a user has no item left to draw
                (its positives cover every item that has a non-zero weight).
        """
        device = users.device if isinstance(users, Tensor) else None
        u = users.detach().cpu().numpy() if isinstance(users, Tensor) else np.asarray(users)
        if u.ndim != 1:
            raise ValueError(f"users must be a 1-D array, got shape {u.shape}")
        if num_negatives < 0:
            raise ValueError(f"num_negatives must be >= 0, got {num_negatives}")
        u = u.astype(np.int64, copy=False)
        if u.size and (u.min() < 0 or u.max() >= self.num_users):
            raise DataError(f"user indices must lie in [0, {self.num_users}), "
                            f"found {u.min()}..{u.max()}")
        full = self._allowed[u] <= 0
        if full.any():
            bad = np.unique(u[full])
            raise DataError(f"cannot sample negatives for {len(bad)} user(s) {bad[:5].tolist()}: "
                            f"their training positives cover every item that can be drawn")
        out = self._sample(np.repeat(u, num_negatives)).reshape(len(u), num_negatives)
        return out if device is None else torch.from_numpy(out).to(device)

    def draw(self, n: int) -> np.ndarray:
        """``n`` items from the item distribution (``weights``), positives not excluded.

        These serve as negatives shared by a whole batch of users
        (``TrainConfig.shared_negatives``): an item drawn here may be a positive of some
        user in the batch, which costs little when items are many.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return self._draw(int(n)).astype(np.int64, copy=False)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair is a training positive (vectorised)."""
        keys = np.asarray(users, dtype=np.int64) * self.num_items + np.asarray(items, dtype=np.int64)
        if len(self._keys) == 0:
            return np.zeros(keys.shape, dtype=bool)
        pos = np.searchsorted(self._keys, keys)
        return self._keys[np.minimum(pos, len(self._keys) - 1)] == keys

    # ------------------------------------------------------------------ internals
    def _draw(self, n: int) -> np.ndarray:
        """``n`` items from the unrestricted item distribution."""
        if self.mode == "uniform":
            return self._rng.integers(0, self.num_items, size=n)
        idx = np.searchsorted(self._cdf, self._rng.random(n) * self._cdf[-1], side="right")
        return np.minimum(idx, self.num_items - 1)

    def _sample(self, users: np.ndarray) -> np.ndarray:
        items = self._draw(len(users))
        todo = np.flatnonzero(self.is_positive(users, items))
        for _ in range(self.max_rounds):
            if len(todo) == 0:
                return items
            items[todo] = self._draw(len(todo))
            todo = todo[self.is_positive(users[todo], items[todo])]
        # Float rounding in the exact draw could in principle land on a positive, so its
        # results are checked too; a couple of passes always suffice in practice.
        for _ in range(4):
            if len(todo) == 0:
                return items
            items[todo] = self._draw_exact(users[todo])
            todo = todo[self.is_positive(users[todo], items[todo])]
        if len(todo):
            raise DataError(f"could not draw negatives for users {np.unique(users[todo])[:5].tolist()}")
        return items

    def _allowed_weight_upto(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Total weight of items ``<= items`` that are not positives of ``users``."""
        end = np.searchsorted(self._keys, users * self.num_items + items, side="right")
        return self._cdf[items] - (self._pos_cum[end] - self._pos_cum[self._indptr[users]])

    def _draw_exact(self, users: np.ndarray) -> np.ndarray:
        """One item per entry, drawn exactly from the user's allowed items.

        The allowed weight up to item ``x`` is non-decreasing in ``x`` and flat across
        positives, so the first ``x`` where it exceeds a uniform target in
        ``[0, total allowed weight)`` is an allowed item chosen with the right probability.
        Bisection runs on all entries at once.
        """
        total = self._allowed_weight_upto(users, np.full(len(users), self.num_items - 1))
        target = self._rng.random(len(users)) * total
        lo = np.zeros(len(users), dtype=np.int64)
        hi = np.full(len(users), self.num_items - 1, dtype=np.int64)
        while (lo < hi).any():
            mid = (lo + hi) // 2
            above = self._allowed_weight_upto(users, mid) > target
            hi = np.where(above, mid, hi)
            lo = np.where(above, lo, mid + 1)
        return lo


def _positives_csr(data: RecGraph | Interactions) -> sp.csr_matrix:
    """User × item CSR of distinct training pairs with sorted column indices."""
    ui = getattr(data, "ui", None)
    if ui is None:
        shape = (data.num_users, data.num_items)
        ui = sp.csr_matrix((np.ones(len(data), dtype=np.float32), (data.user, data.item)),
                           shape=shape)
        ui.sum_duplicates()
    ui = ui.tocsr(copy=False)
    if not ui.has_sorted_indices:
        ui = ui.copy()
        ui.sort_indices()
    return ui
