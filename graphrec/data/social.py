"""User–user edges (trust, friendship) over the same user ids as the interactions.

A social file names users by their raw ids, so it is always read *through* the user
:class:`~graphrec.data.idmap.IdMap` of the interactions it goes with: an edge's ends become
the same indices the interaction log uses. Edges to users the map does not know are
reported and dropped (or refused), self-loops and repeated edges are reported and dropped,
and undirected networks can be made symmetric. What happened is in
:class:`SocialReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from graphrec.data.errors import DataError, quote, where
from graphrec.data.idmap import IdMap
from graphrec.data.interactions import parse_ids, parse_numeric, read_table

UnknownUserPolicy = Literal["drop", "error"]


@dataclass(frozen=True)
class SocialColumns:
    """Which columns of a social file hold the edge's source, destination and weight.

    For files without a header line the names refer to ``names`` given to the loader.
    ``weight=None`` means the edges are unweighted (extra columns are ignored).
    """

    src: str = "src"
    dst: str = "dst"
    weight: str | None = None

    def required(self) -> list[str]:
        return [c for c in (self.src, self.dst, self.weight) if c]


@dataclass
class SocialReport:
    """What happened while loading or cleaning social edges.

    Attributes:
        source: the file (or ``"arrays"``/``"DataFrame"``) the edges came from.
        rows_read: edges in the input.
        unknown_users: edges dropped because an end is not in the user map.
        self_loops: edges from a user to itself, dropped.
        duplicates: repeated (src, dst) edges, dropped (the last one's weight is kept).
        symmetrized: whether reverse edges were added.
        added_by_symmetrization: reverse edges that were missing and were added.
    """

    source: str = "arrays"
    rows_read: int = 0
    unknown_users: int = 0
    self_loops: int = 0
    duplicates: int = 0
    symmetrized: bool = False
    added_by_symmetrization: int = 0

    def __str__(self) -> str:
        s = (f"{self.source}: {self.rows_read} edges read; dropped {self.unknown_users} to unknown "
             f"users, {self.self_loops} self-loops, {self.duplicates} duplicates")
        if self.symmetrized:
            s += f"; symmetrised, {self.added_by_symmetrization} reverse edges added"
        return s


@dataclass
class SocialEdges:
    """Directed user → user edges, as indices into a user map.

    Edges are unique, free of self-loops and sorted by (src, dst). A symmetric network
    stores each friendship twice, once per direction.

    Attributes:
        src, dst: ``int64`` user indices in ``[0, num_users)``.
        weight: optional ``float32`` edge weights.
        num_users: number of users of the map the indices refer to.
        report: what loading or cleaning did.
    """

    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray | None
    num_users: int
    report: SocialReport = field(default_factory=SocialReport, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.src = np.asarray(self.src, dtype=np.int64)
        self.dst = np.asarray(self.dst, dtype=np.int64)
        if len(self.src) != len(self.dst):
            raise DataError(f"social src and dst differ in length: {len(self.src)} vs {len(self.dst)}")
        if self.weight is not None:
            self.weight = np.asarray(self.weight, dtype=np.float32)
            if len(self.weight) != len(self.src):
                raise DataError(f"social weight has {len(self.weight)} values for {len(self.src)} edges")
        for name, idx in (("src", self.src), ("dst", self.dst)):
            if len(idx) and (idx.min() < 0 or idx.max() >= self.num_users):
                raise DataError(f"social {name} indices must lie in [0, {self.num_users}), "
                                f"found {idx.min()}..{idx.max()}")

    @classmethod
    def from_arrays(
        cls,
        src: Any,
        dst: Any,
        *,
        num_users: int | None = None,
        weight: Any = None,
        symmetrize: bool = False,
    ) -> SocialEdges:
        """Edges from user-index arrays, with self-loops and duplicates dropped.

        Args:
            src: source user indices (already mapped).
            dst: destination user indices (already mapped).
            num_users: size of the user map (default: largest index + 1).
            weight: optional per-edge weights.
            symmetrize: add the reverse of every edge that lacks one.
        """
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        if num_users is None:
            num_users = int(max(src.max(initial=-1), dst.max(initial=-1))) + 1
        w = None if weight is None else np.asarray(weight, dtype=np.float32)
        report = SocialReport("arrays", rows_read=len(src))
        return _clean(src, dst, w, num_users, symmetrize, report)

    def __len__(self) -> int:
        return len(self.src)

    def __repr__(self) -> str:
        return (f"SocialEdges({len(self)} edges over {self.num_users} users"
                f"{', weighted' if self.weight is not None else ''})")

    def degrees(self) -> np.ndarray:
        """Out-degree of every user (friends per user for a symmetric network)."""
        return np.bincount(self.src, minlength=self.num_users)

    def is_symmetric(self) -> bool:
        """Whether every edge's reverse is present too."""
        key = self.src * self.num_users + self.dst
        rev = self.dst * self.num_users + self.src
        return bool(np.isin(rev, key).all())

    def to_frame(self, user_map: IdMap | None = None) -> pd.DataFrame:
        """A DataFrame with columns src, dst (raw ids if ``user_map`` is given) and weight."""
        df = pd.DataFrame({
            "src": user_map.to_raw(self.src) if user_map is not None and len(self) else self.src,
            "dst": user_map.to_raw(self.dst) if user_map is not None and len(self) else self.dst,
        })
        if self.weight is not None:
            df["weight"] = self.weight
        return df


def _clean(
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray | None,
    num_users: int,
    symmetrize: bool,
    report: SocialReport,
) -> SocialEdges:
    """Drop self-loops and duplicates, optionally symmetrise; counts go into ``report``."""
    loops = src == dst
    report.self_loops = int(loops.sum())
    src, dst = src[~loops], dst[~loops]
    weight = None if weight is None else weight[~loops]

    # An edge encoded as one integer sorts in (src, dst) order; plain sorts of integer
    # keys are much faster than sorting rows or hashing.
    key = src * num_users + dst
    if weight is None:
        key = np.sort(key)
    else:
        order = np.argsort(key, kind="stable")
        key, weight = key[order], weight[order]
    # Keep the last of each run of equal keys: with the stable sort above, that is the
    # last occurrence in the input, whose weight wins.
    last = np.ones(len(key), dtype=bool)
    last[:-1] = key[1:] != key[:-1]
    report.duplicates = int(len(key) - last.sum())
    key = key[last]
    weight = None if weight is None else weight[last]

    report.symmetrized = symmetrize
    if symmetrize and len(key):
        rev = (key % num_users) * num_users + key // num_users
        pos = np.minimum(np.searchsorted(key, rev), len(key) - 1)
        missing = key[pos] != rev
        report.added_by_symmetrization = int(missing.sum())
        key = np.concatenate([key, rev[missing]])
        if weight is None:
            key = np.sort(key)
        else:
            weight = np.concatenate([weight, weight[missing]])
            order = np.argsort(key)
            key, weight = key[order], weight[order]
    return SocialEdges(key // num_users, key % num_users, weight, num_users, report)


def _lookup(ids: pd.Series, raw: pd.Series, user_map: IdMap) -> np.ndarray:
    """Indices of social ids in ``user_map`` (-1 for unknown ones).

    ``ids`` went through :func:`parse_ids` like the interaction ids did, so integer-looking
    ids are ``int64`` on both sides. When only one side turned into integers (the other
    holding some non-integer id), the column is matched in the other side's form.
    """
    map_is_int = pd.api.types.is_integer_dtype(user_map.raw.dtype)
    ids_are_int = pd.api.types.is_integer_dtype(ids.dtype)
    if map_is_int and not ids_are_int:
        as_int = pd.to_numeric(ids, errors="coerce")
        whole = as_int.notna() & (as_int == np.floor(as_int))
        out = np.full(len(ids), -1, dtype=np.int64)
        out[whole.to_numpy()] = user_map.to_index(
            pd.Index(as_int[whole].astype(np.int64)), missing="mask")
        return out
    if ids_are_int and not map_is_int:
        return user_map.to_index(pd.Index(raw), missing="mask")
    return user_map.to_index(pd.Index(ids), missing="mask")


def _read(
    source: str | Path | pd.DataFrame,
    columns: SocialColumns,
    sep: str | None,
    names: list[str] | None,
    allow_negative_ids: bool,
) -> tuple[pd.DataFrame, str, int, pd.Series, pd.Series]:
    df, label, offset = read_table(source, sep=sep, names=names, expected=columns.required())
    src = parse_ids(df[columns.src], label, columns.src, offset, allow_negative_ids)
    dst = parse_ids(df[columns.dst], label, columns.dst, offset, allow_negative_ids)
    return df, label, offset, src, dst


def social_user_ids(
    source: str | Path | pd.DataFrame,
    columns: SocialColumns | None = None,
    *,
    sep: str | None = None,
    names: list[str] | None = None,
    allow_negative_ids: bool = False,
) -> pd.Index:
    """The distinct raw user ids of a social file, normalised like interaction ids.

    Useful to extend a user map with users who have friends but no interactions
    (``IdMap.from_values`` on the union of both id sets).
    """
    _, _, _, src, dst = _read(source, columns or SocialColumns(), sep, names, allow_negative_ids)
    return pd.Index(pd.concat([src, dst], ignore_index=True).unique())


def load_social(
    source: str | Path | pd.DataFrame,
    user_map: IdMap,
    columns: SocialColumns | None = None,
    *,
    sep: str | None = None,
    names: list[str] | None = None,
    symmetrize: bool = False,
    unknown_users: UnknownUserPolicy = "drop",
    allow_negative_ids: bool = False,
) -> SocialEdges:
    """Load user–user edges from a CSV/TSV/Parquet file or a DataFrame.

    Args:
        source: file path (``.csv``, ``.tsv``/``.tab``, ``.parquet``; other suffixes are
            read as CSV with ``sep``) or a DataFrame.
        user_map: the user map of the interactions the edges belong to; raw ids are
            looked up in it after the same normalisation (``"007"`` matches ``7``).
        columns: which columns hold source, destination and (optionally) weight.
        sep: field separator for text files (default ``,``, or tab for ``.tsv``).
        names: column names for files without a header line.
        symmetrize: add the reverse of every edge that lacks one (undirected networks).
        unknown_users: ``"drop"`` edges with an end missing from ``user_map`` (counted in
            the report) or ``"error"`` to refuse them.
        allow_negative_ids: accept negative integer ids.

    Raises:
        DataError: naming the file, line and column of the first problem found.
    """
    cols = columns or SocialColumns()
    if unknown_users not in ("drop", "error"):
        raise DataError(f"unknown_users must be 'drop' or 'error', not {unknown_users!r}")
    df, label, offset, src_ids, dst_ids = _read(source, cols, sep, names, allow_negative_ids)
    report = SocialReport(label, rows_read=len(df))
    weight = None
    if cols.weight:
        weight = parse_numeric(df[cols.weight], label, cols.weight, offset).astype(np.float32)

    src = _lookup(src_ids, df[cols.src], user_map)
    dst = _lookup(dst_ids, df[cols.dst], user_map)
    unknown = (src < 0) | (dst < 0)
    if unknown.any() and unknown_users == "error":
        row = int(np.flatnonzero(unknown)[0])
        col = cols.src if src[row] < 0 else cols.dst
        raise DataError(f"{where(label, row + offset, col)}: unknown user id {quote(df[col].iloc[row])}; "
                        f"social edges must name users of the interactions "
                        f"(pass unknown_users='drop' to skip such edges)")
    report.unknown_users = int(unknown.sum())
    known = ~unknown
    return _clean(src[known], dst[known], None if weight is None else weight[known],
                  len(user_map), symmetrize, report)
