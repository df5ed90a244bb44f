"""``graphrec recommend`` user lists and fallbacks, and ``graphrec export``."""

import pandas as pd
import pytest

from graphrec.cli import main

TINY = ["--set", "data.synthetic_users=60", "--set", "data.synthetic_items=40",
        "--set", "train.epochs=1", "--set", "train.progress=false", "--set", "model.dim=4"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mf"
    assert main(["train", *TINY, "--set", "model.name=mf", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def closed_form_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ease"
    assert main(["train", *TINY, "--set", "model.name=ease", "--out", str(out)]) == 0
    return out


def _csv(capsys):
    from io import StringIO

    return pd.read_csv(StringIO(capsys.readouterr().out))


def test_recommend_all_users(run_dir, capsys):
    assert main(["recommend", "--run", str(run_dir), "--all", "--k", "2", "--csv"]) == 0
    frame = _csv(capsys)
    assert frame["user"].nunique() == 60 and len(frame) == 120
    assert list(frame.columns) == ["user", "rank", "item", "score"]


def test_recommend_users_file_skips_blank_lines(run_dir, tmp_path, capsys):
    users = tmp_path / "users.txt"
    users.write_text("3\n\n  7 \n")
    assert main(["recommend", "--run", str(run_dir), "--users-file", str(users), "--k", "2",
                 "--csv"]) == 0
    assert _csv(capsys)["user"].tolist() == [3, 3, 7, 7]


def test_recommend_users_file_bad_line_names_file_and_line(run_dir, tmp_path, capsys):
    users = tmp_path / "users.txt"
    users.write_text("3\n4 5\n")
    assert main(["recommend", "--run", str(run_dir), "--users-file", str(users)]) == 2
    err = capsys.readouterr().err
    assert f"{users}, line 2: expected one user id" in err and "Traceback" not in err


def test_recommend_users_file_unknown_id_names_the_line(run_dir, tmp_path, capsys):
    users = tmp_path / "users.txt"
    users.write_text("3\n\nghost\n")
    assert main(["recommend", "--run", str(run_dir), "--users-file", str(users)]) == 2
    assert f"{users}, line 3: unknown user id 'ghost'" in capsys.readouterr().err
    assert main(["recommend", "--run", str(run_dir), "--users-file", str(users),
                 "--unknown", "popular", "--k", "1", "--csv"]) == 0
    assert _csv(capsys)["source"].tolist() == ["model", "popular"]


def test_recommend_empty_users_file_is_an_error(run_dir, tmp_path, capsys):
    users = tmp_path / "users.txt"
    users.write_text("\n  \n")
    assert main(["recommend", "--run", str(run_dir), "--users-file", str(users)]) == 2
    assert "no user ids in the file" in capsys.readouterr().err


def test_export_into_a_missing_folder_is_an_error(run_dir, tmp_path, capsys):
    out = tmp_path / "nowhere" / "x.parquet"
    assert main(["export", "--run", str(run_dir), "--what", "scores", "--out", str(out)]) == 2
    assert f"{out.parent}: no such folder" in capsys.readouterr().err


def test_recommend_users_and_all_are_exclusive(run_dir, capsys):
    assert main(["recommend", "--run", str(run_dir), "--all", "--users", "1"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_unknown_user_is_an_error_by_default(run_dir, capsys):
    assert main(["recommend", "--run", str(run_dir), "--users", "1", "nobody"]) == 2
    err = capsys.readouterr().err
    assert "unknown user id(s) ['nobody']" in err and "--unknown popular" in err


def test_unknown_user_gets_popular_items(run_dir, capsys):
    assert main(["recommend", "--run", str(run_dir), "--users", "nobody", "1", "--k", "3",
                 "--unknown", "popular", "--csv"]) == 0
    frame = _csv(capsys)
    assert frame["user"].astype(str).tolist() == ["nobody"] * 3 + ["1"] * 3
    assert frame["source"].tolist() == ["popular"] * 3 + ["model"] * 3
    popular = frame[frame["source"] == "popular"]["score"].tolist()
    assert popular == sorted(popular, reverse=True) and popular[0] >= 1


def test_export_embeddings_and_scores(run_dir, tmp_path, capsys):
    emb = tmp_path / "emb.parquet"
    assert main(["export", "--run", str(run_dir), "--what", "embeddings", "--out", str(emb)]) == 0
    table = pd.read_parquet(emb)
    assert list(table.columns) == ["kind", "id", "e0", "e1", "e2", "e3"]
    assert (table["kind"] == "user").sum() == 60 and (table["kind"] == "item").sum() == 40

    scores = tmp_path / "scores.parquet"
    assert main(["export", "--run", str(run_dir), "--what", "scores", "--k", "5",
                 "--out", str(scores)]) == 0
    table = pd.read_parquet(scores)
    assert list(table.columns) == ["user", "rank", "item", "score"]
    assert len(table) == 60 * 5 and table.groupby("user")["rank"].max().eq(5).all()


def test_export_never_overwrites_without_flag(run_dir, tmp_path, capsys):
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"earlier output")
    assert main(["export", "--run", str(run_dir), "--what", "scores", "--out", str(out)]) == 2
    assert "exists; give --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"earlier output"
    assert main(["export", "--run", str(run_dir), "--what", "scores", "--out", str(out),
                 "--overwrite"]) == 0
    assert len(pd.read_parquet(out)) == 60 * 10
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]  # no temporary left


def test_export_closed_form_scores_only(closed_form_run, tmp_path, capsys):
    out = tmp_path / "emb.parquet"
    assert main(["export", "--run", str(closed_form_run), "--what", "embeddings",
                 "--out", str(out)]) == 2
    assert "has no user and item embeddings" in capsys.readouterr().err and not out.exists()
    assert main(["export", "--run", str(closed_form_run), "--what", "scores", "--k", "3",
                 "--out", str(out)]) == 0
    assert len(pd.read_parquet(out)) == 60 * 3


def test_export_refuses_other_file_types(run_dir, tmp_path, capsys):
    assert main(["export", "--run", str(run_dir), "--what", "scores",
                 "--out", str(tmp_path / "x.csv")]) == 2
    assert "expected a .parquet file name" in capsys.readouterr().err


def test_recommend_shows_titles_of_a_dataset_that_has_them(tmp_path, capsys):
    # A tiny MovieLens-shaped folder: ratings.csv and movies.csv with titles.
    folder = tmp_path / "data" / "movielens-small"
    folder.mkdir(parents=True)
    rng = __import__("numpy").random.default_rng(0)
    ratings = {(int(u), int(m)) for u, m in zip(rng.integers(1, 21, 300), rng.integers(1, 16, 300))}
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{m},4.0,{1000 + n}\n" for n, (u, m) in enumerate(sorted(ratings))))
    (folder / "movies.csv").write_text("movieId,title,genres\n" + "".join(
        f'{m},"Movie {m}, The",Drama\n' for m in range(1, 16)))
    out = tmp_path / "run"
    assert main(["train", "--set", "data.dataset=movielens_small", "--set",
                 f"data.root={tmp_path / 'data'}", "--set", "model.name=mf", "--set", "model.dim=4",
                 "--set", "train.epochs=1", "--set", "train.progress=false",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["recommend", "--run", str(out), "--users", "3", "--k", "2", "--csv"]) == 0
    frame = _csv(capsys)
    assert list(frame.columns) == ["user", "rank", "item", "title", "score"]
    assert (frame["title"] == [f"Movie {m}, The" for m in frame["item"]]).all()
    exported = tmp_path / "top2.parquet"
    assert main(["export", "--run", str(out), "--what", "scores", "--k", "2",
                 "--out", str(exported)]) == 0
    table = pd.read_parquet(exported)
    assert list(table.columns) == ["user", "rank", "item", "title", "score"]
    assert (table["title"] == [f"Movie {m}, The" for m in table["item"]]).all()


def test_score_table_propagates_once_and_matches_recommend(monkeypatch):
    # Every user's top-k in several batches: the graph model propagates once, and the
    # table equals recommending batch by batch.
    import graphrec.serving as serving
    from graphrec.data import RecGraph
    from graphrec.datasets import synthetic
    from graphrec.models import LightGCN

    graph = RecGraph(synthetic(num_users=90, num_items=60, seed=3).interactions)
    model = LightGCN(graph, dim=8, num_layers=2)
    calls = []
    real = model.embeddings
    monkeypatch.setattr(model, "embeddings", lambda: calls.append(1) or real())
    monkeypatch.setattr(serving, "BATCH_USERS", 25)
    table = serving.score_table(model, k=5)
    assert len(calls) == 1
    users = list(graph.user_map.raw)
    expected = pd.concat([model.recommend(users[s:s + 25], k=5) for s in range(0, len(users), 25)],
                         ignore_index=True)
    pd.testing.assert_frame_equal(table, expected)
    assert table["user"].nunique() == graph.num_users
