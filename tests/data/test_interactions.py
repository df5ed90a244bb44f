"""Loading interaction logs: formats, column maps, validation messages, duplicates, saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrec.data import ColumnMap, DataError, IdMap, Interactions, load_interactions

ROWS = pd.DataFrame({
    "uid": ["u3", "u1", "u2", "u1"],
    "iid": [10, 20, 10, 30],
    "stars": [4.0, 3.5, 5.0, 1.0],
    "ts": [100, 200, 300, 400],
    "comment": ["a", "b", "c", "d"],
})
COLUMNS = ColumnMap(user="uid", item="iid", rating="stars", timestamp="ts")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def raw_rows(inter: Interactions) -> list[tuple]:
    """(raw user, raw item, rating, timestamp) per row, in a canonical order."""
    df = inter.to_frame(raw_ids=True)
    return sorted(zip(df["user"], df["item"].astype(int), df["rating"], df["timestamp"]))


EXPECTED_ROWS = sorted(zip(ROWS["uid"], ROWS["iid"], ROWS["stars"], ROWS["ts"]))


# ---------------------------------------------------------------------- formats
@pytest.mark.parametrize("fmt", ["csv", "tsv", "semicolon", "parquet", "dataframe"])
def test_every_format_loads_the_same_rows(fmt: str, tmp_path: Path) -> None:
    kwargs = {}
    if fmt == "csv":
        source = tmp_path / "log.csv"
        ROWS.to_csv(source, index=False)
    elif fmt == "tsv":
        source = tmp_path / "log.tsv"
        ROWS.to_csv(source, index=False, sep="\t")
    elif fmt == "semicolon":
        source = tmp_path / "log.txt"
        ROWS.to_csv(source, index=False, sep=";")
        kwargs["sep"] = ";"
    elif fmt == "parquet":
        source = tmp_path / "log.parquet"
        ROWS.to_parquet(source, index=False)
    else:
        source = ROWS.set_index(pd.Index([7, 3, 9, 1]))  # a non-default index must not matter
    inter = load_interactions(source, COLUMNS, **kwargs)
    assert raw_rows(inter) == EXPECTED_ROWS
    assert inter.num_users == 3 and inter.num_items == 3
    assert inter.report.rows_read == len(ROWS)
    assert inter.report.ignored_columns == ["comment"]
    assert inter.rating.dtype == np.float32 and inter.timestamp.dtype == np.int64


def test_headerless_file_uses_names(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "1,5,2.0\n2,5,3.0\n1,6,4.0\n")
    inter = load_interactions(path, ColumnMap(rating="r"), names=["user", "item", "r"])
    df = inter.to_frame(raw_ids=True)
    assert sorted(zip(df["user"], df["item"], df["rating"])) == [(1, 5, 2.0), (1, 6, 4.0), (2, 5, 3.0)]


def test_integer_looking_ids_are_the_same_id(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item\n007,1\n7,2\n8,1\n")
    inter = load_interactions(path)
    assert list(inter.user_map.raw) == [7, 8]
    assert inter.user_degrees().tolist() == [2, 1]


def test_trailing_blank_lines_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item\n1,2\n3,4\n\n\n")
    assert len(load_interactions(path)) == 2


def test_iso_dates_become_epoch_seconds(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv",
                 "user,item,when\n1,1,2020-01-01T00:00:00Z\n1,2,2020-01-02 12:00:00\n")
    inter = load_interactions(path, ColumnMap(timestamp="when"))
    expected = [pd.Timestamp("2020-01-01", tz="UTC").timestamp(),
                pd.Timestamp("2020-01-02 12:00", tz="UTC").timestamp()]
    assert inter.timestamp.tolist() == [int(t) for t in expected]


def test_nanosecond_timestamps_stay_exact(tmp_path: Path) -> None:
    # Above 2**53 a float64 round trip would change these values (and their order).
    ts = [1_600_000_000_123_456_789, 1_600_000_000_123_456_788]
    path = write(tmp_path / "log.csv", f"user,item,ts\n1,1,{ts[0]}\n1,2,{ts[1]}\n")
    inter = load_interactions(path, ColumnMap(timestamp="ts"))
    assert inter.timestamp.tolist() == ts


# ---------------------------------------------------------------------- validation
# (file text, loader kwargs, fragments the message must contain besides the file name)
BAD_FILES = {
    "missing column": ("user,item\n1,2\n", {"columns": ColumnMap(rating="rating")},
                       ["missing column(s) ['rating']", "found ['user', 'item']"]),
    "renamed columns": ("customer,product\n1,2\n", {},
                        ["missing column(s) ['user', 'item']", "ColumnMap"]),
    "empty file": ("", {}, ["empty", "expected columns ['user', 'item']"]),
    "whitespace only": ("\n", {}, ["empty"]),
    "header only": ("user,item,rating\n", {"columns": ColumnMap(rating="rating")},
                    ["no rows", "expected columns ['user', 'item', 'rating']"]),
    "nan rating": ("user,item,rating\n1,2,3\n1,3,NaN\n", {"columns": ColumnMap(rating="rating")},
                   ["line 3", "column 'rating'", "finite number", "'NaN'"]),
    "empty rating": ("user,item,rating,x\n1,2,3,a\n1,3,,b\n",
                     {"columns": ColumnMap(rating="rating")},
                     ["line 3", "column 'rating'", "finite number", "empty value"]),
    "text rating": ("user,item,rating\n1,2,3\n1,3,4\n2,2,five\n",
                    {"columns": ColumnMap(rating="rating")},
                    ["line 4", "column 'rating'", "'five'"]),
    "infinite weight": ("user,item,w\n1,2,inf\n", {"columns": ColumnMap(weight="w")},
                        ["line 2", "column 'w'", "finite number"]),
    "bad timestamp": ("user,item,ts\n1,2,2020-01-01\n1,3,yesterday\n",
                      {"columns": ColumnMap(timestamp="ts")},
                      ["line 3", "column 'ts'", "'yesterday'", "ISO date"]),
    "negative id": ("user,item\n1,2\n3,-4\n", {}, ["line 3", "column 'item'", "negative id -4"]),
    "missing id": ("user,item\n1,2\n,4\n", {}, ["line 3", "column 'user'", "missing id"]),
    "too many fields (headerless)": ("1,2\n3,4\n5,6,7\n", {"names": ["user", "item"]},
                                     ["line 3", "expected 2 fields", "found 3"]),
    "too few fields (headerless)": ("1,2,3\n4,5\n", {"names": ["user", "item", "r"],
                                                     "columns": ColumnMap(rating="r")},
                                    ["line 2", "expected 3 fields", "found 2"]),
    "too few fields, unused last column": ("1,2,x\n4,5\n",
                                           {"names": ["user", "item", "note"]},
                                           ["line 2", "expected 3 fields", "found 2"]),
    "too many fields (header)": ("user,item\n1,2\n1,3\n1,4,5\n", {},
                                 ["line 4", "expected 2 fields", "found 3"]),
    "too few fields (header)": ("user,item,rating\n1,2,3\n1,3\n",
                                {"columns": ColumnMap(rating="rating")},
                                ["line 3", "expected 3 fields", "found 2"]),
    "blank line inside": ("user,item,rating\n1,2,3\n\n1,3,x\n",
                          {"columns": ColumnMap(rating="rating")}, ["line 3", "blank line"]),
    "duplicate refused": ("user,item\n1,2\n2,2\n1,2\n", {"duplicates": "error"},
                          ["line 4", "duplicate (user, item)"]),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_errors_name_file_line_and_expectation(case: str, tmp_path: Path) -> None:
    text, kwargs, fragments = BAD_FILES[case]
    path = write(tmp_path / "log.csv", text)
    with pytest.raises(DataError) as err:
        load_interactions(path, **kwargs)
    message = str(err.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.csv: no such file"):
        load_interactions(tmp_path / "nope.csv")


def test_parquet_and_dataframe_errors_name_the_column(tmp_path: Path) -> None:
    df = pd.DataFrame({"user": [1, 2], "item": [1.0, np.nan]})
    df.to_parquet(tmp_path / "log.parquet")
    with pytest.raises(DataError, match=r"log.parquet, row 1, column 'item': missing id"):
        load_interactions(tmp_path / "log.parquet")
    with pytest.raises(DataError, match=r"DataFrame: missing column\(s\) \['stars'\]"):
        load_interactions(df, ColumnMap(rating="stars"))


def test_negative_ids_can_be_allowed(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item\n-1,2\n3,-4\n")
    inter = load_interactions(path, allow_negative_ids=True)
    assert sorted(inter.user_map.raw) == [-1, 3]


def test_unknown_duplicate_policy_is_refused() -> None:
    with pytest.raises(DataError, match="duplicates must be"):
        load_interactions(ROWS, COLUMNS, duplicates="mean")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- duplicates
def reference(rows: pd.DataFrame, policy: str, with_time: bool) -> dict[tuple, tuple]:
    """(user, item) -> (rating, weight) by a direct reading of the policy."""
    out = {}
    for (u, i), group in rows.groupby(["user", "item"], sort=False):
        # Row order: by timestamp when there is one, file order breaking ties.
        order = group.sort_values("ts", kind="stable") if with_time else group
        pick = order.iloc[0] if policy == "first" else order.iloc[-1]
        weight = group["w"].sum() if policy == "sum" else pick["w"]
        out[(u, i)] = (pick["r"], weight)
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 5)),
             min_size=1, max_size=25),
    st.sampled_from(["last", "first", "sum"]),
    st.booleans(),
)
def test_duplicate_policies_match_a_direct_reading(rows, policy, with_time) -> None:
    df = pd.DataFrame(rows, columns=["user", "item", "ts"])
    df["r"] = np.arange(len(df), dtype=float)  # each row identifiable by its rating
    df["w"] = np.arange(1, len(df) + 1, dtype=float) * 0.5
    cols = ColumnMap(rating="r", weight="w", timestamp="ts" if with_time else None)
    inter = load_interactions(df, cols, duplicates=policy)
    expected = reference(df, policy, with_time)
    got = inter.to_frame(raw_ids=True)
    assert len(got) == len(expected)
    assert inter.report.duplicates == len(df) - len(expected)
    for u, i, r, w in zip(got["user"], got["item"], got["rating"], got["weight"]):
        assert (r, w) == pytest.approx(expected[(u, i)])
    if with_time:
        # The kept timestamp belongs to the kept row.
        ts_of_rating = dict(zip(df["r"], df["ts"]))
        assert [ts_of_rating[r] for r in got["rating"]] == got["timestamp"].tolist()


def test_last_means_latest_date_not_last_line(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv",
                 "user,item,when,rating\n"
                 "1,2,2020-01-03,1\n"
                 "1,2,2020-01-01,2\n"
                 "0,9,2020-01-05,4\n"
                 "1,2,2020-01-02,5\n")
    inter = load_interactions(path, ColumnMap(rating="rating", timestamp="when"), duplicates="last")
    got = {(u, i): (r, t) for u, i, r, t in inter.to_frame(raw_ids=True).itertuples(index=False)}
    day = 86400
    jan1 = int(pd.Timestamp("2020-01-01", tz="UTC").timestamp())
    assert got == {(1, 2): (1.0, jan1 + 2 * day), (0, 9): (4.0, jan1 + 4 * day)}
    assert inter.report.duplicates == 2


def test_sum_without_weight_column_counts_rows() -> None:
    df = pd.DataFrame({"user": [1, 1, 1, 2], "item": [5, 5, 6, 5]})
    inter = load_interactions(df, duplicates="sum")
    got = dict(zip(zip(*[inter.to_frame(raw_ids=True)[c] for c in ("user", "item")]), inter.weight))
    assert got == {(1, 5): 2.0, (1, 6): 1.0, (2, 5): 1.0}


# ---------------------------------------------------------------------- saving
def test_save_load_round_trip(tmp_path: Path) -> None:
    inter = load_interactions(ROWS.assign(w=[1.0, 2.0, 3.0, 4.0]),
                              ColumnMap("uid", "iid", "stars", "ts", "w"))
    inter.save(tmp_path / "ds")
    back = Interactions.load(tmp_path / "ds")
    for name in ("user", "item", "rating", "timestamp", "weight"):
        np.testing.assert_array_equal(getattr(back, name), getattr(inter, name))
        assert getattr(back, name).dtype == getattr(inter, name).dtype
    assert back.user_map == inter.user_map and back.item_map == inter.item_map
    assert not list((tmp_path / "ds").glob(".*tmp"))


def test_save_load_tuple_ids(tmp_path: Path) -> None:
    inter = load_interactions(pd.DataFrame({"user": [("a", 1), ("b", 2)], "item": [1, 2]}))
    inter.save(tmp_path / "ds")
    back = Interactions.load(tmp_path / "ds")
    assert list(back.user_map.raw) == [("a", 1), ("b", 2)]


def test_failed_save_keeps_the_previous_dataset(tmp_path: Path) -> None:
    first = Interactions.from_arrays([0, 1], [1, 0])
    first.save(tmp_path / "ds")
    # Ids that Parquet cannot hold make the second save fail part-way.
    bad = Interactions([0, 1], [0, 0], IdMap([object(), object()], "user"), IdMap([9], "item"))
    with pytest.raises(DataError):
        bad.save(tmp_path / "ds")
    back = Interactions.load(tmp_path / "ds")
    np.testing.assert_array_equal(back.user, first.user)
    np.testing.assert_array_equal(back.item, first.item)
    assert back.item_map == first.item_map
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == [
        "interactions.parquet", "item_ids.parquet", "meta.json", "user_ids.parquet"]


def test_load_names_the_missing_file(tmp_path: Path) -> None:
    Interactions.from_arrays([0], [0]).save(tmp_path / "ds")
    (tmp_path / "ds" / "item_ids.parquet").unlink()
    with pytest.raises(DataError, match="missing item_ids.parquet"):
        Interactions.load(tmp_path / "ds")


def test_indices_outside_the_maps_are_refused() -> None:
    with pytest.raises(DataError, match=r"item indices must lie in \[0, 2\)"):
        Interactions([0], [2], IdMap.identity(1), IdMap.identity(2))


def test_dataframe_errors_give_the_row_position() -> None:
    df = pd.DataFrame({"user": [1, 2, 3], "item": [4, 5, 6], "rating": [1.0, 2.0, "x"]})
    with pytest.raises(DataError, match=r"DataFrame, row 2, column 'rating'"):
        load_interactions(df, ColumnMap(rating="rating"))
