"""Loader behaviour that needs no real data: locating files, errors, fast list parsing."""

from __future__ import annotations

import numpy as np
import pytest

from graphrec.data.errors import DataError
from graphrec.datasets import (
    data_root,
    default_data_dir,
    filmtrust,
    gowalla,
    lastfm,
    movielens_small,
    read_user_item_lists,
)


@pytest.mark.parametrize("loader, folder, first_file, url", [
    (movielens_small, "movielens-small", "ratings.csv", "grouplens.org"),
    (filmtrust, "filmtrust", "ratings.txt", "librec"),
    (lastfm, "lastfm", "data1.txt", "LightGCN"),
    (gowalla, "gowalla", "train.txt", "LightGCN"),
])
def test_missing_files_say_what_where_and_how(tmp_path, loader, folder, first_file, url):
    with pytest.raises(DataError) as err:
        loader(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / folder / first_file) in msg
    assert url in msg and "GRAPHREC_DATA" in msg


def test_missing_file_in_existing_folder_is_named(tmp_path):
    (tmp_path / "filmtrust").mkdir()
    (tmp_path / "filmtrust" / "ratings.txt").write_text("1 1 2\n")
    with pytest.raises(DataError, match=r"filmtrust/trust\.txt") as err:
        filmtrust(tmp_path)
    assert "ratings.txt" not in str(err.value)


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHREC_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("GRAPHREC_DATA")
    assert data_root() == default_data_dir()


def test_small_filmtrust_layout(tmp_path):
    folder = tmp_path / "filmtrust"
    folder.mkdir()
    (folder / "ratings.txt").write_bytes(b"1 10 3\r\n2 10 4\n2 11 0.5\n1 10 2\n")
    (folder / "trust.txt").write_bytes(b"1 2 1\r\n2 9 1\r\n")
    d = filmtrust(tmp_path)
    assert len(d.interactions) == 3 and d.interactions.report.duplicates == 1
    assert len(d.social) == 1 and d.social.report.unknown_users == 1


def test_small_lastfm_layout(tmp_path):
    (tmp_path / "data1.txt").write_text("1\t5\t10\n2\t6\t3\n")
    (tmp_path / "test1.txt").write_text("1\t6\t7\n3\t5\t1\n")
    (tmp_path / "trustnetwork.txt").write_text("1\t2\n2\t1\n1\t4\n")
    d = lastfm(tmp_path)
    assert d.num_users == 3 and d.num_items == 2
    # Indices follow sorted raw ids across both parts, so test-only user 3 is index 2.
    assert d.split.test.user.tolist() == [0, 2]
    assert d.split.report.cold_users["test"] == 1
    assert len(d.social) == 2 and d.social.report.unknown_users == 1
    assert lastfm(tmp_path, include_social_only_users=True).num_users == 4


def test_read_user_item_lists(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"0 5 6 7\n1\n\n2 5\r\n3  8\t9 \n")
    user, item, line_users = read_user_item_lists(path)
    assert user.tolist() == [0, 0, 0, 2, 3, 3]
    assert item.tolist() == [5, 6, 7, 5, 8, 9]
    assert line_users.tolist() == [0, 1, 2, 3]


def test_read_user_item_lists_without_final_newline_and_empty(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"4 1 2")
    user, item, _ = read_user_item_lists(path)
    assert (user.tolist(), item.tolist()) == ([4, 4], [1, 2])
    path.write_bytes(b"")
    user, item, lines = read_user_item_lists(path)
    assert len(user) == len(item) == len(lines) == 0


@pytest.mark.parametrize("text, line", [(b"0 1 2\n1 x\n", 2), (b"0 1\n1 2\n2 -3\n", 3),
                                        (b"0 1.5\n", 1)])
def test_read_user_item_lists_errors_name_the_line(tmp_path, text, line):
    path = tmp_path / "train.txt"
    path.write_bytes(text)
    with pytest.raises(DataError, match=rf"train\.txt, line {line}: unexpected character"):
        read_user_item_lists(path)


def test_gowalla_user_without_items_is_a_user(tmp_path):
    (tmp_path / "train.txt").write_text("0 0 1\n1 1\n2\n")
    (tmp_path / "test.txt").write_text("0 2\n1 0\n2 1\n")
    d = gowalla(tmp_path)
    assert d.num_users == 3 and d.num_items == 3
    assert d.split.train.user_degrees().tolist() == [2, 1, 0]
    assert d.split.report.cold_users["test"] == 1
    np.testing.assert_array_equal(d.split.test.item, [2, 0, 1])
