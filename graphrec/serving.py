"""Recommendations and exports for a trained run, as used by ``graphrec recommend`` and
``graphrec export``: reading user lists, the popularity fallback for unknown users, and
Parquet tables of embeddings or top-k scores with raw ids."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphrec.atomic import atomic_path
from graphrec.data.errors import DataError
from graphrec.models.base import Recommender

# Users scored at once: keeps the [users, items] score matrix small on large catalogues.
BATCH_USERS = 1024


UNKNOWN_HINT = "(use --unknown popular to give unknown users the most popular items)"


def parse_user_id(text: str, user_map: Any) -> object:
    """A raw user id typed on the command line, in the type the run's ids have
    (``"12"`` is the integer 12 when the run's user ids are integers)."""
    raw = user_map.raw
    if pd.api.types.is_integer_dtype(raw.dtype) and text.strip().lstrip("-").isdigit():
        return int(text)
    return text


def read_users_file(path: str | Path, user_map: Any, *, unknown: str = "error") -> list[object]:
    """Raw user ids from ``path``, one per line; blank lines are skipped.

    Args:
        unknown: ``"error"`` refuses an id the run does not know, naming its line;
            ``"popular"`` keeps it (see :func:`recommend_frame`).

    Raises:
        DataError: naming the file and line: a line holding more than one id, or an
            unknown id; or the file is not text or holds no ids.
    """
    users: list[object] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: expected a text file with one user id per line "
                        f"(it is not UTF-8 text)") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.strip()
        if not value:
            continue
        if len(value.split()) > 1 or "," in value:
            raise DataError(f"{path}, line {number}: expected one user id, got {value[:80]!r}")
        user = parse_user_id(value, user_map)
        if unknown == "error" and user_map.to_index([user], missing="mask")[0] < 0:
            raise DataError(f"{path}, line {number}: unknown user id {value[:80]!r}; the run "
                            f"knows {len(user_map)} users {UNKNOWN_HINT}")
        users.append(user)
    if not users:
        raise DataError(f"{path}: no user ids in the file (expected one per line)")
    return users


def popular_items(graph: Any) -> tuple[np.ndarray, np.ndarray]:
    """Item indices by number of training interactions, most popular first (ties: lower
    index first), and every item's number of training interactions."""
    counts = graph.item_degree()
    return np.argsort(-counts, kind="stable"), counts


def recommend_frame(model: Any, users: Sequence[object], k: int, *, exclude_seen: bool = True,
                    unknown: str = "error") -> pd.DataFrame:
    """Top-``k`` items for raw ``users`` of a trained model.

    Args:
        unknown: ``"error"`` raises :class:`DataError` naming users the run does not know;
            ``"popular"`` gives them the most popular training items instead (their
            ``score`` is the item's number of training interactions) and adds a column
            ``source`` (``"model"`` or ``"popular"``).

    Returns:
        Columns ``user``, ``rank``, ``item``, ``score`` (and ``source``), users in the
        order given.
    """
    if unknown not in ("error", "popular"):
        raise ValueError(f"unknown must be 'error' or 'popular', got {unknown!r}")
    graph = model.graph
    idx = graph.user_map.to_index(list(users), missing="mask")
    if unknown == "error" and (idx < 0).any():
        missing = [u for u, i in zip(users, idx) if i < 0]
        raise DataError(f"unknown user id(s) {missing[:5]} ({len(missing)} in all); the run "
                        f"knows {graph.num_users} users {UNKNOWN_HINT}")
    known = [u for u, i in zip(users, idx) if i >= 0]
    frames = [model.recommend(b, k=k, exclude_seen=exclude_seen) for b in _batches(known)]
    frame = (pd.concat(frames, ignore_index=True) if frames
             else pd.DataFrame({"user": [], "rank": [], "item": [], "score": []}))
    if unknown == "error":
        return frame
    frame["source"] = "model"
    order, counts = popular_items(graph)
    top = order[:k]
    fallback = [pd.DataFrame({"user": [u] * len(top), "rank": np.arange(1, len(top) + 1),
                              "item": graph.item_map.to_raw(top), "score": counts[top].astype(float),
                              "source": "popular"})
                for u, i in zip(users, idx) if i < 0]
    frame = pd.concat([frame, *fallback], ignore_index=True)
    # Back to the order the users were given in.
    position = {u: n for n, u in enumerate(dict.fromkeys(users))}
    frame["_pos"] = frame["user"].map(position)
    return (frame.sort_values(["_pos", "rank"], kind="stable").drop(columns="_pos")
            .reset_index(drop=True))


def check_new_file(path: str | Path, overwrite: bool) -> Path:
    """``path`` as a Path, refusing an existing file unless ``overwrite`` and a missing folder.

    Raises:
        FileExistsError: the file exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: the file exists; give --overwrite to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such folder for the output file")
    return path


def write_parquet(frame: pd.DataFrame, path: str | Path, overwrite: bool = False) -> None:
    """Write ``frame`` to ``path`` atomically; an existing file is kept unless ``overwrite``
    (checked again at the last moment, so a file created meanwhile is not replaced)."""
    path = check_new_file(path, overwrite)
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            frame.to_parquet(tmp, index=False)
    except FileExistsError as exc:
        raise FileExistsError(f"{path}: the file exists; give --overwrite to replace it") from exc


def embedding_table(model: Any) -> pd.DataFrame:
    """User and item embeddings with raw ids: columns ``kind``, ``id``, ``e0 .. e{D-1}``.

    Raises:
        DataError: the model has no embeddings (closed-form and rating models).
    """
    if not hasattr(model, "embeddings"):
        raise DataError(f"{type(model).__name__} has no user and item embeddings (closed-form "
                        f"and rating models score directly); export --what scores instead")
    user_emb, item_emb = (e.float().cpu().numpy() for e in model.embeddings())
    cols = [f"e{j}" for j in range(user_emb.shape[1])]
    graph = model.graph
    frames = [pd.DataFrame(user_emb, columns=cols).assign(kind="user", id=graph.user_map.raw.astype(str)),
              pd.DataFrame(item_emb, columns=cols).assign(kind="item", id=graph.item_map.raw.astype(str))]
    return pd.concat(frames, ignore_index=True)[["kind", "id", *cols]]


def _batches(users: Sequence[object] | pd.Index) -> Iterator[list[object]]:
    """``users`` in lists of at most ``BATCH_USERS`` (bounds the scores held at once)."""
    for s in range(0, len(users), BATCH_USERS):
        yield list(users[s:s + BATCH_USERS])


def score_table(model: Any, k: int, exclude_seen: bool = True) -> pd.DataFrame:
    """The top-``k`` items of every user: columns ``user``, ``rank``, ``item``, ``score``.

    An embedding model's embeddings are computed once for all the batches (a graph
    model would otherwise propagate once per batch of users).
    """
    extra = {"embeddings": model.embeddings()} if isinstance(model, Recommender) else {}
    frames = [model.recommend(b, k=k, exclude_seen=exclude_seen, **extra)
              for b in _batches(model.graph.user_map.raw)]
    return pd.concat(frames, ignore_index=True)
