"""Loaders for public datasets kept in a local folder: MovieLens, FilmTrust, Last.fm, Gowalla.

Every loader takes ``root``: the folder of that dataset (``…/gowalla``) or its parent
(``…/datasets`` holding a ``gowalla`` subfolder). Without it, the ``GRAPHREC_DATA``
environment variable names the parent folder, and failing that a cache folder
(:func:`default_data_dir`). The expected file layout of each dataset is described in
``datasets/README.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from graphrec.data.errors import DataError, where
from graphrec.data.idmap import IdMap
from graphrec.data.interactions import (
    ColumnMap,
    Interactions,
    LoadReport,
    load_interactions,
    parse_ids,
    read_table,
    resolve_duplicates,
)
from graphrec.data.social import SocialColumns, load_social, social_user_ids
from graphrec.data.splits import given_split
from graphrec.datasets.dataset import Dataset
from graphrec.datasets.download import download_movielens_small

ENV_VAR = "GRAPHREC_DATA"


def default_data_dir() -> Path:
    """Where datasets live when neither ``root`` nor ``GRAPHREC_DATA`` is given.

    ``datasets/cache`` of a source checkout (ignored by git), else
    ``$XDG_CACHE_HOME/graphrec/datasets`` (``~/.cache/graphrec/datasets``).
    """
    checkout = Path(__file__).resolve().parents[2] / "datasets"
    if (checkout / "README.md").exists():
        return checkout / "cache"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "graphrec" / "datasets"


def data_root(root: str | Path | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$GRAPHREC_DATA``, else the default."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else default_data_dir()


@dataclass(frozen=True)
class _Source:
    """Where a dataset's files are expected and where to get them."""

    name: str
    folder: str
    files: tuple[str, ...]
    url: str
    aliases: tuple[str, ...] = ()


MOVIELENS_SMALL = _Source("MovieLens small", "movielens-small", ("ratings.csv", "movies.csv"),
                          "https://grouplens.org/datasets/movielens/latest/ "
                          "(ml-latest-small.zip)", aliases=("ml-latest-small",))
FILMTRUST = _Source("FilmTrust", "filmtrust", ("ratings.txt", "trust.txt"),
                    "https://guoguibing.github.io/librec/datasets.html (filmtrust.zip)")
LASTFM = _Source("Last.fm", "lastfm", ("data1.txt", "test1.txt", "trustnetwork.txt"),
                 "https://github.com/gusye1234/LightGCN-PyTorch (data/lastfm)")
GOWALLA = _Source("Gowalla", "gowalla", ("train.txt", "test.txt"),
                  "https://github.com/kuandeng/LightGCN (Data/gowalla)")


def _locate(source: _Source, root: str | Path | None) -> Path:
    """The folder holding all of ``source``'s files, or a DataError saying what is missing."""
    base = data_root(root)
    candidates = [base / f for f in (source.folder, *source.aliases)] + [base]
    for folder in candidates:
        if all((folder / f).is_file() for f in source.files):
            return folder
    # Name the missing files of the most likely folder: the first holding any of the
    # files, else the conventional ``root/<folder>``.
    folder = next((c for c in candidates if any((c / f).is_file() for f in source.files)),
                  candidates[0])
    missing = [f for f in source.files if not (folder / f).is_file()]
    raise DataError(
        f"{source.name}: expected {', '.join(str(folder / f) for f in missing)}"
        f"{'' if folder == base / source.folder else f' (or in {base / source.folder})'}. "
        f"Get the files from {source.url}, put them in a folder named {source.folder!r}, and "
        f"pass its parent as root=… or set the {ENV_VAR} environment variable to it.")


def _merged_map(name: str, *raw: pd.Index) -> IdMap:
    """One sorted map over the raw ids of several parts (so indices follow raw ids)."""
    return IdMap.from_values(np.concatenate([r.to_numpy() for r in raw]), name)[0]


