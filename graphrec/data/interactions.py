"""Interaction logs: loading, validation, id mapping and duplicate handling.

An :class:`Interactions` object is a table of (user, item[, rating, timestamp, weight])
rows whose users and items are contiguous integer indices, together with the
:class:`~graphrec.data.idmap.IdMap` objects that turn them back into raw ids. Train,
validation and test parts of one dataset share the same maps, so an index means the same
user or item everywhere.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from graphrec.data.errors import DataError, quote, where
from graphrec.data.idmap import IdMap

DuplicatePolicy = Literal["last", "first", "sum", "error"]


@dataclass(frozen=True)
class ColumnMap:
    """Which columns of a log hold which field.

    ``user`` and ``item`` are required; the others are optional and ``None`` means
    absent. For files without a header, the names refer to ``names`` given to the loader.
    """

    user: str = "user"
    item: str = "item"
    rating: str | None = None
    timestamp: str | None = None
    weight: str | None = None

    def required(self) -> list[str]:
        return [c for c in (self.user, self.item, self.rating, self.timestamp, self.weight) if c]


@dataclass
class LoadReport:
    """What happened while loading a log."""

    source: str
    rows_read: int = 0
    duplicates: int = 0
    duplicate_policy: str = "last"
    ignored_columns: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        s = f"{self.source}: {self.rows_read} rows read, {self.duplicates} duplicate (user, item) rows"
        s += f" ({self.duplicate_policy})"
        if self.ignored_columns:
            s += f", ignored columns {self.ignored_columns}"
        return s


@dataclass
class Interactions:
    """User–item interactions with integer indices and the maps back to raw ids.

    Attributes:
        user: ``int64`` user indices, one per interaction.
        item: ``int64`` item indices.
        rating: optional ``float32`` explicit ratings.
        timestamp: optional ``int64`` times (seconds since the epoch for dates, or the
            log's own numeric unit).
        weight: optional ``float32`` interaction weights (counts, confidences).
        user_map, item_map: raw id ↔ index maps; their lengths are the numbers of users
            and items of the whole dataset, which may exceed those present here.
    """

    user: np.ndarray
    item: np.ndarray
    user_map: IdMap
    item_map: IdMap
    rating: np.ndarray | None = None
    timestamp: np.ndarray | None = None
    weight: np.ndarray | None = None
    report: LoadReport | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.user = np.asarray(self.user, dtype=np.int64)
        self.item = np.asarray(self.item, dtype=np.int64)
        n = len(self.user)
        if len(self.item) != n:
            raise DataError(f"user and item arrays differ in length: {n} vs {len(self.item)}")
        for name in ("rating", "timestamp", "weight"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr, dtype=np.int64 if name == "timestamp" else np.float32)
                if len(arr) != n:
                    raise DataError(f"{name} has {len(arr)} values for {n} interactions")
                setattr(self, name, arr)
        if n:
            for name, idx, m in (("user", self.user, self.user_map), ("item", self.item, self.item_map)):
                if idx.min() < 0 or idx.max() >= len(m):
                    raise DataError(
                        f"{name} indices must lie in [0, {len(m)}), found {idx.min()}..{idx.max()}"
                    )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        user: Any,
        item: Any,
        *,
        num_users: int | None = None,
        num_items: int | None = None,
        rating: Any = None,
        timestamp: Any = None,
        weight: Any = None,
    ) -> Interactions:
        """Interactions whose raw ids are the integer indices themselves."""
        user = np.asarray(user, dtype=np.int64)
        item = np.asarray(item, dtype=np.int64)
        nu = num_users if num_users is not None else (int(user.max()) + 1 if len(user) else 0)
        ni = num_items if num_items is not None else (int(item.max()) + 1 if len(item) else 0)
        return cls(user, item, IdMap.identity(nu, "user"), IdMap.identity(ni, "item"),
                   rating=rating, timestamp=timestamp, weight=weight)

    # ------------------------------------------------------------------ basic views
    def __len__(self) -> int:
        return len(self.user)

    @property
    def num_users(self) -> int:
        return len(self.user_map)

    @property
    def num_items(self) -> int:
        return len(self.item_map)

    def __repr__(self) -> str:
        extra = [n for n in ("rating", "timestamp", "weight") if getattr(self, n) is not None]
        return (f"Interactions({len(self)} rows, {self.num_users} users, {self.num_items} items"
                f"{', ' + ', '.join(extra) if extra else ''})")

    def subset(self, index: np.ndarray) -> Interactions:
        """Rows selected by a boolean mask or an integer index, with the same maps."""
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return Interactions(self.user[index], self.item[index], self.user_map, self.item_map,
                            rating=pick(self.rating), timestamp=pick(self.timestamp),
                            weight=pick(self.weight))

    def concat(self, *others: Interactions) -> Interactions:
        """These rows followed by ``others``' rows (all must share this object's id maps).

        Optional columns are kept only when every part has them.
        """
        parts = (self, *others)
        for k, o in enumerate(others, 1):
            if o.user_map is not self.user_map and o.user_map != self.user_map or \
                    o.item_map is not self.item_map and o.item_map != self.item_map:
                raise DataError(f"part {k} has different id maps; concat needs shared maps "
                                f"(e.g. the parts of one Split)")

        def cat(name: str) -> np.ndarray | None:
            arrs = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrs) else np.concatenate(arrs)

        return Interactions(np.concatenate([p.user for p in parts]),
                            np.concatenate([p.item for p in parts]), self.user_map, self.item_map,
                            rating=cat("rating"), timestamp=cat("timestamp"), weight=cat("weight"))

    def with_maps(self, user_map: IdMap, item_map: IdMap) -> Interactions:
        """The same rows expressed in other (larger) maps, e.g. the union of two files'."""
        user = user_map.to_index(self.user_map.raw.take(self.user))
        item = item_map.to_index(self.item_map.raw.take(self.item))
        return dataclasses.replace(self, user=user, item=item, user_map=user_map, item_map=item_map)

    def to_frame(self, raw_ids: bool = False) -> pd.DataFrame:
        """A DataFrame with columns user, item and the optional fields present."""
        df = pd.DataFrame({
            "user": self.user_map.raw.take(self.user) if raw_ids else self.user,
            "item": self.item_map.raw.take(self.item) if raw_ids else self.item,
        })
        for name in ("rating", "timestamp", "weight"):
            if getattr(self, name) is not None:
                df[name] = getattr(self, name)
        return df

    def user_degrees(self) -> np.ndarray:
        """Number of interactions of each user (length ``num_users``)."""
        return np.bincount(self.user, minlength=self.num_users)

    def item_degrees(self) -> np.ndarray:
        """Number of interactions of each item (length ``num_items``)."""
        return np.bincount(self.item, minlength=self.num_items)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        """Write rows and both id maps into ``directory`` (Parquet files).

        Every file is first written under a temporary name; only when all of them are
        complete are they renamed into place. A failure while writing (a full disk, ids
        that cannot be stored) therefore leaves an earlier dataset in ``directory`` intact
        instead of mixing its files with new ones.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"num_rows": len(self), "format": 1}
        parts = {
            "interactions.parquet": lambda p: self.to_frame().to_parquet(p, index=False),
            "user_ids.parquet": self.user_map.save,
            "item_ids.parquet": self.item_map.save,
            "meta.json": lambda p: p.write_text(json.dumps(meta)),
        }
        written: list[tuple[Path, Path]] = []
        try:
            for name, write in parts.items():
                # A unique name: two writers never share a temporary file.
                fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=d)
                os.close(fd)
                tmp = Path(tmp_name)
                tmp.unlink()  # only the unique name is needed; the writer creates the file
                written.append((tmp, d / name))
                write(tmp)
        except BaseException:
            for tmp, _ in written:
                tmp.unlink(missing_ok=True)
            raise
        for tmp, final in written:
            tmp.replace(final)

    @classmethod
    def load(cls, directory: str | Path) -> Interactions:
        """Read interactions written by :meth:`save`."""
        d = Path(directory)
        for name in ("interactions.parquet", "user_ids.parquet", "item_ids.parquet"):
            if not (d / name).exists():
                raise DataError(f"{d}: missing {name}; expected a directory written by Interactions.save")
        df = pd.read_parquet(d / "interactions.parquet")
        return cls(
            df["user"].to_numpy(), df["item"].to_numpy(),
            IdMap.load(d / "user_ids.parquet", "user"), IdMap.load(d / "item_ids.parquet", "item"),
            rating=df["rating"].to_numpy() if "rating" in df else None,
            timestamp=df["timestamp"].to_numpy() if "timestamp" in df else None,
            weight=df["weight"].to_numpy() if "weight" in df else None,
        )


# ---------------------------------------------------------------------- reading files
def read_table(
    source: str | Path | pd.DataFrame,
    *,
    sep: str | None = None,
    names: list[str] | None = None,
    expected: list[str],
) -> tuple[pd.DataFrame, str, int]:
    """Read a CSV/TSV/Parquet file (or take a DataFrame) and check its columns.

    Returns the frame, a name for error messages and the offset that turns a row
    position into a file line number (header lines counted). Used by every loader.
    """
    if isinstance(source, pd.DataFrame):
        df, label, offset = source.reset_index(drop=True), "DataFrame", 0
        if names is not None:
            df.columns = names
    else:
        path = Path(source)
        label = str(path)
        if not path.exists():
            raise DataError(f"{label}: no such file")
        if path.is_dir():
            raise DataError(f"{label}: is a folder; expected a CSV/TSV/Parquet file")
        if path.stat().st_size == 0:
            raise DataError(f"{label}: the file is empty; expected columns {expected}")
        if path.suffix.lower() in (".parquet", ".pq"):
            df, offset = pd.read_parquet(path), 0
            if names is not None:
                df.columns = names
        else:
            if sep is None:
                sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
            header = None if names is not None else "infer"
            offset = 1 if names is not None else 2
            try:
                with warnings.catch_warnings():
                    # pandas drops the extra fields of a first row with too many of them
                    # (with a warning): refuse it like any other line with extra fields.
                    warnings.simplefilter("error", pd.errors.ParserWarning)
                    # Blank lines are kept as rows so that row positions map to line numbers.
                    df = pd.read_csv(path, sep=sep, header=header, names=names, dtype=str,
                                     keep_default_na=False, na_values=[""], engine="c",
                                     index_col=False, skip_blank_lines=False)
            except pd.errors.ParserWarning as exc:
                line = offset  # the first data line
                n_fields = len(names) if names is not None else None
                raise DataError(f"{where(label, line)}: more fields than the "
                                f"{n_fields or 'header line'}{' names' if n_fields else ''} "
                                f"separated by {sep!r}; every line needs the same number of "
                                f"fields") from exc
            except UnicodeDecodeError as exc:
                raise DataError(_encoding_message(path, exc)) from exc
            except pd.errors.EmptyDataError as exc:
                raise DataError(f"{label}: the file is empty; expected columns {expected}") from exc
            except pd.errors.ParserError as exc:
                raise DataError(_parser_message(exc, label, len(names or expected), sep)) from exc
            df = _drop_blank_lines(df, label, offset)
    if len(df) == 0:
        raise DataError(f"{label}: no rows; expected columns {expected}")
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise DataError(f"{label}: missing column(s) {missing}; found {list(df.columns)}. "
                        f"Pass a ColumnMap that names the right columns.")
    if not isinstance(source, pd.DataFrame) and path.suffix.lower() not in (".parquet", ".pq"):
        _check_short_lines(df, path, sep, offset)
    return df, label, offset


def _encoding_message(path: Path, exc: UnicodeDecodeError) -> str:
    """``file, line N: not UTF-8 ...`` for the first line that does not decode."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                byte = raw[bad.start:bad.start + 1].hex()
                return (f"{where(str(path), number)}: byte 0x{byte} is not UTF-8 text; expected a "
                        f"UTF-8 file (convert it, e.g. iconv -f latin1 -t utf-8)")
    return f"{path}: not UTF-8 text ({exc.reason}); expected a UTF-8 file"


