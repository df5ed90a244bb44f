"""Every plot returns a Figure with the expected artists and never calls plt.show()."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from attention_fakes import FakeAttentionModel, random_attention
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from graphrec.data import Interactions, RecGraph
from graphrec.datasets import synthetic
from graphrec.explain import explain_recommendation, neighbor_attention, plots
from graphrec.models import MF
from graphrec.training import TrainConfig, Trainer


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    """Fail on plt.show(); close every figure a test made."""
    def refuse(*args, **kwargs):
        raise AssertionError("plt.show() was called")

    plt.switch_backend("Agg")
    monkeypatch.setattr(plt, "show", refuse)
    monkeypatch.setattr(Figure, "show", refuse)
    yield
    plt.close("all")


@pytest.fixture
def model():
    rng = np.random.default_rng(0)
    g = RecGraph(Interactions.from_arrays(rng.integers(0, 15, 120), rng.integers(0, 25, 120),
                                          num_users=15, num_items=25))
    return FakeAttentionModel(g, random_attention(g, num_layers=2, heads=2, seed=1))


def test_degree_histogram_has_one_line_per_side():
    data = synthetic(num_users=80, num_items=60, num_communities=3, avg_degree=8, seed=0)
    for source in (data, data.interactions, RecGraph(data.interactions)):
        fig = plots.plot_degree_histogram(source)
        assert isinstance(fig, Figure)
        (ax,) = fig.axes
        assert len(ax.get_lines()) == 2
        assert ax.get_xscale() == ax.get_yscale() == "log"
    with pytest.raises(TypeError, match="RecGraph"):
        plots.plot_degree_histogram([1, 2, 3])


def test_long_tail_curve_ends_at_one():
    data = synthetic(num_users=80, num_items=60, num_communities=3, avg_degree=8, seed=0)
    fig = plots.plot_long_tail(data, head_share=0.1)
    (ax,) = fig.axes
    curve, diagonal, marker = ax.get_lines()
    assert curve.get_ydata()[-1] == pytest.approx(1.0)
    assert np.all(np.diff(curve.get_ydata()) >= 0)
    assert "top 10% of items" in marker.get_label()
    with pytest.raises(ValueError, match="head_share"):
        plots.plot_long_tail(data, head_share=1.5)


def test_learning_curves_from_every_log_form(tmp_path):
    data = synthetic(num_users=60, num_items=40, num_communities=3, avg_degree=6, seed=0)
    g = RecGraph(data.interactions)
    fit = Trainer(MF(g, dim=8), data.interactions,
                  TrainConfig(epochs=3, progress=False, run_dir=str(tmp_path / "run"))).fit()
    history = [{"epoch": 1, "loss": 0.7, "valid_recall@20": 0.1},
               {"epoch": 2, "loss": 0.6, "valid_recall@20": 0.2}]
    (tmp_path / "h.json").write_text(json.dumps(history))
    logs = {"run dir": tmp_path / "run", "csv": tmp_path / "run" / "metrics.csv",
            "json": tmp_path / "h.json", "result": fit, "history": history,
            "frame": pd.DataFrame(history)}
    fig = plots.plot_learning_curves(logs, metrics=("loss", "valid_recall@20"))
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert len([line for line in ax.get_lines() if line.get_marker() == "o"]) == len(logs)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == list(logs)
    assert [ax.get_ylabel() for ax in fig.axes] == ["training loss", "validation Recall@20"]
    # Validation panels star each run's best epoch; the loss panel has no stars.
    stars = [line for line in fig.axes[1].get_lines() if line.get_marker() == "*"]
    assert len(stars) == len(logs)
    assert not [line for line in fig.axes[0].get_lines() if line.get_marker() == "*"]
    star = next(line for line in stars if line.get_label().startswith("history:"))
    assert list(star.get_xdata()) == [2] and list(star.get_ydata()) == [0.2]
    assert "best epoch 2" in star.get_label()
    # The trainer's own run: one point per epoch.
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == 3

    single = plots.plot_learning_curves(fit.history, metrics=["epoch_seconds"])
    assert len(single.axes) == 1 and len(single.axes[0].get_lines()) == 1
    errors = plots.plot_learning_curves([{"epoch": 1, "valid_rmse": 0.9}, {"epoch": 2, "valid_rmse": 0.8},
                                         {"epoch": 3, "valid_rmse": 0.85}], metrics=["valid_rmse"])
    (star,) = [line for line in errors.axes[0].get_lines() if line.get_marker() == "*"]
    assert list(star.get_xdata()) == [2]  # lower is better for errors
    with pytest.raises(ValueError, match="no run has the metric 'auc'"):
        plots.plot_learning_curves(history, metrics=["auc"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither metrics.csv nor metrics.json"):
        plots.plot_learning_curves(tmp_path / "empty")


def test_heatmap_rows_are_items_columns_layer_heads(model):
    user = 0
    degree = model.graph.user_degree()[user]
    fig = plots.plot_attention_heatmap(model, user, max_items=4)
    image = fig.axes[0].get_images()[0]
    assert image.get_array().shape == (min(degree, 4), 2 * 2)
    assert len(fig.axes) == 2  # heatmap and colour bar
    # Cells are weights relative to uniform (weight × degree) on a log scale centred on 1.
    assert isinstance(image.norm, LogNorm)
    assert image.norm.vmin == pytest.approx(1 / image.norm.vmax)
    nb = neighbor_attention(model, user)
    nb = nb[(nb["relation"] == "item_to_user") & (nb["layer"] == 0) & (nb["head"] == 0)]
    top = nb["weight"].max() * degree
    everything = plots.plot_attention_heatmap(model, user, max_items=50).axes[0].get_images()[0]
    assert np.asarray(everything.get_array())[:, 0].max() == pytest.approx(
        min(max(top, image.norm.vmin), image.norm.vmax), rel=1e-6)
    names = {i: f"film {i}" for i in range(25)}
    fig = plots.plot_attention_heatmap(model, user, item_names=names, max_items=50)
    ax = fig.axes[0]
    assert ax.get_images()[0].get_array().shape == (degree, 4)
    assert all(t.get_text().startswith("film ") for t in ax.get_yticklabels())
    with pytest.raises(KeyError, match="unknown user id 99"):
        plots.plot_attention_heatmap(model, 99)


def test_top_contributors_draws_one_bar_per_row(model):
    df = explain_recommendation(model, 0, 3, top_k=4)
    fig = plots.plot_top_contributors(df, top_k=3, side="user", hops=2, head=1)
    (ax,) = fig.axes
    matching = df[(df["side"] == "user") & (df["hops"] == 2) & (df["head"] == 1)]
    assert len(matching) == 4
    assert len(ax.patches) == 3
    fig = plots.plot_top_contributors(df, top_k=50)
    assert len(fig.axes[0].patches) == len(df)
    nb = neighbor_attention(model, 0)
    fig = plots.plot_top_contributors(nb, top_k=2, layer=0)
    assert len(fig.axes[0].patches) == 2
    with pytest.raises(ValueError, match="cannot filter on 'colour'"):
        plots.plot_top_contributors(df, colour="red")
    with pytest.raises(ValueError, match="no rows match"):
        plots.plot_top_contributors(df, hops=9)


def test_attention_vs_degree_and_entropy_plots(model):
    fig = plots.plot_attention_vs_degree(model, bins=3)
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 2 * 2 + 1  # (layer, head) lines and the uniform level
    fig = plots.plot_attention_entropy(model, relation="user_to_item")
    (ax,) = fig.axes
    assert len(ax.patches) == 2 * 2  # one step histogram per (layer, head)


def test_ego_network_with_and_without_attention(model):
    fig = plots.plot_ego_network(model, 0, max_items=3, max_users=2)
    (ax,) = fig.axes
    assert isinstance(fig, Figure)
    texts = [t.get_text() for t in ax.texts]
    assert "user 0" in texts
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "this user" in legend and "item → user attention (width)" in legend
    # Labels are drawn above the edges and nodes, on an opaque-enough box.
    assert all(t.get_zorder() > 2 and t.get_bbox_patch() is not None for t in ax.texts)
    assert sum(t.startswith("item ") for t in texts) == min(3, model.graph.user_degree()[0])
    fig = plots.plot_ego_network(model.graph, 0, max_items=2, max_users=1)
    assert "no attention" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="unknown user id -4"):
        plots.plot_ego_network(model.graph, -4)
