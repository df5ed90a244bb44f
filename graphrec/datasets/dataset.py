"""The :class:`Dataset` container every loader in :mod:`graphrec.datasets` returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from graphrec.data.idmap import IdMap
from graphrec.data.interactions import Interactions
from graphrec.data.social import SocialEdges
from graphrec.data.splits import Split


@dataclass
class Dataset:
    """Interactions of one dataset, with whatever else it ships with.

    Attributes:
        name: short name (``"movielens-small"``, ``"synthetic"`` …).
        interactions: every interaction, or ``None`` when the dataset only exists as a
            given train/test split.
        split: the split the dataset comes with (e.g. the Gowalla files), else ``None``;
            split it yourself with :mod:`graphrec.data.splits` otherwise.
        social: user–user edges over the same user indices, or ``None``.
        items: item metadata indexed by item index (e.g. MovieLens title and genres), or
            ``None``.
        users: user metadata indexed by user index, or ``None``.
        description: where the data comes from and what loading did with it.
    """

    name: str
    interactions: Interactions | None = None
    split: Split | None = None
    social: SocialEdges | None = None
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.interactions is None and self.split is None:
            raise ValueError("a Dataset needs interactions, a split, or both")

    def _reference(self) -> Interactions:
        return self.interactions if self.interactions is not None else self.split.train

    @property
    def user_map(self) -> IdMap:
        return self._reference().user_map

    @property
    def item_map(self) -> IdMap:
        return self._reference().item_map

    @property
    def num_users(self) -> int:
        return self._reference().num_users

    @property
    def num_items(self) -> int:
        return self._reference().num_items

    def all_interactions(self) -> Interactions:
        """Every interaction: ``interactions``, or the split's parts put together.

        Fields (rating, timestamp, weight) are kept only when every part has them.
        """
        if self.interactions is not None:
            return self.interactions
        parts = [self.split.train, self.split.valid, self.split.test]
        fields = {}
        for name in ("rating", "timestamp", "weight"):
            if all(getattr(p, name) is not None for p in parts):
                fields[name] = np.concatenate([getattr(p, name) for p in parts])
        ref = parts[0]
        return Interactions(np.concatenate([p.user for p in parts]),
                            np.concatenate([p.item for p in parts]),
                            ref.user_map, ref.item_map, **fields)

    def __repr__(self) -> str:
        parts = [f"{self.num_users} users", f"{self.num_items} items"]
        if self.interactions is not None:
            parts.append(f"{len(self.interactions)} interactions")
        if self.split is not None:
            parts.append(repr(self.split))
        if self.social is not None:
            parts.append(f"{len(self.social)} social edges")
        if self.items is not None:
            parts.append(f"item metadata {list(self.items.columns)}")
        return f"Dataset({self.name!r}: {', '.join(parts)})"