def _parser_message(exc: Exception, label: str, n_fields: int, sep: str) -> str:
    """Turn pandas' tokenizer error into ``file, line N: expected K fields ...``."""
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if found is None:
        return f"{label}: {str(exc).strip()}; expected {n_fields} fields separated by {sep!r}"
    expected, line, saw = (int(g) for g in found.groups())
    return (f"{where(label, line)}: expected {expected} fields separated by {sep!r}, "
            f"found {saw}")


def _drop_blank_lines(df: pd.DataFrame, label: str, offset: int) -> pd.DataFrame:
    """Drop blank lines at the end of a file; refuse them elsewhere.

    Dropping a blank line in the middle would shift every later row's line number, and
    error messages must point at the right line.
    """
    blank = df.isna().all(axis=1).to_numpy()
    if not blank.any():
        return df
    n_data = len(blank) - int(np.argmin(blank[::-1])) if not blank.all() else 0
    if blank[:n_data].any():
        row = _first_bad(blank[:n_data])
        raise DataError(f"{where(label, row + offset)}: blank line; expected "
                        f"{df.shape[1]} fields ({list(df.columns)})")
    return df.iloc[:n_data]


def _check_short_lines(df: pd.DataFrame, path: Path, sep: str, offset: int) -> None:
    """Refuse a line with too few fields.

    pandas pads short lines with NaN, which looks the same as an empty last field. The
    first row whose last field is empty is therefore looked up in the file and its fields
    counted; reading up to one line keeps the usual (valid) case free.
    """
    candidates = df.iloc[:, -1].isna().to_numpy()
    if not candidates.any():
        return
    row = _first_bad(candidates)
    line = row + offset
    with path.open(newline="") as f:
        text = next(itertools.islice(f, line - 1, None), "")
    n_found = len(text.rstrip("\r\n").split(sep)) if text.strip() else 0
    if n_found < df.shape[1]:
        raise DataError(f"{where(str(path), line)}: expected {df.shape[1]} fields "
                        f"({list(df.columns)}) separated by {sep!r}, found {n_found}")


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Integral floats above this are not exact: two different ids could become one.
FLOAT_EXACT = 2**53


