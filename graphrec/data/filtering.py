"""Filters that shrink an interaction log before splitting: k-cores, binarisation, dedup.

Each filter returns a new :class:`~graphrec.data.interactions.Interactions` and leaves
its input untouched. The returned object carries a :class:`FilterReport` in its
``filter_report`` attribute, saying what was removed::

    core = k_core(inter, user_k=10, item_k=10)
    print(core.filter_report)   # k_core(user_k=10, item_k=10): 3 rounds, ...

Only the object a filter returns has the attribute; views made from it later
(``subset``, ``with_maps``, splits) do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphrec.data.errors import DataError
from graphrec.data.idmap import IdMap
from graphrec.data.interactions import DuplicatePolicy, Interactions, resolve_duplicates


@dataclass
class FilterReport:
    """What a filter removed.

    Attributes:
        method: the filter's name and parameters.
        rows_before, rows_after: interactions before and after.
        users_before, users_after: users with at least one interaction before/after.
        items_before, items_after: the same for items.
        rounds: pruning passes that removed something (``k_core`` only; 0 otherwise,
            and 0 when the input already satisfied the constraints).
        compacted: whether the id maps were shrunk to the surviving users and items.
    """

    method: str
    rows_before: int
    rows_after: int
    users_before: int
    users_after: int
    items_before: int
    items_after: int
    rounds: int = 0
    compacted: bool = False

    @property
    def rows_removed(self) -> int:
        return self.rows_before - self.rows_after

    @property
    def users_removed(self) -> int:
        return self.users_before - self.users_after

    @property
    def items_removed(self) -> int:
        return self.items_before - self.items_after

    def __str__(self) -> str:
        s = (f"{self.method}: removed {self.rows_removed} of {self.rows_before} rows, "
             f"{self.users_removed} of {self.users_before} users, "
             f"{self.items_removed} of {self.items_before} items")
        if self.method.startswith("k_core"):
            s += f" in {self.rounds} round{'s' if self.rounds != 1 else ''}"
        if self.compacted:
            s += "; id maps compacted"
        return s


def _present(index: np.ndarray, n: int) -> int:
    """How many of the ``n`` ids occur in ``index``."""
    return int(np.count_nonzero(np.bincount(index, minlength=n)))


def _report(method: str, before: Interactions, after: Interactions, rounds: int = 0,
            compacted: bool = False) -> FilterReport:
    return FilterReport(
        method,
        rows_before=len(before), rows_after=len(after),
        users_before=_present(before.user, before.num_users),
        users_after=_present(after.user, after.num_users),
        items_before=_present(before.item, before.num_items),
        items_after=_present(after.item, after.num_items),
        rounds=rounds, compacted=compacted,
    )


def compact_maps(interactions: Interactions) -> Interactions:
    """The same rows with id maps shrunk to the users and items that occur in them.

    The new maps keep the old relative order of the raw ids, so indices stay sorted the
    same way; they are built from the raw ids and therefore still translate back to them.
    """
    def shrink(index: np.ndarray, old: IdMap) -> tuple[np.ndarray, IdMap]:
        present = np.zeros(len(old), dtype=bool)
        present[index] = True
        # new_index[old_index] is the compacted index of every surviving id.
        new_index = np.cumsum(present) - 1
        return new_index[index], IdMap(old.raw[present], old.name)

    user, user_map = shrink(interactions.user, interactions.user_map)
    item, item_map = shrink(interactions.item, interactions.item_map)
    return Interactions(user, item, user_map, item_map, rating=interactions.rating,
                        timestamp=interactions.timestamp, weight=interactions.weight)


def k_core(
    interactions: Interactions,
    user_k: int = 5,
    item_k: int = 5,
    *,
    compact: bool = True,
) -> Interactions:
    """The largest part of the log in which every user and every item is frequent enough.

    Rows are removed repeatedly until a fixed point: every remaining user has at least
    ``user_k`` interactions and every remaining item at least ``item_k``. Removing a
    user can push one of its items below ``item_k`` and the other way round, hence the
    repetition. The result is unique (it is the largest such subset of rows), whatever
    order rows are removed in.

    Degrees count rows, so repeated (user, item) rows count several times; call
    :func:`deduplicate` first if they should count once.

    Args:
        interactions: the log to filter.
        user_k: minimum interactions per user (``<= 1`` means no constraint).
        item_k: minimum interactions per item (``<= 1`` means no constraint).
        compact: re-index users and items so the id maps hold only the survivors
            (see :func:`compact_maps`); otherwise the original maps are kept and removed
            users/items just have no rows.

    Returns:
        The filtered interactions, with a :class:`FilterReport` in ``.filter_report``.
    """
    if user_k < 0 or item_k < 0:
        raise ValueError(f"user_k and item_k must be >= 0, got {user_k} and {item_k}")
    keep = np.arange(len(interactions))
    user, item = interactions.user, interactions.item
    rounds = 0
    while True:
        # Degrees of the rows still kept; a row survives this pass when both its user
        # and its item are frequent enough.
        u, i = user[keep], item[keep]
        du = np.bincount(u, minlength=interactions.num_users)
        di = np.bincount(i, minlength=interactions.num_items)
        ok = (du[u] >= user_k) & (di[i] >= item_k)
        if ok.all():
            break
        keep = keep[ok]
        rounds += 1
    result = interactions.subset(keep)
    if compact:
        result = compact_maps(result)
    result.filter_report = _report(  # type: ignore[attr-defined]
        f"k_core(user_k={user_k}, item_k={item_k})", interactions, result, rounds, compact)
    return result


def binarize(
    interactions: Interactions,
    threshold: float,
    *,
    keep_rating: bool = False,
) -> Interactions:
    """Turn explicit ratings into implicit feedback: keep rows rated ``>= threshold``.

    Args:
        interactions: a log with a ``rating`` column.
        threshold: the lowest rating that counts as a positive interaction.
        keep_rating: keep the rating column on the surviving rows (dropped by default,
            since the result is meant to be read as implicit feedback).

    The id maps are unchanged, so users or items left without rows still exist; run
    :func:`k_core` (which compacts the maps) afterwards to remove them.

    Returns:
        The kept rows, with a :class:`FilterReport` in ``.filter_report``.

    Raises:
        DataError: the log has no rating column.
    """
    if interactions.rating is None:
        raise DataError("binarize needs a rating column, but these interactions have none; "
                        "load them with ColumnMap(rating=...) or skip binarize for implicit data")
    result = interactions.subset(interactions.rating >= threshold)
    if not keep_rating:
        result.rating = None
    result.filter_report = _report(  # type: ignore[attr-defined]
        f"binarize(threshold={threshold})", interactions, result)
    return result


def deduplicate(interactions: Interactions, keep: DuplicatePolicy = "last") -> Interactions:
    """Merge repeated (user, item) rows into one, like the loader's ``duplicates`` option.

    Args:
        keep: ``"last"`` / ``"first"`` keep the latest / earliest row (by timestamp when
            there is one, then by row order), ``"sum"`` adds the weights (1 per row
            without a weight column), ``"error"`` raises on any repeat.

    Returns:
        The rows sorted by (user, item), with a :class:`FilterReport` in ``.filter_report``.
    """
    if keep not in ("last", "first", "sum", "error"):
        raise ValueError(f"keep must be 'last', 'first', 'sum' or 'error', not {keep!r}")
    fields = {name: getattr(interactions, name) for name in ("rating", "timestamp", "weight")
              if getattr(interactions, name) is not None}
    user, item, fields, _ = resolve_duplicates(interactions.user, interactions.item, fields, keep)
    result = Interactions(user, item, interactions.user_map, interactions.item_map, **fields)
    result.filter_report = _report(  # type: ignore[attr-defined]
        f"deduplicate(keep={keep!r})", interactions, result)
    return result
