"""The one exception type for bad input data."""

from __future__ import annotations


class DataError(ValueError):
    """Input data does not have the expected shape or content.

    The message always names where the problem is (file, line or column) and what was
    expected, so that the user can fix the input without reading a stack trace.
    """


def quote(value: object, limit: int = 200) -> str:
    """``repr(value)`` cut to ``limit`` characters: a message never quotes a huge value."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def where(source: str, line: int | None = None, column: str | None = None) -> str:
    """Format a location such as ``ratings.csv, line 12, column 'rating'``.

    Text files count lines from 1 (header included). Tables without lines — a
    ``DataFrame`` or a ``.parquet`` file — give the row's 0-based position instead
    (``DataFrame, row 3``: ``df.iloc[3]``).
    """
    parts = [source]
    if line is not None:
        tabular = source == "DataFrame" or source.lower().endswith(".parquet")
        parts.append(f"row {line}" if tabular else f"line {line}")
    if column is not None:
        parts.append(f"column {column!r}")
    return ", ".join(parts)