def parse_ids(col: pd.Series, label: str, name: str, offset: int, allow_negative: bool) -> pd.Series:
    """Check an id column: no missing values, one kind of id; integer-looking ids become ints.

    Ids that all parse as integers become ``int64`` (so ``"007"`` and ``7`` are the same
    id); negative integers are refused unless ``allow_negative``. Refused as ambiguous:
    a column mixing text and numbers (``"1"`` and ``1`` would be two users, or one,
    depending on the reader), and integers outside the 64-bit range (they would wrap
    around and merge users).
    """
    if col.isna().any():
        row = _first_bad(col.isna().to_numpy())
        raise DataError(f"{where(label, row + offset, name)}: missing id; every row needs a {name}")
    if col.dtype == object:
        kinds = col.map(_id_kind)
        if kinds.nunique() > 1:
            row = _first_bad((kinds != kinds.iloc[0]).to_numpy())
            raise DataError(f"{where(label, row + offset, name)}: id {quote(col.iloc[row])} is "
                            f"{kinds.iloc[row]} but the first row's id is {kinds.iloc[0]}; expected "
                            f"one kind of id per column (convert the column to str or int)")
    if col.dtype == object or pd.api.types.is_string_dtype(col):
        text = col.astype(str).str.strip()
        if text.str.fullmatch(r"[+-]?\d+").all():
            col = _int_ids(text, label, name, offset)
        else:
            as_num = pd.to_numeric(col, errors="coerce")
            if as_num.notna().all() and (as_num == np.floor(as_num)).all():
                col = _float_ids(as_num, label, name, offset)
    elif pd.api.types.is_unsigned_integer_dtype(col):
        big = (col > INT64_MAX).to_numpy()
        if big.any():
            row = _first_bad(big)
            raise DataError(_range_message(label, row + offset, name, col.iloc[row]))
        col = col.astype(np.int64)
    elif pd.api.types.is_float_dtype(col) and (col == np.floor(col)).all():
        col = _float_ids(col, label, name, offset)
    if pd.api.types.is_integer_dtype(col) and not allow_negative and (col < 0).any():
        row = _first_bad((col < 0).to_numpy())
        raise DataError(f"{where(label, row + offset, name)}: negative id {col.iloc[row]}; "
                        f"integer ids must be >= 0 (pass allow_negative_ids=True to accept them)")
    return col


