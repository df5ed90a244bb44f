"""Social edges: loading through the interactions' user map, cleaning, symmetrisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrec.data.errors import DataError
from graphrec.data.graph import RecGraph
from graphrec.data.idmap import IdMap
from graphrec.data.interactions import ColumnMap, Interactions, load_interactions
from graphrec.data.social import SocialColumns, SocialEdges, load_social, social_user_ids


def edge_set(s: SocialEdges) -> set[tuple[int, int]]:
    return set(zip(s.src.tolist(), s.dst.tolist()))


@pytest.fixture
def users() -> IdMap:
    """Raw user ids 10, 20, 30, 40 → indices 0..3."""
    return IdMap([10, 20, 30, 40], "user")


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------- loading
def test_load_maps_raw_ids_through_user_map(tmp_path, users):
    path = write(tmp_path, "trust.csv", "src,dst\n10,20\n40,10\n30,20\n")
    s = load_social(path, users)
    assert edge_set(s) == {(0, 1), (3, 0), (2, 1)}
    assert s.num_users == 4
    assert s.weight is None
    assert s.report.rows_read == 3


def test_output_is_sorted_by_src_then_dst(tmp_path, users):
    path = write(tmp_path, "trust.csv", "src,dst\n40,10\n10,30\n10,20\n")
    s = load_social(path, users)
    assert s.src.tolist() == [0, 0, 3]
    assert s.dst.tolist() == [1, 2, 0]


def test_ids_are_normalised_like_interaction_ids(tmp_path):
    # "007" in the interaction file becomes the integer 7; the social file must match it.
    inter = load_interactions(write(tmp_path, "r.csv", "user,item\n007,a\n8,b\n"))
    path = write(tmp_path, "t.csv", "src,dst\n7,08\n")
    s = load_social(path, inter.user_map)
    assert edge_set(s) == {(inter.user_map.to_index(7), inter.user_map.to_index(8))}


def test_string_ids_match_string_map(tmp_path):
    inter = load_interactions(write(tmp_path, "r.csv", "user,item\nalice,a\nbob,b\n"))
    s = load_social(write(tmp_path, "t.csv", "src,dst\nalice,bob\n"), inter.user_map)
    assert edge_set(s) == {(inter.user_map.to_index("alice"), inter.user_map.to_index("bob"))}


def test_integer_map_with_one_non_integer_social_id(tmp_path, users):
    # The column stays text because of "eve", but "10" and "20" must still match 10, 20.
    s = load_social(write(tmp_path, "t.csv", "src,dst\n10,20\neve,10\n"), users)
    assert edge_set(s) == {(0, 1)}
    assert s.report.unknown_users == 1


def test_mixed_map_and_integer_social_ids(tmp_path):
    inter = load_interactions(write(tmp_path, "r.csv", "user,item\n5,a\nbob,b\n"))
    s = load_social(write(tmp_path, "t.csv", "src,dst\n5,5\n5,9\n"), inter.user_map)
    assert s.report.self_loops == 1
    assert s.report.unknown_users == 1


def test_unknown_users_dropped_and_reported(tmp_path, users):
    path = write(tmp_path, "t.csv", "src,dst\n10,20\n10,99\n77,20\n20,30\n")
    s = load_social(path, users)
    assert edge_set(s) == {(0, 1), (1, 2)}
    assert s.report.unknown_users == 2


def test_unknown_users_error_names_line_and_column(tmp_path, users):
    path = write(tmp_path, "t.csv", "src,dst\n10,20\n20,30\n10,99\n")
    with pytest.raises(DataError, match=r"t\.csv, line 4, column 'dst'.*unknown user id '99'"):
        load_social(path, users, unknown_users="error")
    path = write(tmp_path, "u.csv", "src,dst\n55,20\n")
    with pytest.raises(DataError, match=r"line 2, column 'src'"):
        load_social(path, users, unknown_users="error")


def test_self_loops_and_duplicates_dropped_and_reported(tmp_path, users):
    path = write(tmp_path, "t.csv", "src,dst\n10,10\n10,20\n10,20\n20,10\n30,30\n10,20\n")
    s = load_social(path, users)
    assert edge_set(s) == {(0, 1), (1, 0)}
    assert s.report.self_loops == 2
    assert s.report.duplicates == 2
    assert len(s) == 2


def test_duplicate_keeps_last_weight(tmp_path, users):
    path = write(tmp_path, "t.csv", "a,b,w\n10,20,1.0\n20,30,5\n10,20,3.5\n")
    s = load_social(path, users, SocialColumns("a", "b", "w"))
    assert s.weight.dtype == np.float32
    got = dict(zip(zip(s.src.tolist(), s.dst.tolist()), s.weight.tolist()))
    assert got == {(0, 1): 3.5, (1, 2): 5.0}


def test_symmetrize_adds_missing_reverse_edges(tmp_path, users):
    path = write(tmp_path, "t.csv", "src,dst\n10,20\n20,10\n10,30\n40,30\n")
    s = load_social(path, users, symmetrize=True)
    assert edge_set(s) == {(0, 1), (1, 0), (0, 2), (2, 0), (3, 2), (2, 3)}
    assert s.report.symmetrized
    assert s.report.added_by_symmetrization == 2
    assert s.is_symmetric()
    assert not load_social(path, users).is_symmetric()


def test_symmetrize_copies_weights(tmp_path, users):
    path = write(tmp_path, "t.csv", "src,dst,w\n10,20,2\n20,10,7\n10,30,4\n")
    s = load_social(path, users, SocialColumns(weight="w"), symmetrize=True)
    got = dict(zip(zip(s.src.tolist(), s.dst.tolist()), s.weight.tolist()))
    assert got == {(0, 1): 2.0, (1, 0): 7.0, (0, 2): 4.0, (2, 0): 4.0}


def test_headerless_space_separated_file_with_extra_column(tmp_path, users):
    # The FilmTrust layout: "truster trustee 1", CRLF line ends.
    path = tmp_path / "trust.txt"
    path.write_bytes(b"10 20 1\r\n30 40 1\r\n")
    s = load_social(path, users, SocialColumns("a", "b"), sep=" ", names=["a", "b", "v"])
    assert edge_set(s) == {(0, 1), (2, 3)}


def test_parquet_and_dataframe_sources(tmp_path, users):
    df = pd.DataFrame({"u": [10, 30], "v": [20, 40]})
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    cols = SocialColumns("u", "v")
    assert edge_set(load_social(path, users, cols)) == {(0, 1), (2, 3)}
    assert edge_set(load_social(df, users, cols)) == {(0, 1), (2, 3)}


@pytest.mark.parametrize("text, pattern", [
    ("src,dst\n10,20\n,30\n", r"line 3, column 'src': missing id"),
    ("src,dst\n10,20\n20,-1\n", r"line 3, column 'dst': negative id"),
    ("src,other\n10,20\n", r"missing column\(s\) \['dst'\]"),
])
def test_bad_files_name_the_problem(tmp_path, users, text, pattern):
    with pytest.raises(DataError, match=pattern):
        load_social(write(tmp_path, "t.csv", text), users)


def test_bad_weight_names_line_and_column(tmp_path, users):
    path = write(tmp_path, "t.csv", "src,dst,w\n10,20,1\n20,30,lots\n")
    with pytest.raises(DataError, match=r"t\.csv, line 3, column 'w': expected a finite number"):
        load_social(path, users, SocialColumns(weight="w"))


def test_short_line_in_headerless_file(tmp_path, users):
    path = write(tmp_path, "t.txt", "10 20\n30\n")
    with pytest.raises(DataError, match="line 2"):
        load_social(path, users, SocialColumns("a", "b"), sep=" ", names=["a", "b"])


def test_missing_file_and_bad_policy(tmp_path, users):
    with pytest.raises(DataError, match="no such file"):
        load_social(tmp_path / "nope.csv", users)
    with pytest.raises(DataError, match="unknown_users"):
        load_social(write(tmp_path, "t.csv", "src,dst\n10,20\n"), users, unknown_users="keep")


def test_social_user_ids(tmp_path):
    ids = social_user_ids(write(tmp_path, "t.csv", "src,dst\n1,2\n2,3\n03,1\n"))
    assert sorted(ids.tolist()) == [1, 2, 3]


# ---------------------------------------------------------------------- arrays
def test_from_arrays_cleans_and_infers_num_users():
    s = SocialEdges.from_arrays([0, 0, 1, 2, 2], [1, 1, 1, 0, 5])
    assert s.num_users == 6
    assert edge_set(s) == {(0, 1), (2, 0), (2, 5)}
    assert (s.report.self_loops, s.report.duplicates) == (1, 1)
    assert s.degrees().tolist() == [1, 0, 2, 0, 0, 0]


def test_constructor_checks_ranges():
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        SocialEdges(np.array([0]), np.array([3]), None, 3)
    with pytest.raises(DataError, match="differ in length"):
        SocialEdges(np.array([0, 1]), np.array([1]), None, 3)


def test_to_frame_with_raw_ids(users):
    s = SocialEdges.from_arrays([0, 3], [1, 2], num_users=4, weight=[0.5, 2.0])
    df = s.to_frame(users)
    assert df.to_dict("list") == {"src": [10, 40], "dst": [20, 30], "weight": [0.5, 2.0]}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=40), st.booleans())
def test_from_arrays_matches_set_semantics(pairs, symmetrize):
    src = [a for a, _ in pairs]
    dst = [b for _, b in pairs]
    s = SocialEdges.from_arrays(src, dst, num_users=8, symmetrize=symmetrize)
    expected = {(a, b) for a, b in pairs if a != b}
    if symmetrize:
        expected |= {(b, a) for a, b in expected}
    assert edge_set(s) == expected
    assert len(s) == len(expected)  # no duplicates left
    assert list(zip(s.src, s.dst)) == sorted(zip(s.src, s.dst))
    r = s.report
    assert r.rows_read - r.self_loops - r.duplicates + r.added_by_symmetrization == len(s)


# ---------------------------------------------------------------------- RecGraph
def test_round_trip_through_recgraph(tmp_path):
    inter = load_interactions(write(tmp_path, "r.csv", "u,i\nann,x\nbob,y\ncat,x\ndan,z\n"),
                              ColumnMap("u", "i"))
    social = load_social(write(tmp_path, "t.csv", "src,dst\nann,bob\ncat,ann\ndan,cat\nann,zed\n"),
                         inter.user_map, symmetrize=True)
    graph = RecGraph(inter, social)
    src, dst = graph.social_edges()
    assert set(zip(src.tolist(), dst.tolist())) == edge_set(social)
    assert graph.num_social_edges == len(social) == 6
    raw = set(zip(inter.user_map.to_raw(src), inter.user_map.to_raw(dst)))
    assert ("ann", "bob") in raw and ("bob", "ann") in raw and ("cat", "dan") in raw


def test_recgraph_refuses_other_user_map():
    inter = Interactions.from_arrays([0, 1, 2], [0, 1, 0])
    social = SocialEdges.from_arrays([0], [1], num_users=5)
    with pytest.raises(DataError, match="same user map"):
        RecGraph(inter, social)