# ---------------------------------------------------------------------- MovieLens
def movielens_small(root: str | Path | None = None, download: bool = False, *,
                    all_movies: bool = True) -> Dataset:
    """MovieLens "ml-latest-small": 100,836 ratings (0.5–5) of 610 users, with timestamps.

    Args:
        root: the ``movielens-small`` folder or its parent (see module docs).
        download: fetch the public archive into the data folder if the files are absent
            (checked against its published SHA-256).
        all_movies: make every movie of ``movies.csv`` an item, including the 18 nobody
            rated, so that the items match the published 9,742 movies; with ``False``
            only rated movies are items.

    Returns:
        A Dataset whose ``items`` frame (indexed by item index) holds ``movie_id``,
        ``title`` and ``genres`` (``|``-separated).
    """
    try:
        folder = _locate(MOVIELENS_SMALL, root)
    except DataError:
        if not download:
            raise
        folder = download_movielens_small(data_root(root))
    inter = load_interactions(folder / "ratings.csv",
                              ColumnMap("userId", "movieId", rating="rating", timestamp="timestamp"))
    movies, label, offset = read_table(folder / "movies.csv", expected=["movieId", "title", "genres"])
    movie_ids = parse_ids(movies["movieId"], label, "movieId", offset, allow_negative=False)
    if movie_ids.duplicated().any():
        row = int(np.flatnonzero(movie_ids.duplicated().to_numpy())[0])
        raise DataError(f"{where(label, row + offset, 'movieId')}: movie {movie_ids.iloc[row]} "
                        f"listed twice")
    if all_movies:
        item_map = _merged_map("item", inter.item_map.raw, pd.Index(movie_ids))
        inter = inter.with_maps(inter.user_map, item_map)
    index = inter.item_map.to_index(pd.Index(movie_ids), missing="mask")
    known = index >= 0
    items = pd.DataFrame({"movie_id": movie_ids.to_numpy()[known],
                          "title": movies["title"].to_numpy()[known],
                          "genres": movies["genres"].to_numpy()[known]}, index=index[known])
    items = items.reindex(pd.RangeIndex(inter.num_items, name="item"))
    return Dataset(
        name="movielens-small", interactions=inter, items=items,
        description=(f"MovieLens ml-latest-small (GroupLens) from {folder}: explicit ratings "
                     f"0.5–5 with timestamps; {inter.report}"))


# ---------------------------------------------------------------------- FilmTrust
def filmtrust(root: str | Path | None = None, *, symmetrize: bool = False,
              include_social_only_users: bool = False) -> Dataset:
    """FilmTrust: explicit ratings (0.5–4) and directed trust statements.

    ``ratings.txt`` has 35,497 lines, three of which repeat a (user, item) pair of user
    308 (one identical, two with a different rating): the later line wins, leaving
    35,494 interactions (``interactions.report.duplicates`` says 3).

    Args:
        root: the ``filmtrust`` folder or its parent.
        symmetrize: treat trust as mutual (add reverse edges); it is directed in the data.
        include_social_only_users: also make users who appear only in ``trust.txt``
            users (without interactions); by default the users are the 1,508 raters and
            trust links touching anyone else are dropped (counted in
            ``social.report.unknown_users``).
    """
    folder = _locate(FILMTRUST, root)
    inter = load_interactions(folder / "ratings.txt", ColumnMap("user", "item", rating="rating"),
                              sep=" ", names=["user", "item", "rating"])
    trust_file = folder / "trust.txt"
    trust_cols = SocialColumns("truster", "trustee")
    trust_names = ["truster", "trustee", "value"]
    if include_social_only_users:
        extra = social_user_ids(trust_file, trust_cols, sep=" ", names=trust_names)
        inter = inter.with_maps(_merged_map("user", inter.user_map.raw, extra), inter.item_map)
    social = load_social(trust_file, inter.user_map, trust_cols, sep=" ", names=trust_names,
                         symmetrize=symmetrize)
    return Dataset(
        name="filmtrust", interactions=inter, social=social,
        description=(f"FilmTrust (Guo et al., IJCAI 2013; LibRec distribution) from {folder}: "
                     f"{inter.report}; trust: {social.report}"))