def _id_kind(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, (bool, np.bool_)):
        return "a boolean"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "a number"
    return f"a {type(value).__name__}"


def _range_message(label: str, line: int, name: str, value: Any) -> str:
    return (f"{where(label, line, name)}: id {quote(value)} is outside the 64-bit integer range "
            f"[-2**63, 2**63 - 1]; expected smaller integer ids (or text ids, e.g. with a prefix)")


def _int_ids(text: pd.Series, label: str, name: str, offset: int) -> pd.Series:
    """Integer ids written as text, as ``int64``; refuse those outside its range."""
    values = pd.to_numeric(text, errors="coerce")
    if pd.api.types.is_signed_integer_dtype(values):
        return values.astype(np.int64)
    # Some id does not fit int64 (pandas read it as uint64 or float): find it exactly.
    for row, t in enumerate(text):
        if not INT64_MIN <= int(t) <= INT64_MAX:
            raise DataError(_range_message(label, row + offset, name, t))
    return values.astype(np.int64)


def _float_ids(values: pd.Series, label: str, name: str, offset: int) -> pd.Series:
    """Integral float ids as ``int64``; refuse those too large to be exact."""
    big = (values.abs() >= FLOAT_EXACT).to_numpy()
    if big.any():
        row = _first_bad(big)
        raise DataError(f"{where(label, row + offset, name)}: id {quote(values.iloc[row])} is a "
                        f"floating-point number too large to be exact (>= 2**53); expected "
                        f"integer or text ids")
    return values.astype(np.int64)


