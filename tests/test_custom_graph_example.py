"""examples/custom_graph.py: runs end to end on a small synthetic dataset."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_graph.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("custom_graph_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_main_trains_both_models_for_one_epoch(example, capsys):
    threads = torch.get_num_threads()
    try:
        results = example.main(["--dataset", "synthetic", "--users", "120", "--items", "90",
                                "--epochs", "1", "--dim", "16", "--cooc-k", "5", "--quiet",
                                "--threads", str(threads)])
    finally:
        torch.set_num_threads(threads)
    assert set(results) == {"LightGCN", "GenreGraph (custom)"}
    for metrics in results.values():
        assert 0.0 <= metrics["recall@20"] <= 1.0
        assert 0.0 <= metrics["ndcg@20"] <= 1.0
        assert metrics["best_epoch"] == 1
    out = capsys.readouterr().out
    assert "HeteroGraph(" in out and "('item', 'co_occurs', 'item')" in out
    assert "recall@20" in out and "GenreGraph (custom)" in out


def test_custom_pieces_work_with_masks_and_scoring(example):
    from graphrec.data import RecGraph

    data, genres = example.load_dataset("synthetic", None, 60, 40, 0)
    assert genres.shape == (40, data.items["community"].nunique())
    graph = RecGraph(data.interactions)
    hetero = example.build_graph(graph, genres, top_k=3)
    src, dst = hetero.edges(example.CO_OCCURS)
    assert (src != dst).all()
    assert np.bincount(dst, minlength=graph.num_items).max() <= 3
    model = example.GenreGraphRecommender(graph, hetero, dim=8, num_layers=2, heads=2)
    mask = torch.rand(graph.num_edges) > 0.3
    users, items = model.propagate(mask)
    assert users.shape == (graph.num_users, 8) and items.shape == (graph.num_items, 9)
    assert torch.isfinite(users).all() and torch.isfinite(items).all()
    scorer = model.scorer
    u, v = users[:3], items[:5]
    torch.testing.assert_close(scorer.score_all(u, v)[1, 2], scorer(u[1:2], v[2:3])[0])
    recs = model.recommend([0, 1], k=4)
    assert len(recs) == 8
