"""Attention statistics: entropy, degree dependence, summaries, weight sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from attention_fakes import FakeAttentionModel, random_attention

from graphrec.data import Interactions, RecGraph, SocialEdges
from graphrec.explain import (
    AttentionGraph,
    attention_entropy,
    attention_summary,
    attention_vs_degree,
    bin_by_degree,
    check_attention,
    edge_attention,
    fixed_attention,
)


def graph(seed: int = 0, social: bool = False) -> RecGraph:
    rng = np.random.default_rng(seed)
    inter = Interactions.from_arrays(rng.integers(0, 12, 80), rng.integers(0, 10, 80),
                                     num_users=12, num_items=10)
    friends = SocialEdges.from_arrays(rng.integers(0, 12, 30), rng.integers(0, 12, 30),
                                      num_users=12) if social else None
    return RecGraph(inter, friends)


def uniform_attention(g: RecGraph, num_layers: int = 2, heads: int = 2) -> list[dict]:
    users, items = g.edges()
    iu = 1.0 / g.user_degree()[users]
    ui = 1.0 / g.item_degree()[items]
    layer = {"item_to_user": np.repeat(iu[:, None], heads, 1),
             "user_to_item": np.repeat(ui[:, None], heads, 1)}
    if g.social is not None:
        dst = g.social_edges()[1]
        indeg = np.bincount(dst, minlength=g.num_users)
        layer["user_to_user"] = np.repeat((1.0 / indeg[dst])[:, None], heads, 1)
    return [layer] * num_layers


@pytest.mark.parametrize("social", [False, True])
def test_entropy_of_uniform_attention_is_log_degree(social):
    g = graph(1, social)
    ent = attention_entropy(FakeAttentionModel(g, uniform_attention(g)))
    assert set(ent["relation"]) == ({"item_to_user", "user_to_item", "user_to_user"} if social
                                    else {"item_to_user", "user_to_item"})
    np.testing.assert_allclose(ent["entropy"], np.log(ent["degree"]), atol=1e-6)
    many = ent[ent["degree"] > 1]
    np.testing.assert_allclose(many["normalized_entropy"], 1.0, atol=1e-6)
    assert ent.loc[ent["degree"] == 1, "normalized_entropy"].isna().all()
    np.testing.assert_allclose(ent["max_weight"], 1.0 / ent["degree"], rtol=1e-6)


def test_entropy_of_one_hot_attention_is_zero():
    g = graph(2)
    layers = uniform_attention(g, 1, 1)
    users, _ = g.edges()
    first = np.r_[True, users[1:] != users[:-1]].astype(float)  # each user's first item
    layers = [{**layers[0], "item_to_user": first[:, None]}]
    ent = attention_entropy(FakeAttentionModel(g, layers), "item_to_user")
    np.testing.assert_allclose(ent["entropy"], 0.0, atol=1e-12)
    np.testing.assert_allclose(ent["max_weight"], 1.0)


def test_entropy_rows_cover_nodes_layers_heads():
    g = graph(3)
    ent = attention_entropy(FakeAttentionModel(g, random_attention(g, 3, 2)), "user_to_item")
    assert len(ent) == (g.item_degree() > 0).sum() * 3 * 2
    assert (ent["entropy"] <= np.log(ent["degree"]) + 1e-9).all()
    assert set(ent["node_type"]) == {"item"}


def test_edge_attention_relative_weights_and_degrees():
    g = graph(4)
    model = FakeAttentionModel(g, uniform_attention(g, 2, 2))
    edges = edge_attention(model)
    assert len(edges) == 2 * 2 * 2 * g.num_edges  # relations × layers × heads × edges
    np.testing.assert_allclose(edges["relative_weight"], 1.0, rtol=1e-6)
    iu = edges[(edges["relation"] == "item_to_user") & (edges["layer"] == 0) & (edges["head"] == 0)]
    users, items = g.edges()
    np.testing.assert_array_equal(iu["source"], g.item_map.to_raw(items))
    np.testing.assert_array_equal(iu["target"], g.user_map.to_raw(users))
    np.testing.assert_array_equal(iu["source_degree"], g.item_degree()[items])
    np.testing.assert_array_equal(iu["target_in_degree"], g.user_degree()[users])
    with pytest.raises(ValueError, match="user_to_user"):
        edge_attention(model, "user_to_user")


def test_lightgcn_weights_fall_with_neighbour_degree():
    g = graph(5)
    ag = AttentionGraph(g, fixed_attention(g, 1))
    frame = attention_vs_degree(ag)
    assert list(frame.columns) == ["layer", "head", "neighbor_degree", "target_in_degree",
                                   "weight", "relative_weight"]
    binned = bin_by_degree(frame, bins=4)
    assert binned["edges"].sum() == g.num_edges
    assert (np.diff(binned["mean"]) < 0).all()  # d^-1/2: popular neighbours get less


def test_summary_per_relation_layer_head():
    g = graph(6, social=True)
    summary = attention_summary(FakeAttentionModel(g, random_attention(g, 2, 3, social=True)))
    assert len(summary) == 3 * 2 * 3
    assert set(summary["relation"]) == {"item_to_user", "user_to_item", "user_to_user"}
    social = summary[summary["relation"] == "user_to_user"]
    assert (social["edges"] == g.num_social_edges).all()
    assert ((summary["mean_normalized_entropy"] > 0) & (summary["mean_normalized_entropy"] <= 1)).all()


def test_fixed_attention_is_renormalised_lightgcn():
    g = graph(7)
    users, items = g.edges()
    layers = fixed_attention(g, num_layers=3, heads=2)
    assert len(layers) == 3
    w = layers[0]["item_to_user"].double().numpy()
    raw = 1.0 / np.sqrt(g.user_degree()[users] * g.item_degree()[items])
    expected = raw / np.bincount(users, raw)[users]
    np.testing.assert_allclose(w[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(w[:, 1], expected, rtol=1e-6)
    np.testing.assert_allclose(np.bincount(items, layers[2]["user_to_item"][:, 0].double().numpy()),
                               (g.item_degree() > 0).astype(float), rtol=1e-6)


def test_check_attention_names_what_does_not_fit():
    g = graph(8)
    good = uniform_attention(g, 1, 1)[0]
    with pytest.raises(ValueError, match="'user_to_item': expected shape"):
        check_attention([{**good, "user_to_item": torch.ones(3, 1)}], g)
    with pytest.raises(ValueError, match="lacks"):
        check_attention([{"item_to_user": good["item_to_user"]}], g)
    with pytest.raises(ValueError, match="no social edges"):
        check_attention([{**good, "user_to_user": np.ones((2, 1))}], g)
    with pytest.raises(ValueError, match="heads"):
        check_attention([{**good, "user_to_item": np.ones((g.num_edges, 2))}], g)
    with pytest.raises(ValueError, match="no layers"):
        check_attention([], g)
    one = check_attention([{k: v[:, 0] for k, v in good.items()}], g)  # 1-D: one head
    assert one[0]["item_to_user"].shape == (g.num_edges, 1)