# ---------------------------------------------------------------------- Last.fm
def lastfm(root: str | Path | None = None, *, symmetrize: bool = True,
           include_social_only_users: bool = False) -> Dataset:
    """Last.fm (HetRec 2011) user–artist listening counts, as split by LightGCN.

    ``data1.txt`` is the train part and ``test1.txt`` the test part (no validation part);
    listening counts become interaction weights. ``trustnetwork.txt`` lists friendships in
    both directions already. The published "1,892 users" counts every user id; 12 of
    them appear only in the friendship network.

    Args:
        root: the ``lastfm`` folder or its parent.
        symmetrize: make friendships mutual (a no-op check on the distributed file).
        include_social_only_users: also make the 12 users without interactions users
            (1,892 in all); by default their friendships are dropped.
    """
    folder = _locate(LASTFM, root)
    cols = ColumnMap("user", "item", weight="weight")
    names = ["user", "item", "weight"]
    train = load_interactions(folder / "data1.txt", cols, sep="\t", names=names)
    test = load_interactions(folder / "test1.txt", cols, sep="\t", names=names)
    friends_file = folder / "trustnetwork.txt"
    friend_cols = SocialColumns("user", "friend")
    user_raw = [train.user_map.raw, test.user_map.raw]
    if include_social_only_users:
        user_raw.append(social_user_ids(friends_file, friend_cols, sep="\t", names=["user", "friend"]))
    user_map = _merged_map("user", *user_raw)
    item_map = _merged_map("item", train.item_map.raw, test.item_map.raw)
    split = given_split(train.with_maps(user_map, item_map), test.with_maps(user_map, item_map))
    social = load_social(friends_file, user_map, friend_cols, sep="\t", names=["user", "friend"],
                         symmetrize=symmetrize)
    return Dataset(
        name="lastfm", split=split, social=social,
        description=(f"Last.fm HetRec 2011, LightGCN split, from {folder}: train {train.report}; "
                     f"test {test.report}; friendships: {social.report}"))


# ---------------------------------------------------------------------- Gowalla
def read_user_item_lists(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a file of lines ``user item item …`` (non-negative integer ids).

    The whole file is parsed with numpy: tokens are found from the byte layout, so a
    million ids take a fraction of a second. Lines with a user and no items, and blank
    lines, are allowed.

    Returns:
        ``(user, item, line_users)``: one ``user``/``item`` entry per pair, and the user
        of every non-blank line (including users listed without items).

    Raises:
        DataError: naming the line of the first character that is not a digit or
            whitespace.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    data = path.read_bytes()
    buf = np.frombuffer(data, dtype=np.uint8)
    digit = (buf >= ord("0")) & (buf <= ord("9"))
    newline = buf == ord("\n")
    blank = (buf == ord(" ")) | (buf == ord("\t")) | (buf == ord("\r"))
    bad = ~(digit | newline | blank)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        line = int(newline[:pos].sum()) + 1
        raise DataError(f"{where(str(path), line)}: unexpected character {chr(buf[pos])!r}; "
                        f"expected non-negative integer ids separated by spaces")
    starts = np.flatnonzero(digit & ~np.concatenate([[False], digit[:-1]]))
    # Every byte is now a digit or whitespace, so the whitespace-separated tokens are
    # exactly the digit runs found above.
    values = np.array(data.split(), dtype=np.int64) if len(starts) else np.zeros(0, np.int64)
    line_of = np.searchsorted(np.flatnonzero(newline), starts)
    head = np.ones(len(starts), dtype=bool)  # a line's first token is its user
    head[1:] = line_of[1:] != line_of[:-1]
    line_user = values[head]
    user = np.repeat(line_user, np.diff(np.append(np.flatnonzero(head), len(values))) - 1)
    return user, values[~head], line_user


def _pairs(path: Path, user: np.ndarray, item: np.ndarray, user_map: IdMap,
           item_map: IdMap) -> Interactions:
    u, i, _, dups = resolve_duplicates(user_map.to_index(user), item_map.to_index(item), {},
                                       "first", str(path))
    report = LoadReport(str(path), rows_read=len(user), duplicates=dups, duplicate_policy="first")
    return Interactions(u, i, user_map, item_map, report=report)


def gowalla(root: str | Path | None = None) -> Dataset:
    """Gowalla check-ins with the train/test split of NGCF and LightGCN.

    Ids are 0-based and contiguous in the files, so indices equal the raw ids. The
    users are those starting a line in either file (also if listed without items).
    Repeated (user, item) pairs within a file would be merged and counted in the parts'
    ``report.duplicates`` (the distributed files have none).
    """
    folder = _locate(GOWALLA, root)
    train_path, test_path = folder / "train.txt", folder / "test.txt"
    tr_user, tr_item, tr_lines = read_user_item_lists(train_path)
    te_user, te_item, te_lines = read_user_item_lists(test_path)
    user_map = _merged_map("user", pd.Index(tr_lines), pd.Index(te_lines))
    item_map = _merged_map("item", pd.Index(tr_item), pd.Index(te_item))
    train = _pairs(train_path, tr_user, tr_item, user_map, item_map)
    test = _pairs(test_path, te_user, te_item, user_map, item_map)
    split = given_split(train, test)
    return Dataset(
        name="gowalla", split=split,
        description=(f"Gowalla check-ins (Cho et al., KDD 2011), NGCF/LightGCN split, from "
                     f"{folder}: train {train.report}; test {test.report}"))
