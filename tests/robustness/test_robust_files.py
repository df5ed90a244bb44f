"""Interaction and social files that are malformed, ambiguous or not files at all.

Each case names the exact error: a DataError whose message gives the file, the line
(or row) and column, and what was expected.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphrec.data import Interactions
from graphrec.data.errors import DataError
from graphrec.data.interactions import ColumnMap, load_interactions
from graphrec.data.social import load_social

TS = ColumnMap(timestamp="ts")

# (name, file content, columns, words the message must hold)
BAD_FILES = [
    ("extra field on the first row", "user,item\n1,2,9\n2,3\n", None, ["line 2", "more fields"]),
    ("extra field later", "user,item\n1,2\n2,3,4\n", None, ["line 3", "expected 2 fields"]),
    ("short line", "user,item,rating\n1,2,5\n2,3\n", ColumnMap(rating="rating"),
     ["line 3", "expected 3 fields", "found 2"]),
    ("blank line in the middle", "user,item\n1,2\n\n2,3\n", None, ["line 3", "blank line"]),
    ("missing user", "user,item\n1,2\n,3\n", None, ["line 3", "'user'", "missing id"]),
    ("missing column", "uid,item\n1,2\n", None, ["missing column", "['user']"]),
    ("header only", "user,item\n", None, ["no rows"]),
    ("empty file", "", None, ["empty"]),
    ("negative id", "user,item\n-1,2\n", None, ["line 2", "negative id"]),
    ("id above int64", "user,item\n9223372036854775808,1\n1,2\n", None,
     ["line 2", "'user'", "64-bit"]),
    ("id below int64", "user,item\n1,-9223372036854775809\n", None, ["line 2", "'item'", "64-bit"]),
    ("huge id with many digits", "user,item\n" + "9" * 400 + ",1\n", None, ["line 2", "64-bit"]),
    ("rating not a number", "user,item,rating\n1,2,five\n", ColumnMap(rating="rating"),
     ["line 2", "'rating'", "finite number", "'five'"]),
    ("rating infinite", "user,item,rating\n1,2,inf\n", ColumnMap(rating="rating"),
     ["line 2", "finite number"]),
    ("rating NaN", "user,item,rating\n1,2,nan\n", ColumnMap(rating="rating"),
     ["line 2", "finite number"]),
    ("bad timestamp", "user,item,ts\n1,2,yesterday\n", TS, ["line 2", "'ts'", "cannot parse"]),
    ("mixed date orders", "user,item,ts\n1,2,13/01/2020\n2,3,01/13/2020\n", TS,
     ["line 2", "day-first", "line 3", "month-first", "timestamp_format"]),
    ("dates that never tell the order", "user,item,ts\n1,2,03/04/2020\n2,3,05/06/2020\n", TS,
     ["line 2", "day-first or month-first"]),
]


@pytest.mark.parametrize("name,text,cols,words", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_malformed_files_are_refused_with_their_place(write, name, text, cols, words):
    path = write("log.csv", text)
    with pytest.raises(DataError) as err:
        load_interactions(path, cols)
    message = str(err.value)
    assert "log.csv" in message
    for word in words:
        assert word in message, (word, message)


def test_bad_values_are_quoted_briefly(write):
    path = write("log.csv", "user,item,rating\n1,2," + "x" * 10_000 + "\n")
    with pytest.raises(DataError, match="finite number") as err:
        load_interactions(path, ColumnMap(rating="rating"))
    assert len(str(err.value)) < 400


@pytest.mark.parametrize("encoding,text", [("latin-1", "user,item\ncafé,1\n"),
                                           ("utf-16", "user,item\n1,2\n"),
                                           ("cp1252", "user,item\n1,2\n“x”,3\n")])
def test_undecodable_files_name_the_line(write, encoding, text):
    path = write("log.csv", text.encode(encoding))
    with pytest.raises(DataError, match="not UTF-8") as err:
        load_interactions(path)
    assert "log.csv, line" in str(err.value)


def test_a_folder_given_as_the_file(tmp_path):
    (tmp_path / "log.csv").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        load_interactions(tmp_path / "log.csv")


def test_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_interactions(tmp_path / "absent.csv")


def test_a_binary_file(write):
    path = write("log.csv", bytes(range(256)) * 4)
    with pytest.raises(DataError, match="log.csv"):
        load_interactions(path)


def test_dates_read_in_the_order_the_column_shows(write):
    path = write("log.csv", "user,item,ts\n1,2,13/01/2020\n2,3,02/01/2020\n")
    ts = load_interactions(path, TS).to_frame()["timestamp"].sort_values().tolist()
    days = [pd.Timestamp(t, unit="s").day for t in ts]
    assert days == [2, 13]  # both day-first, the first row says so


def test_a_date_format_resolves_ambiguous_dates(write):
    path = write("log.csv", "user,item,ts\n1,2,03/04/2020\n2,3,05/06/2020\n")
    inter = load_interactions(path, TS, date_format="%m/%d/%Y")
    months = sorted(pd.Timestamp(t, unit="s").month for t in inter.timestamp)
    assert months == [3, 5]
    with pytest.raises(DataError, match="format '%Y-%m-%d'"):
        load_interactions(path, TS, date_format="%Y-%m-%d")


@pytest.mark.parametrize("frame,words", [
    (pd.DataFrame({"user": ["1", 1], "item": [1, 2]}), ["row 1", "one kind of id"]),
    (pd.DataFrame({"user": [1, "a"], "item": [1, 2]}), ["row 1", "is text"]),
    (pd.DataFrame({"user": [1, 2], "item": [1.0, 2**60 * 1.0]}), ["row 1", "2**53"]),
    (pd.DataFrame({"user": np.array([1, 2**63 + 5], dtype=np.uint64), "item": [1, 2]}),
     ["row 1", "64-bit"]),
    (pd.DataFrame({"user": [1, None], "item": [1, 2]}), ["row 1", "missing id"]),
], ids=["str and int", "int and str", "float too large", "uint64 too large", "None id"])
def test_ambiguous_id_columns_in_frames(frame, words):
    with pytest.raises(DataError) as err:
        load_interactions(frame)
    for word in words:
        assert word in str(err.value)


def test_big_ids_inside_int64_stay_distinct(write):
    big = 2**63 - 1
    path = write("log.csv", f"user,item\n{big},1\n{big - 1},1\n")
    inter = load_interactions(path)
    assert inter.num_users == 2 and sorted(inter.user_map.raw) == [big - 1, big]


# ---------------------------------------------------------------------- social edges
@pytest.fixture
def users():
    return Interactions.from_arrays([0, 1, 2], [0, 1, 0]).user_map


@pytest.mark.parametrize("text,words", [
    ("src,dst\n0,1,5\n1,2\n", ["line 2", "more fields"]),
    ("src,dst\n0,1\n1\n", ["line 3"]),
    ("src,dst\n0,\n", ["line 2", "'dst'", "missing id"]),
    ("a,b\n0,1\n", ["missing column"]),
    ("src,dst\n0,99999999999999999999\n", ["line 2", "64-bit"]),
], ids=["extra field", "short line", "missing end", "wrong header", "huge id"])
def test_malformed_social_files(write, users, text, words):
    path = write("trust.csv", text)
    with pytest.raises(DataError) as err:
        load_social(path, users)
    assert "trust.csv" in str(err.value)
    for word in words:
        assert word in str(err.value), str(err.value)


def test_social_folder_instead_of_file(tmp_path, users):
    with pytest.raises(DataError, match="is a folder"):
        load_social(tmp_path, users)