def parse_numeric(col: pd.Series, label: str, name: str, offset: int) -> np.ndarray:
    """A float column with every value present and finite."""
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
    if bad.any():
        row = _first_bad(bad)
        found = "an empty value" if pd.isna(col.iloc[row]) else quote(col.iloc[row])
        raise DataError(f"{where(label, row + offset, name)}: expected a finite number, "
                        f"found {found}")
    return values.to_numpy(dtype=np.float64)


# Dates written as A/B/YYYY (or with '.' or '-'): A and B are a day and a month in an
# order the text alone does not tell.
_NUMERIC_DATE = r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\b.*"


def parse_timestamps(col: pd.Series, label: str, name: str, offset: int,
                     date_format: str | None = None) -> np.ndarray:
    """Numbers are kept as they are; date strings become seconds since the epoch.

    Dates are parsed with ``date_format`` when given (a ``strftime`` format such as
    ``"%d/%m/%Y"``). Without it, ISO dates and other unambiguous forms are read as they
    are, and numeric dates like ``03/04/2020`` are read day-first or month-first by what
    the column shows (a first number above 12 means day-first); a column that shows both
    orders, or that never tells them apart, is refused rather than read one way or the
    other at random.
    """
    numeric = pd.to_numeric(col, errors="coerce") if date_format is None else None
    if numeric is not None and numeric.notna().all():
        if pd.api.types.is_integer_dtype(numeric):
            # Nanosecond timestamps exceed float64's 53-bit mantissa: keep them exact.
            return numeric.to_numpy(dtype=np.int64)
        return numeric.to_numpy(dtype=np.float64).astype(np.int64)
    text = col.astype(str)
    fmt = date_format or "mixed"
    dayfirst = False
    if date_format is None:
        parts = text.str.extract(_NUMERIC_DATE)
        dated = parts[0].notna().to_numpy()
        if dated.any():
            first = parts[0].astype(float).to_numpy()
            second = parts[1].astype(float).to_numpy()
            day_first = dated & (first > 12)
            month_first = dated & (second > 12)
            if day_first.any() and month_first.any():
                a, b = _first_bad(day_first), _first_bad(month_first)
                raise DataError(
                    f"{where(label, a + offset, name)}: {quote(text.iloc[a])} is day-first but "
                    f"line {b + offset} has {quote(text.iloc[b])}, month-first; expected one "
                    f"date order per column (give the date format, e.g. timestamp_format: "
                    f"'%d/%m/%Y')")
            if not day_first.any() and not month_first.any() and \
                    not (first[dated] == second[dated]).all():
                row = _first_bad(dated & (first != second))
                raise DataError(
                    f"{where(label, row + offset, name)}: {quote(text.iloc[row])} could be day-first "
                    f"or month-first and no date in the column tells which; give the date "
                    f"format (e.g. timestamp_format: '%d/%m/%Y' or '%m/%d/%Y')")
            dayfirst = bool(day_first.any())
    try:
        times = pd.to_datetime(text, errors="coerce", utc=True, format=fmt, dayfirst=dayfirst)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{where(label, None, name)}: cannot use the date format "
                        f"{quote(date_format)} ({exc})") from exc
    if times.isna().any():
        row = _first_bad(times.isna().to_numpy())
        expected = f"a date in the format {date_format!r}" if date_format else \
            "a number or an ISO date"
        raise DataError(f"{where(label, row + offset, name)}: cannot parse timestamp "
                        f"{quote(col.iloc[row])}; expected {expected}")
    # A plain array: a Series here would be indexed by label, not position, further on.
    seconds = (times - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta("1s")
    return seconds.to_numpy(dtype=np.int64)


def load_interactions(
    source: str | Path | pd.DataFrame,
    columns: ColumnMap | None = None,
    *,
    sep: str | None = None,
    names: list[str] | None = None,
    duplicates: DuplicatePolicy = "last",
    allow_negative_ids: bool = False,
    date_format: str | None = None,
) -> Interactions:
    """Load an interaction log from a CSV/TSV/Parquet file or a DataFrame.

    Args:
        source: file path (``.csv``, ``.tsv``/``.tab``, ``.parquet``; other suffixes are
            read as CSV with ``sep``) or a DataFrame.
        columns: which columns hold user, item and the optional fields.
        sep: field separator for text files (default ``,``, or tab for ``.tsv``).
        names: column names for files without a header line.
        duplicates: what to do with repeated (user, item) rows — ``"last"`` keeps the
            last row (in timestamp order when timestamps exist, else file order),
            ``"first"`` the first, ``"sum"`` adds their weights (each row weighing 1 when
            there is no weight column) and keeps the last rating and timestamp,
            ``"error"`` refuses them. The number of duplicates is in ``report``.
        allow_negative_ids: accept negative integer ids.
        date_format: ``strftime`` format of date timestamps (e.g. ``"%d/%m/%Y"``);
            needed when the column alone does not tell day-first from month-first.

    Raises:
        DataError: naming the file, line and column of the first problem found.
    """
    cols = columns or ColumnMap()
    if duplicates not in ("last", "first", "sum", "error"):
        raise DataError(f"duplicates must be 'last', 'first', 'sum' or 'error', not {duplicates!r}")
    df, label, offset = read_table(source, sep=sep, names=names, expected=cols.required())
    report = LoadReport(label, rows_read=len(df), duplicate_policy=duplicates,
                        ignored_columns=[c for c in df.columns if c not in cols.required()])

    users = parse_ids(df[cols.user], label, cols.user, offset, allow_negative_ids)
    items = parse_ids(df[cols.item], label, cols.item, offset, allow_negative_ids)
    fields: dict[str, np.ndarray] = {}
    if cols.rating:
        fields["rating"] = parse_numeric(df[cols.rating], label, cols.rating, offset)
    if cols.weight:
        fields["weight"] = parse_numeric(df[cols.weight], label, cols.weight, offset)
    if cols.timestamp:
        fields["timestamp"] = parse_timestamps(df[cols.timestamp], label, cols.timestamp, offset,
                                               date_format)

    user_map, u = IdMap.from_values(users, "user")
    item_map, i = IdMap.from_values(items, "item")
    u, i, fields, n_dup = resolve_duplicates(u, i, fields, duplicates, label, offset)
    report.duplicates = n_dup
    return Interactions(u, i, user_map, item_map, report=report, **fields)


def resolve_duplicates(
    user: np.ndarray,
    item: np.ndarray,
    fields: dict[str, np.ndarray],
    policy: DuplicatePolicy,
    label: str = "log",
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], int]:
    """Apply a duplicate policy; returns rows sorted by (user, item) and the count removed."""
    # Stable sort on (user, item, time) so "last" means latest in time, then in file order.
    fields = {k: np.asarray(v) for k, v in fields.items()}
    keys = [np.arange(len(user))]
    if "timestamp" in fields:
        keys.append(fields["timestamp"])
    keys += [item, user]
    order = np.lexsort(keys)
    u, i = user[order], item[order]
    fields = {k: v[order] for k, v in fields.items()}
    new = np.ones(len(u), dtype=bool)
    new[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
    n_dup = int(len(u) - new.sum())
    if n_dup == 0:
        return u, i, fields, 0
    if policy == "error":
        pos = np.flatnonzero(~new)[0]
        raise DataError(f"{where(label, int(order[pos]) + offset)}: duplicate (user, item) row; "
                        f"choose duplicates='last', 'first' or 'sum'")
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    last = np.append(starts[1:], len(u)) - 1
    pick = starts if policy == "first" else last
    out = {k: v[pick] for k, v in fields.items()}
    if policy == "sum":
        w = fields.get("weight", np.ones(len(u)))
        out["weight"] = np.bincount(group, weights=w)
    return u[pick], i[pick], out, n_dup
