"""Real datasets: the loaders reproduce the published sizes of the files they read.

These tests read the data from $GRAPHREC_DATA or ../shared/datasets and are skipped
when it is absent. Besides published figures, they check what the files hold (counted
independently with pandas here), so a loader that drops or invents rows fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphrec.data.graph import RecGraph
from graphrec.datasets import filmtrust, gowalla, lastfm, movielens_small, summary


@pytest.fixture(scope="module")
def ml(data_folder):
    return movielens_small(data_folder("movielens-small").parent)


@pytest.fixture(scope="module")
def ft(data_folder):
    return filmtrust(data_folder("filmtrust"))


@pytest.fixture(scope="module")
def lf(data_folder):
    return lastfm(data_folder("lastfm").parent)


@pytest.fixture(scope="module")
def gw(data_folder):
    return gowalla(data_folder("gowalla"))


# ---------------------------------------------------------------------- MovieLens
def test_movielens_published_sizes(ml):
    x = ml.interactions
    assert (x.num_users, x.num_items, len(x)) == (610, 9_742, 100_836)
    assert x.report.duplicates == 0
    assert (x.rating.min(), x.rating.max()) == (0.5, 5.0)
    assert set(np.unique(x.rating * 2).astype(int).tolist()) <= set(range(1, 11))
    assert ml.split is None and ml.social is None
    assert (x.user_degrees() >= 20).all()  # GroupLens kept users with >= 20 ratings


def test_movielens_items_metadata(ml, data_folder):
    movies = pd.read_csv(data_folder("movielens-small") / "movies.csv")
    items = ml.items
    assert len(items) == ml.interactions.num_items == len(movies)
    assert list(items.index) == list(range(len(items)))
    assert items["title"].notna().all()
    # Every item's metadata row is the movie of its raw id.
    by_id = movies.set_index("movieId")
    raw = ml.interactions.item_map.to_raw(np.arange(len(items)))
    np.testing.assert_array_equal(items["movie_id"].to_numpy(), raw)
    np.testing.assert_array_equal(items["title"].to_numpy(), by_id.loc[raw, "title"].to_numpy())
    toy = items.index[items["title"] == "Toy Story (1995)"][0]
    assert items.loc[toy, "genres"] == "Adventure|Animation|Children|Comedy|Fantasy"


def test_movielens_interactions_match_file(ml, data_folder):
    raw = pd.read_csv(data_folder("movielens-small") / "ratings.csv")
    x = ml.interactions
    got = x.to_frame(raw_ids=True).sort_values(["user", "item"]).reset_index(drop=True)
    want = raw.sort_values(["userId", "movieId"]).reset_index(drop=True)
    np.testing.assert_array_equal(got["user"], want["userId"])
    np.testing.assert_array_equal(got["item"], want["movieId"])
    np.testing.assert_allclose(got["rating"], want["rating"])
    np.testing.assert_array_equal(got["timestamp"], want["timestamp"])


def test_movielens_only_rated_movies(data_folder):
    d = movielens_small(data_folder("movielens-small"), all_movies=False)
    assert d.interactions.num_items == 9_724
    assert (d.interactions.item_degrees() > 0).all()
    assert len(d.items) == 9_724 and d.items["title"].notna().all()


# ---------------------------------------------------------------------- FilmTrust
def test_filmtrust_sizes_and_duplicates(ft, data_folder):
    raw = pd.read_csv(data_folder("filmtrust") / "ratings.txt", sep=" ", header=None)
    x = ft.interactions
    assert x.report.rows_read == len(raw) == 35_497
    assert x.report.duplicates == int(raw.duplicated([0, 1]).sum()) == 3
    assert len(x) == 35_494
    assert (x.num_users, x.num_items) == (1_508, 2_071)
    assert (x.rating.min(), x.rating.max()) == (0.5, 4.0)
    # The later of two conflicting lines wins: user 308 rated item 207 3.5, then 3.0.
    u, i = x.user_map.to_index(308), x.item_map.to_index(207)
    assert x.rating[(x.user == u) & (x.item == i)].tolist() == [3.0]


def test_filmtrust_trust(ft, data_folder):
    raw = pd.read_csv(data_folder("filmtrust") / "trust.txt", sep=" ", header=None)
    s = ft.social
    assert s.report.rows_read == len(raw) == 1_853
    raters = set(pd.read_csv(data_folder("filmtrust") / "ratings.txt", sep=" ", header=None)[0])
    both = raw[0].isin(raters) & raw[1].isin(raters)
    assert s.report.unknown_users == int((~both).sum()) == 221
    assert len(s) == 1_632
    assert not s.is_symmetric()  # trust is directed
    mapped = set(zip(ft.interactions.user_map.to_raw(s.src), ft.interactions.user_map.to_raw(s.dst)))
    assert mapped == set(zip(raw[0][both], raw[1][both]))


def test_filmtrust_options(data_folder):
    d = filmtrust(data_folder("filmtrust"), symmetrize=True, include_social_only_users=True)
    assert d.interactions.num_users == 1_642  # 1,508 raters + 134 users only in trust.txt
    assert len(d.interactions) == 35_494
    assert d.social.report.unknown_users == 0
    assert d.social.is_symmetric()
    assert len(d.social) == 1_853 + d.social.report.added_by_symmetrization
    assert d.social.report.added_by_symmetrization == 1_853 - 1_088  # 1,088 already reciprocal


# ---------------------------------------------------------------------- Last.fm
def test_lastfm_sizes(lf):
    sp = lf.split
    assert lf.interactions is None
    assert (len(sp.train), len(sp.valid), len(sp.test)) == (42_135, 0, 10_533)
    assert lf.num_items == 4_489
    assert lf.num_users == 1_880  # user ids run to 1,892; 12 appear only among friends
    assert sp.report.cold_users["test"] == 2 and sp.report.cold_items["test"] == 13
    assert sp.train.weight is not None and sp.train.weight.min() >= 1
    assert sp.train.item_map == sp.test.item_map


def test_lastfm_train_and_test_are_disjoint(lf):
    sp, n = lf.split, lf.num_items
    assert not np.isin(sp.test.user * n + sp.test.item, sp.train.user * n + sp.train.item).any()


def test_lastfm_friends(lf, data_folder):
    s = lf.social
    assert s.report.rows_read == 25_434
    assert s.report.added_by_symmetrization == 0  # the file lists both directions
    assert s.report.unknown_users == 208
    assert len(s) == 25_226 and s.is_symmetric()
    d = lastfm(data_folder("lastfm"), include_social_only_users=True)
    assert d.num_users == 1_892 and len(d.social) == 25_434
    g = RecGraph(d.split.train, d.social)
    assert g.num_social_edges == 25_434


# ---------------------------------------------------------------------- Gowalla
@pytest.mark.slow
def test_gowalla_published_sizes(gw):
    sp = gw.split
    assert (gw.num_users, gw.num_items) == (29_858, 40_981)
    assert (len(sp.train), len(sp.test)) == (810_128, 217_242)
    assert sp.train.report.duplicates == 0 and sp.test.report.duplicates == 0
    # Ids are 0-based and contiguous: indices are the raw ids.
    np.testing.assert_array_equal(gw.user_map.raw.to_numpy(), np.arange(29_858))
    np.testing.assert_array_equal(gw.item_map.raw.to_numpy(), np.arange(40_981))


@pytest.mark.slow
def test_gowalla_matches_file_lines(gw, data_folder):
    lines = (data_folder("gowalla") / "test.txt").read_text().splitlines()
    sp = gw.split
    for line in (lines[0], lines[1234], lines[-1]):
        user, *items = map(int, line.split())
        assert sorted(sp.test.item[sp.test.user == user].tolist()) == sorted(items)
    n = gw.num_items
    assert not np.isin(sp.test.user * n + sp.test.item, sp.train.user * n + sp.train.item).any()
    assert sp.report.cold_users["test"] == 0


@pytest.mark.slow
def test_summary_of_real_datasets(ml, ft, lf, gw):
    s = summary(gw)
    assert (s.users, s.items, s.interactions) == (29_858, 40_981, 1_027_370)
    assert s.split_sizes == {"train": 810_128, "valid": 0, "test": 217_242}
    assert summary(ml).items_without_interactions == 18
    assert summary(ft).rating_range == (0.5, 4.0)
    assert summary(lf).social_edges == 25_226
    assert "29,858 users" in str(s)


# ---------------------------------------------------------------------- locating data
def test_root_may_be_the_folder_or_its_parent(data_folder):
    folder = data_folder("filmtrust")
    assert len(filmtrust(folder).interactions) == len(filmtrust(folder.parent).interactions)


def test_environment_variable_is_used(data_folder, monkeypatch):
    monkeypatch.setenv("GRAPHREC_DATA", str(data_folder("filmtrust").parent))
    assert len(filmtrust().interactions) == 35_494
