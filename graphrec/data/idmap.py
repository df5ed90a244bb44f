"""Maps between raw ids (any hashable) and contiguous integer indices."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphrec.data.errors import DataError


class IdMap:
    """A bijection between raw ids and the indices ``0 .. len(self) - 1``.

    Index ``i`` stands for ``raw[i]``. Raw ids can be of any hashable type (ints,
    strings, tuples …); lookups are vectorised through a :class:`pandas.Index`.

    Args:
        raw: the raw ids in index order; they must be unique.
        name: what the ids are (``"user"``, ``"item"``), used in error messages.
    """

    def __init__(self, raw: Iterable[Any] | pd.Index, name: str = "id") -> None:
        index = raw if isinstance(raw, pd.Index) else pd.Index(list(raw) if not isinstance(raw, np.ndarray) else raw)
        if not index.is_unique:
            dup = index[index.duplicated()][:5].tolist()
            raise DataError(f"{name} id map: raw ids must be unique, repeated: {dup}")
        self._index = index
        self.name = name

    @classmethod
    def identity(cls, n: int, name: str = "id") -> IdMap:
        """The map whose raw ids are ``0 .. n-1`` themselves."""
        return cls(pd.RangeIndex(n), name)

    @classmethod
    def from_values(cls, values: Any, name: str = "id") -> tuple[IdMap, np.ndarray]:
        """Build a map from a column of raw ids and return it with the coded column.

        Raw ids are sorted when they can be compared (so integer ids keep their order),
        otherwise kept in order of first appearance.
        """
        try:
            codes, uniques = pd.factorize(pd.Series(values), sort=True)
        except TypeError:
            codes, uniques = pd.factorize(pd.Series(values), sort=False)
        return cls(pd.Index(uniques), name), codes.astype(np.int64)

    @property
    def raw(self) -> pd.Index:
        """The raw ids in index order."""
        return self._index

    def __len__(self) -> int:
        return len(self._index)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._index.equals(other._index)

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x in self._index[:3])
        return f"IdMap({self.name}, n={len(self)}, raw=[{head}{', …' if len(self) > 3 else ''}])"

    def to_index(self, raw_ids: Any, *, missing: str = "raise") -> np.ndarray:
        """Indices of ``raw_ids`` (scalar or sequence).

        Args:
            missing: ``"raise"`` to raise :class:`DataError` naming unknown ids, or
                ``"mask"`` to return ``-1`` for them.
        """
        scalar = np.isscalar(raw_ids) or isinstance(raw_ids, tuple)
        values = [raw_ids] if scalar else raw_ids
        idx = self._index.get_indexer(pd.Index(values) if not isinstance(values, pd.Index) else values)
        if missing == "raise" and (idx < 0).any():
            unknown = pd.Index(values)[idx < 0][:5].tolist()
            raise DataError(f"unknown {self.name} id(s) {unknown} ({int((idx < 0).sum())} in all)")
        idx = idx.astype(np.int64)
        return idx[0] if scalar else idx

    def to_raw(self, index: Any) -> np.ndarray:
        """Raw ids of integer ``index`` (scalar or array)."""
        arr = np.asarray(index)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            raise DataError(f"{self.name} index out of range [0, {len(self)}): {arr.min()}..{arr.max()}")
        out = self._index.take(arr.ravel()).to_numpy()
        return out.reshape(arr.shape) if arr.ndim else out[0]

    def union(self, other: IdMap) -> IdMap:
        """A map holding this map's ids (same indices) followed by ``other``'s new ids."""
        new = other._index.difference(self._index, sort=False)
        return IdMap(self._index.append(new), self.name)

    def save(self, path: str | Path) -> None:
        """Write the map as a one-column Parquet file (column ``raw``)."""
        try:
            pd.DataFrame({"raw": self._index}).to_parquet(path, index=False)
        except Exception as exc:  # pyarrow cannot store every Python type
            raise DataError(
                f"{self.name} ids of type {type(self._index[0]).__name__} cannot be written to "
                f"{path}: convert them to str or int first ({exc})"
            ) from exc

    @classmethod
    def load(cls, path: str | Path, name: str = "id") -> IdMap:
        """Read a map written by :meth:`save`."""
        return cls(pd.Index(pd.read_parquet(path)["raw"]), name)
