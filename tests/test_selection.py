import json

import numpy as np
import pytest
import torch

from graphrec.cli import main
from graphrec.config import ConfigError, ModelConfig
from graphrec.data import RecGraph
from graphrec.data.splits import per_user_split
from graphrec.datasets import synthetic
from graphrec.evaluate import Evaluator
from graphrec.experiment import build_model, is_rating_model
from graphrec.models.graph_filter import GFCF
from graphrec.selection import grid_edges, grid_points, grid_search

TINY = ["--set", "data.synthetic_users=150", "--set", "data.synthetic_items=100"]


@pytest.fixture(scope="module")
def split():
    return per_user_split(synthetic(num_users=300, num_items=200, seed=1).interactions,
                          ratios=(0.8, 0.1, 0.1), seed=0)


def test_grid_points_order_and_validation():
    assert grid_points({}) == [{}]
    assert grid_points({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    with pytest.raises(ValueError, match="non-empty list"):
        grid_points({"a": []})
    with pytest.raises(ValueError, match="non-empty list"):
        grid_points({"a": "abc"})


def test_grid_edges_names_ranges_chosen_at_their_end():
    grid = {"rank": [16, 64, 256], "alpha": [0.1, 1.0], "gamma": [None, 0.25, 0.4, 0.6],
            "score": ["dot", "cosine", "x"], "flag": [True, False, True]}
    assert grid_edges(grid, {"rank": 16, "alpha": 1.0, "gamma": 0.4, "score": "x",
                             "flag": True}) == ["rank = 16, the smallest of [16, 64, 256]"]
    # two values are a comparison, not a range; None is an option, not an end
    assert grid_edges(grid, {"rank": 64, "alpha": 0.1, "gamma": None}) == []
    assert grid_edges(grid, {"rank": 256, "gamma": 0.6}) == [
        "rank = 256, the largest of [16, 64, 256]",
        "gamma = 0.6, the largest of [0.25, 0.4, 0.6]"]
    assert grid_edges(grid, {"gamma": 0.25}) == ["gamma = 0.25, the smallest of [0.25, 0.4, 0.6]"]
    assert grid_edges({}, {}) == []
    # an axis the chosen model ignores (gamma, when alpha is 0 here) has no end to report
    same = lambda p: (p["rank"], 0.0) if p["alpha"] == 0 else (p["rank"], p["alpha"], p["gamma"])  # noqa: E731
    grid = {"rank": [16, 64, 256], "alpha": [0.0, 1.0], "gamma": [0.25, 0.4, 0.6]}
    assert grid_edges(grid, {"rank": 64, "alpha": 0.0, "gamma": 0.25}, same) == []
    assert grid_edges(grid, {"rank": 64, "alpha": 1.0, "gamma": 0.25}, same) == [
        "gamma = 0.25, the smallest of [0.25, 0.4, 0.6]"]


def build(graph, params):
    return GFCF(graph, rank=16, svd_iters=8, **params)


@pytest.mark.parametrize("refit", [True, False])
def test_grid_search_chooses_on_validation_and_tests_once(split, refit):
    grid = {"ideal_weight": [0.0, 0.5, 3.0]}
    result = grid_search(build, grid, split, monitor="ndcg@10", ks=(20,), refit=refit)
    # Validation of each point, computed independently.
    graph = RecGraph(split.train)
    ev = Evaluator(exclude=[split.train], ks=(10, 20))
    valid = [ev.evaluate(build(graph, p).fit(), split.valid)["ndcg@10"] for p in grid_points(grid)]
    assert [p.valid["ndcg@10"] for p in result.points] == pytest.approx(valid, abs=1e-12)
    assert result.best == grid_points(grid)[int(np.argmax(valid))]
    assert "recall@20" in result.test and "ndcg@10" in result.test
    # The test metrics are those of the chosen model, on the right graph.
    train = split.train.concat(split.valid) if refit else split.train
    assert result.model.graph.num_edges == RecGraph(train).num_edges
    ref = Evaluator(exclude=[split.train, split.valid], ks=(10, 20)).evaluate(
        build(RecGraph(train), result.best).fit(), split.test)
    assert result.test["recall@20"] == pytest.approx(ref["recall@20"], abs=1e-12)
    assert len(result.table()) == 3
    assert result.grid_edges == grid_edges(grid, result.best)


def test_grid_edges_reads_list_values_one_position_at_a_time():
    grid = {"weights": [[1, 0.5], [1, 1], [1, 2]], "rank": [8, 16]}
    assert grid_edges(grid, {"weights": [1, 2], "rank": 8}) == [
        "weights[1] = 2, the largest of [0.5, 1, 2]"]
    assert grid_edges(grid, {"weights": [1, 1], "rank": 8}) == []
    assert grid_edges({"weights": [[0.5, 1], [1, 1], [2, 1]]}, {"weights": [0.5, 1]}) == [
        "weights[0] = 0.5, the smallest of [0.5, 1, 2]"]


def test_choice_at_the_end_of_a_range_is_a_warning(split, caplog):
    # ideal_weight 0 (the linear filter alone) is the end of this range either way
    grid = {"ideal_weight": [0.0, 1e-9, 2e-9]}
    with caplog.at_level("WARNING", logger="graphrec.selection"):
        result = grid_search(build, grid, split, monitor="recall@20", refit=False)
    assert result.best == {"ideal_weight": 0.0}  # ties go to the first point
    assert result.grid_edges == ["ideal_weight = 0.0, the smallest of [0.0, 1e-09, 2e-09]"]
    assert "consider extending the grid" in caplog.text and "ideal_weight = 0.0" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="graphrec.selection"):
        grid_search(build, {"ideal_weight": [0.0, 1.0]}, split, refit=False)
    assert "extending" not in caplog.text


def test_points_that_build_the_same_model_are_ranked_once(split):
    from graphrec.selection import choose_on_validation

    built = []

    def counting(graph, params):
        built.append(dict(params))
        return GFCF(graph, svd_iters=8, **params).fit()

    # ``rank`` does nothing when ideal_weight is 0: those two points are one model.
    grid = {"ideal_weight": [0.0, 0.5], "rank": [8, 16]}
    g = RecGraph(split.train)
    best, points, _ = choose_on_validation(
        counting, grid, g, split.valid,
        same_as=lambda p: (0.0,) if p["ideal_weight"] == 0 else (p["ideal_weight"], p["rank"]))
    assert built == [{"ideal_weight": 0.0, "rank": 8}, {"ideal_weight": 0.5, "rank": 8},
                     {"ideal_weight": 0.5, "rank": 16}]
    assert len(points) == 4 and points[1].valid == points[0].valid
    assert (points[1].fit_seconds, points[1].eval_seconds) == (0.0, 0.0)
    assert best != 1  # a repeat never wins: ties go to the first point


def test_a_weight_grid_of_blends_is_ranked_in_one_pass(split, monkeypatch):
    # Consecutive blends over the same members are ranked together (each member scored
    # once per batch), with the metrics of ranking each alone; a repeat (same_as) in the
    # middle and a blend over other members split the groups.
    from graphrec.models.blend import Blend, shared_members
    from graphrec.models.graph_filter import LinearFilter
    from graphrec.models.ials import IALS
    from graphrec.selection import choose_on_validation

    passes = []
    real = Evaluator.evaluate_points
    monkeypatch.setattr(Evaluator, "evaluate_points",
                        lambda self, f, points, *a, **k: passes.append(points) or real(self, f, points, *a, **k))
    members = shared_members(lambda g: [LinearFilter(g), IALS(g, factors=4, iterations=3)])
    others = shared_members(lambda g: [LinearFilter(g)])

    def build(graph, params):
        if params["weights"] == "other":
            return Blend(graph, others(graph), [1.0]).fit()
        return Blend(graph, members(graph), params["weights"]).fit()

    grid = {"weights": [[1, 0], [1, 0.5], [1, 2], [1, 0.50], [0, 1], "other", [1, 1]]}
    g = RecGraph(split.train)
    best, points, model = choose_on_validation(
        build, grid, g, split.valid, ks=(10, 20),
        same_as=lambda p: str([float(w) for w in p["weights"]]) if p["weights"] != "other" else "o")
    assert passes == [3]  # [1, 0.5, 2]; then [0, 1] alone after the repeat; "other"; [1, 1]
    assert points[3].valid == points[1].valid and points[3].eval_seconds == 0.0
    ev = Evaluator(exclude=[g], ks=(10, 20), memory_budget_mb=512.0)
    for p in points:
        if p.params["weights"] == "other":
            alone = ev.evaluate(Blend(g, others(g), [1.0]).fit(), split.valid)
        else:
            alone = ev.evaluate(Blend(g, members(g), p.params["weights"]).fit(), split.valid)
        assert p.valid["recall@20"] == pytest.approx(alone["recall@20"], abs=1e-12)
        assert p.valid["ndcg@10"] == pytest.approx(alone["ndcg@10"], abs=1e-12)
    chosen = points[best].params["weights"]
    assert model.weights.tolist() == ([1.0] if chosen == "other" else [float(w) for w in chosen])


def test_grid_search_rejects_bad_monitor(split):
    with pytest.raises(ValueError, match="monitor"):
        grid_search(build, {}, split, monitor="recall")
    with pytest.raises(ValueError, match="not among"):
        grid_search(build, {}, split, monitor="auc@20")


def test_config_keys_checked_against_the_model():
    with pytest.raises(ConfigError, match="model.rank: only closed-form"):
        is_rating_model(ModelConfig(name="lightgcn", rank=8))
    with pytest.raises(ConfigError, match="model.neighbours: 'gfcf' does not read it"):
        is_rating_model(ModelConfig(name="gfcf", neighbours=8))
    with pytest.raises(ConfigError, match="model.grid.order: 'gfcf' cannot choose it"):
        is_rating_model(ModelConfig(name="gfcf", grid={"order": [2]}))
    with pytest.raises(ConfigError, match="model.name"):
        is_rating_model(ModelConfig(name="gfcff"))
    with pytest.raises(ConfigError, match="model.grid"):
        build_model(ModelConfig(name="lightgcn", grid={"rank": [2]}), None)


def test_cli_closed_form_run_round_trip(tmp_path, capsys):
    out = tmp_path / "gfcf"
    args = ["train", *TINY, "--set", "model.name=gfcf", "--set", "model.rank=12",
            "--set", "model.grid={ideal_weight: [0.1, 1.0]}", "--set", "train.refit=true",
            "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    # stdout is rounded for people; results.json holds the metrics in full
    results = json.loads((out / "results.json").read_text())
    trained = results
    assert results["selected"]["ideal_weight"] in (0.1, 1.0) and len(results["grid"]) == 2
    assert results["grid_edges"] == []  # two values are no range
    assert (out / "final.pt").exists()
    assert main(["evaluate", "--run", str(out)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["recall@20"] == pytest.approx(trained["test"]["recall@20"], abs=1e-12)
    assert main(["recommend", "--run", str(out), "--users", "0", "5", "--k", "3", "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "user,rank,item,score" and len(lines) == 1 + 2 * 3


def test_cli_rejects_key_the_model_does_not_read(capsys):
    assert main(["train", *TINY, "--set", "model.name=gfcf", "--set", "model.order=3",
                 "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "model.order" in err and "Traceback" not in err


def test_scoring_model_follows_model_device(split):
    model = GFCF(RecGraph(split.train), rank=8).fit()
    assert model.score_users(torch.tensor([0, 1])).device == model.device


@pytest.mark.parametrize("name,keys", [
    ("linear_filter", []), ("ideal_filter", ["--set", "model.rank=8"]),
    ("ease", ["--set", "model.reg=50"]),
    ("itemknn", ["--set", "model.neighbours=20", "--set", "model.similarity=asymmetric"]),
    ("ials", ["--set", "model.dim=8", "--set", "model.iterations=3"]),
    ("chebyshev", ["--set", "model.order=4", "--set", "model.flatness=1.5", "--set", "model.rank=8",
                   "--set", "model.degree_power=0.3", "--set", "model.response_sampling=extrema",
                   "--set", "model.user_norm=0.4", "--set", "model.item_norm=0.45"]),
    ("gfcf", ["--set", "model.rank=8", "--set", "model.user_norm=0.3"]),
])
def test_cli_runs_every_closed_form_model(tmp_path, capsys, name, keys):
    out = tmp_path / name
    assert main(["train", *TINY, "--set", f"model.name={name}", *keys, "--out", str(out)]) == 0
    shown = json.loads(capsys.readouterr().out)
    trained = json.loads((out / "results.json").read_text())  # in full; stdout is rounded
    assert shown["test"]["recall@20"] == pytest.approx(trained["test"]["recall@20"], rel=1e-3)
    assert 0 < trained["test"]["recall@20"] <= 1
    assert main(["evaluate", "--run", str(out)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["recall@20"] == pytest.approx(trained["test"]["recall@20"], abs=1e-12)


def test_grid_search_scores_with_the_score_backend_asked_for(split, evaluator_backends):
    grid = {"ideal_weight": [0.0, 0.5]}
    results = {}
    for backend in ("numpy", "torch"):
        evaluator_backends.clear()
        results[backend] = grid_search(build, grid, split, monitor="ndcg@10", refit=True,
                                       score_backend=backend)
        # validation of the grid, then the test
        assert evaluator_backends == [backend, backend]
    numpy, torch_ = results["numpy"], results["torch"]
    assert numpy.best == torch_.best
    for a, b in zip(numpy.points, torch_.points):
        for key in ("recall@20", "ndcg@10", "ndcg@20"):
            assert a.valid[key] == pytest.approx(b.valid[key], abs=1e-6)
    for key in ("recall@20", "ndcg@10", "ndcg@20"):
        assert numpy.test[key] == pytest.approx(torch_.test[key], abs=1e-6)


BLEND = ["--set", "model.name=blend",
         "--set", "model.members=[{name: gfcf, rank: 12}, {name: ials, dim: 8, iterations: 3}]"]


def test_cli_blend_run_chooses_weights_fits_members_once_and_round_trips(tmp_path, capsys,
                                                                         monkeypatch):
    from graphrec.models.ials import IALS
    fits = []
    original = IALS._fit
    monkeypatch.setattr(IALS, "_fit", lambda self: fits.append(self.graph) or original(self))
    out = tmp_path / "blend"
    args = ["train", *TINY, *BLEND, "--set", "model.grid={weights: [[1, 0], [1, 0.5], [0, 1]]}",
            "--set", "train.refit=true", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    results = json.loads((out / "results.json").read_text())
    assert len(results["grid"]) == 3
    # One fit on the training part serves the three points, one more for the refit.
    assert len(fits) == 2 and fits[0] is not fits[1]
    valid = [p["valid"]["recall@20"] for p in results["grid"]]
    assert results["selected"]["weights"] == [[1, 0], [1, 0.5], [0, 1]][int(np.argmax(valid))]
    assert main(["evaluate", "--run", str(out)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["recall@20"] == pytest.approx(results["test"]["recall@20"], abs=1e-12)


def test_blend_points_score_like_the_blend_of_separately_fitted_members(split):
    """The weight (1, 0) is GF-CF alone and (0, 1) iALS alone, on validation."""
    from graphrec.closed_form import build_closed_form
    cfg = ModelConfig(name="blend", members=[{"name": "gfcf", "rank": 12},
                                             {"name": "ials", "dim": 8, "iterations": 3}],
                      weights=[1.0, 0.0])
    graph = RecGraph(split.train)
    ev = Evaluator(exclude=[graph], ks=(20,))
    blend = build_closed_form(cfg, graph).fit()
    alone = GFCF(graph, rank=12).fit()
    assert ev.evaluate(blend, split.valid)["recall@20"] == pytest.approx(
        ev.evaluate(alone, split.valid)["recall@20"], abs=1e-12)


@pytest.mark.parametrize("keys,message", [
    ([], "model.members: a blend needs at least one member"),
    (["--set", "model.members=[{name: gfcf}]"], "model.weights: a blend needs one weight"),
    (["--set", "model.members=[{name: gfcf}]", "--set", "model.weights=[1, 2]"],
     "1 members need a list of 1 weights"),
    (["--set", "model.members=[{name: lightgcn}]", "--set", "model.weights=[1]"],
     "model.members\\[0\\].name: a blend member must be a closed-form model"),
    (["--set", "model.members=[{name: gfcf, order: 3}]", "--set", "model.weights=[1]"],
     "model.members\\[0\\].order: 'gfcf' does not read it"),
    (["--set", "model.members=[{name: gfcf, rnak: 3}]", "--set", "model.weights=[1]"],
     "model.members\\[0\\]: unknown key"),
    (["--set", "model.members=[{name: gfcf, grid: {rank: [2, 4]}}]", "--set", "model.weights=[1]"],
     "model.members\\[0\\].grid"),
])
def test_cli_refuses_bad_blends_naming_the_key(capsys, keys, message):
    import re
    assert main(["train", *TINY, "--set", "model.name=blend", *keys, "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err


def test_response_sampling_reaches_the_chebyshev_filter():
    from graphrec.closed_form import build_closed_form
    graph = RecGraph(synthetic(num_users=40, num_items=30, seed=0).interactions)
    model = build_closed_form(ModelConfig(name="chebyshev", order=4, ideal_weight=0.0,
                                          response_sampling="extrema"), graph)
    assert model.sampling == "extrema"
    with pytest.raises(ConfigError, match="model.response_sampling: 'gfcf' does not read it"):
        is_rating_model(ModelConfig(name="gfcf", response_sampling="extrema"))


def test_degree_exponents_reach_the_filters():
    from graphrec.closed_form import build_closed_form
    graph = RecGraph(synthetic(num_users=40, num_items=30, seed=0).interactions)
    for name in ("gfcf", "linear_filter", "ideal_filter", "chebyshev"):
        rank = {} if name == "linear_filter" else {"rank": 4}  # the linear filter has no SVD
        model = build_closed_form(ModelConfig(name=name, user_norm=0.3, item_norm=0.4, **rank), graph)
        assert (model.user_norm, model.item_norm) == (0.3, 0.4)
    with pytest.raises(ConfigError, match="model.user_norm: 'ials' does not read it"):
        is_rating_model(ModelConfig(name="ials", user_norm=0.3))


def test_members_belong_to_blends_only():
    with pytest.raises(ConfigError, match="model.members: only 'blend' reads it"):
        is_rating_model(ModelConfig(name="gfcf", members=[{"name": "ials"}]))
