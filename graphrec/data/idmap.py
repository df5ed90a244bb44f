"""Maps between raw ids (any hashable) and contiguous integer indices."""

from __future__ import annotations

import json
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
        index = raw if isinstance(raw, pd.Index) else _flat_index(raw)
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
        return cls(_flat_index(uniques), name), codes.astype(np.int64)

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
        target = values if isinstance(values, pd.Index) else _flat_index(values)
        idx = self._index.get_indexer(target)
        if missing == "raise" and (idx < 0).any():
            unknown = target[idx < 0][:5].tolist()
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
        """Write the map as a one-column Parquet file.

        Ids of one Parquet-storable type (ints, strings, floats …) are stored as they are,
        in column ``raw``. Tuples and mixtures of types (``[1, "a", (2, 3)]``) have no
        Parquet column type; they are stored as tagged JSON text in column ``raw_json``
        so that :meth:`load` gives back the same Python values.
        """
        if self._index.dtype == object and not all(isinstance(x, str) for x in self._index):
            try:
                encoded = [json.dumps(_encode(x)) for x in self._index]
            except TypeError as exc:
                raise DataError(
                    f"{self.name} ids cannot be written to {path}: {exc}; "
                    f"convert them to str or int first"
                ) from exc
            frame = pd.DataFrame({"raw_json": encoded})
        else:
            frame = pd.DataFrame({"raw": self._index})
        try:
            frame.to_parquet(path, index=False)
        except Exception as exc:  # pyarrow cannot store every Python type
            raise DataError(
                f"{self.name} ids of dtype {self._index.dtype} cannot be written to "
                f"{path}: convert them to str or int first ({exc})"
            ) from exc

    @classmethod
    def load(cls, path: str | Path, name: str = "id") -> IdMap:
        """Read a map written by :meth:`save`."""
        frame = pd.read_parquet(path)
        if "raw_json" in frame.columns:
            return cls(_flat_index([_decode(json.loads(x)) for x in frame["raw_json"]]), name)
        return cls(pd.Index(frame["raw"]), name)


def _flat_index(values: Any) -> pd.Index:
    """A one-level Index, also for tuples (which pandas would turn into a MultiIndex)."""
    if getattr(values, "dtype", np.dtype(object)) != np.dtype(object):  # typed: no tuples
        return pd.Index(values)
    values = list(values)
    if any(isinstance(v, tuple) for v in values):
        # fromiter keeps each tuple whole (slice assignment could unpack equal-length ones).
        arr = np.fromiter(values, dtype=object, count=len(values))
        return pd.Index(arr, dtype=object, tupleize_cols=False)
    return pd.Index(values)


def _encode(value: Any) -> Any:
    """A JSON-ready form of a raw id that keeps tuples apart from lists."""
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"an id of type {type(value).__name__} ({value!r}) cannot be stored")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(_decode(v) for v in value["tuple"])
    return value
