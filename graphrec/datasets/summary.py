"""One-call descriptive statistics of a dataset, an interaction log or a split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from graphrec.data.interactions import Interactions
from graphrec.data.splits import Split, popularity_buckets
from graphrec.datasets.dataset import Dataset

QUANTILES = {"min": 0.0, "25%": 0.25, "50%": 0.5, "75%": 0.75, "90%": 0.9, "99%": 0.99, "max": 1.0}


@dataclass
class DatasetSummary:
    """Sizes and degree distributions of a dataset; ``print()`` it for a readable table.

    Attributes:
        name: the dataset's name (``""`` for bare interactions).
        users, items: sizes of the user and item maps.
        interactions: all interactions (every split part together).
        density: ``interactions / (users * items)``.
        users_without_interactions, items_without_interactions: isolated users/items.
        user_degree, item_degree: interactions per user/item at the quantiles of
            :data:`QUANTILES` (all users/items, isolated ones included).
        rating_range: ``(min, max)`` rating, or ``None`` without ratings.
        social_edges: directed social edges (a friendship stored both ways counts 2).
        avg_friends: social edges per user.
        split_sizes: rows of train/valid/test when the data is split.
    """

    name: str
    users: int
    items: int
    interactions: int
    density: float
    users_without_interactions: int
    items_without_interactions: int
    user_degree: pd.Series
    item_degree: pd.Series
    rating_range: tuple[float, float] | None = None
    social_edges: int | None = None
    avg_friends: float | None = None
    split_sizes: dict[str, int] | None = None

    def to_series(self) -> pd.Series:
        """Every figure as one flat Series (handy to compare datasets in a DataFrame)."""
        row: dict[str, object] = {
            "users": self.users, "items": self.items, "interactions": self.interactions,
            "density": self.density,
            "users without interactions": self.users_without_interactions,
            "items without interactions": self.items_without_interactions,
        }
        row.update({f"user degree {q}": v for q, v in self.user_degree.items()})
        row.update({f"item degree {q}": v for q, v in self.item_degree.items()})
        if self.rating_range is not None:
            row["rating min"], row["rating max"] = self.rating_range
        if self.social_edges is not None:
            row["social edges"], row["avg friends"] = self.social_edges, self.avg_friends
        for part, n in (self.split_sizes or {}).items():
            row[part] = n
        return pd.Series(row, name=self.name or None)

    def __str__(self) -> str:
        lines = [f"{self.name or 'interactions'}: {self.users:,} users, {self.items:,} items, "
                 f"{self.interactions:,} interactions (density {self.density:.4%})"]
        if self.users_without_interactions or self.items_without_interactions:
            lines.append(f"  without interactions: {self.users_without_interactions:,} users, "
                         f"{self.items_without_interactions:,} items")
        degrees = pd.DataFrame({"user degree": self.user_degree, "item degree": self.item_degree}).T
        lines += ["  " + line for line in degrees.to_string(float_format=lambda x: f"{x:g}").splitlines()]
        if self.rating_range is not None:
            lines.append(f"  ratings {self.rating_range[0]:g} to {self.rating_range[1]:g}")
        if self.social_edges is not None:
            lines.append(f"  social: {self.social_edges:,} edges, {self.avg_friends:.2f} per user")
        if self.split_sizes is not None:
            lines.append("  split: " + ", ".join(f"{k} {v:,}" for k, v in self.split_sizes.items()))
        return "\n".join(lines)


def _quantiles(degrees: np.ndarray) -> pd.Series:
    if len(degrees) == 0:
        return pd.Series(np.nan, index=list(QUANTILES))
    return pd.Series(np.quantile(degrees, list(QUANTILES.values())), index=list(QUANTILES))


def summary(data: Dataset | Interactions | Split) -> DatasetSummary:
    """Describe a dataset (or bare interactions, or a split) in one call.

    Example::

        >>> print(summary(synthetic()))          # doctest: +SKIP
    """
    name, social, split = "", None, None
    if isinstance(data, Dataset):
        name, social, split, inter = data.name, data.social, data.split, data.all_interactions()
    elif isinstance(data, Split):
        split = data
        inter = Dataset("split", split=data).all_interactions()
    elif isinstance(data, Interactions):
        inter = data
    else:
        raise TypeError(f"summary() takes a Dataset, Interactions or Split, not {type(data).__name__}")
    users, items = inter.num_users, inter.num_items
    user_deg, item_deg = inter.user_degrees(), inter.item_degrees()
    return DatasetSummary(
        name=name, users=users, items=items, interactions=len(inter),
        density=len(inter) / (users * items) if users and items else 0.0,
        users_without_interactions=int((user_deg == 0).sum()),
        items_without_interactions=int((item_deg == 0).sum()),
        user_degree=_quantiles(user_deg), item_degree=_quantiles(item_deg),
        rating_range=(None if inter.rating is None or len(inter) == 0
                      else (float(inter.rating.min()), float(inter.rating.max()))),
        social_edges=None if social is None else len(social),
        avg_friends=None if social is None else len(social) / max(users, 1),
        split_sizes=None if split is None else dict(split.report.sizes) or {
            "train": len(split.train), "valid": len(split.valid), "test": len(split.test)},
    )


def split_profile(split: Split, top_share: float = 0.01) -> pd.DataFrame:
    """How each part of a split looks from the training data: one row per part.

    Model selection on a validation part is only as good as that part's likeness to test.
    A validation part carved at random from training can differ from a published test
    file in ways that change which settings win: a test part richer in popular items
    rewards stronger regularisation (which pulls rarely seen items' embeddings towards
    zero), for instance. This table shows such shifts before any model is trained.

    Popularity is an item's number of training rows. For the train part's own rows it
    is counted without the row itself (``count - 1``), so that every part is measured the
    same way: by the training rows *other* than the one being described.

    Args:
        split: the split to describe.
        top_share: the share of items (by training popularity, ties included) that count
            as the head of the catalogue.

    Returns:
        A DataFrame indexed by ``train``, ``valid`` and ``test`` (parts without rows are
        left out) with columns ``rows``, ``users``, ``rows per user`` (mean over the
        users with rows in that part), ``mean popularity``, ``median popularity``,
        ``head share`` (fraction of rows on the top ``top_share`` items), ``cold users``
        and ``cold items`` (rows whose user / item has no training row).
    """
    if not 0.0 < top_share <= 1.0:
        raise ValueError(f"top_share must lie in (0, 1], got {top_share}")
    train = split.train
    popularity, user_rows = train.item_degrees(), train.user_degrees()
    head = popularity >= np.quantile(popularity, 1.0 - top_share) if len(popularity) else popularity > 0
    rows = {}
    for part, inter in (("train", train), ("valid", split.valid), ("test", split.test)):
        if len(inter) == 0:
            continue
        users, items = np.asarray(inter.user), np.asarray(inter.item)
        pop = popularity[items] - (1 if part == "train" else 0)
        distinct = np.unique(users).size
        rows[part] = {
            "rows": len(inter), "users": distinct, "rows per user": len(inter) / distinct,
            "mean popularity": float(pop.mean()), "median popularity": float(np.median(pop)),
            "head share": float(head[items].mean()),
            "cold users": int((user_rows[users] == 0).sum()),
            "cold items": int((popularity[items] == 0).sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def holdout_share(split: Split, part: str = "test",
                  quantiles: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)) -> pd.DataFrame:
    r"""Which share of each item's rows a held-out part took, by item popularity.

    A part drawn at random from each user's rows takes about the same share of every
    item's rows, popular or not. A share that grows with popularity means the part was
    drawn another way (e.g. from a log with repeated visits, where an item a user visits
    often is more likely to reach the held-out part), and selection on a part drawn at
    random will not see that lean.

    Items are bucketed by their rows in ``train`` plus ``part`` (:math:`n_i`), at the
    given quantiles of the items that have any
    (:func:`~graphrec.data.splits.popularity_buckets`); for each bucket :math:`B` the
    held-out share is :math:`\sum_{i \in B} h_i / \sum_{i \in B} n_i`, with :math:`h_i`
    the item's rows in ``part``. :func:`~graphrec.data.splits.thin_holdout` removes such
    a lean from a part, for analysis.

    Args:
        split: the split to describe.
        part: ``"test"`` or ``"valid"``, the part whose share is measured (the other
            held-out part is left out of the counts).
        quantiles: increasing cut points in (0, 1) between the buckets.

    Returns:
        A DataFrame with one row per bucket, from least to most popular, and columns
        ``items``, ``min rows`` and ``max rows`` (of ``n_i`` in the bucket), ``rows``
        (:math:`\sum n_i`) and ``held-out share``; buckets without items are left out.
    """
    if part not in ("test", "valid"):
        raise ValueError(f"part must be 'test' or 'valid', got {part!r}")
    held = getattr(split, part)
    if len(held) == 0:
        raise ValueError(f"the split has no {part} rows")
    h = held.item_degrees()
    n = split.train.item_degrees() + h
    bucket = popularity_buckets(n, quantiles)
    rows = []
    for b in range(len(quantiles) + 1):
        mask = bucket == b
        if not mask.any():
            continue
        rows.append({"items": int(mask.sum()), "min rows": int(n[mask].min()),
                     "max rows": int(n[mask].max()), "rows": int(n[mask].sum()),
                     "held-out share": float(h[mask].sum() / n[mask].sum())})
    return pd.DataFrame(rows)
