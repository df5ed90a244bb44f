"""Paths and neighbours: hand-computed weights, exact top-k, raw ids, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from attention_fakes import FakeAttentionModel, random_attention

from graphrec.data import Interactions, RecGraph, SocialEdges
from graphrec.explain import (
    AttentionGraph,
    UnknownIdError,
    explain_recommendation,
    fixed_attention,
    item_labels,
    neighbor_attention,
)
from graphrec.models import MF, LightGCN


def rows(df: pd.DataFrame, **where) -> pd.DataFrame:
    for k, v in where.items():
        df = df[df[k] == v]
    return df


def test_one_hop_paths_are_the_neighbours_in_layer_0(tiny_model):
    df = explain_recommendation(tiny_model, "a", 30, top_k=5)
    one = rows(df, side="user", hops=1)
    assert one["source"].tolist() == [10, 20]
    assert one["weight"].to_numpy() == pytest.approx([0.8, 0.2])
    assert one["rank"].tolist() == [1, 2]
    item_one = rows(df, side="item", hops=1)
    assert item_one["source"].tolist() == ["b"]
    assert item_one["weight"].to_numpy() == pytest.approx([1.0])


def test_two_hop_weights_are_products_layer_0_then_layer_1(tiny_model):
    # Into a: x0 -> x1 in layer 0, x1 -> a in layer 1 (weight .5 for both items).
    # a->10->a = 1 * .5, a->20->a = .6 * .5, b->20->a = .4 * .5.
    df = explain_recommendation(tiny_model, "a", 30, top_k=5, allow_revisits=True)
    two = rows(df, side="user", hops=2)
    assert [n for n in two["nodes"]] == [
        (("user", "a"), ("item", 10), ("user", "a")),
        (("user", "a"), ("item", 20), ("user", "a")),
        (("user", "b"), ("item", 20), ("user", "a")),
    ]
    assert two["weight"].to_numpy() == pytest.approx([0.5, 0.3, 0.2])
    # Summed over every 2-hop path from a source: a gets .5 + .3, b gets .2.
    assert two["source_total"].to_numpy() == pytest.approx([0.8, 0.8, 0.2])
    # Into item 30 (layer-1 weight from b is 1): 30->b->30 = .7, 20->b->30 = .3.
    item_two = rows(df, side="item", hops=2)
    assert item_two["source"].tolist() == [30, 20]
    assert item_two["weight"].to_numpy() == pytest.approx([0.7, 0.3])


def test_without_revisits_only_simple_paths_remain(tiny_model):
    df = explain_recommendation(tiny_model, "a", 30, top_k=5)
    two = rows(df, side="user", hops=2)
    assert two["path"].tolist() == ["user b → item 20 → user a"]
    assert two["weight"].to_numpy() == pytest.approx([0.2])
    assert rows(df, side="item", hops=2)["path"].tolist() == ["item 20 → user b → item 30"]


def test_item_names_label_paths_and_sources(tiny_model):
    names = {10: "Alien", 20: "Brazil", 30: "Casablanca"}
    df = explain_recommendation(tiny_model, "a", 30, item_names=pd.Series(names))
    one = rows(df, side="user", hops=1)
    assert one["source_name"].tolist() == ["Alien", "Brazil"]
    assert one["path"].iloc[0] == "Alien [item 10] → user a"
    assert rows(df, side="item", hops=2)["path"].iloc[0] == (
        "Brazil [item 20] → user b → Casablanca [item 30]")
    assert rows(df, side="item", hops=1)["source_name"].isna().all()  # users have no name


def test_unknown_ids_raise_an_error_naming_them(tiny_model):
    with pytest.raises(KeyError, match="unknown user id 'zed'"):
        explain_recommendation(tiny_model, "zed", 30)
    with pytest.raises(ValueError, match="unknown item id 99"):
        explain_recommendation(tiny_model, "a", 99)
    with pytest.raises(UnknownIdError, match="unknown item id 99"):
        neighbor_attention(tiny_model, 99, kind="item")
    with pytest.raises(ValueError, match="kind"):
        neighbor_attention(tiny_model, "a", kind="genre")


def test_neighbor_attention_per_layer_and_head(tiny_model):
    nb = neighbor_attention(tiny_model, "b", item_names={20: "Brazil"})
    assert len(nb) == 4  # two items, two layers
    layer0 = rows(nb, layer=0)
    assert layer0["neighbor"].tolist() == [30, 20]  # heaviest first
    assert layer0["weight"].to_numpy() == pytest.approx([0.7, 0.3])
    assert layer0["neighbor_name"].isna().tolist() == [True, False]
    assert layer0["neighbor_name"].iloc[1] == "Brazil"
    assert set(nb["relation"]) == {"item_to_user"}
    assert nb["uniform"].to_numpy() == pytest.approx([0.5] * 4)
    assert rows(nb, layer=1)["weight"].to_numpy() == pytest.approx([0.9, 0.1])
    item = neighbor_attention(tiny_model, 20, kind="item", top_k=1)
    assert item["neighbor"].tolist() == ["a", "b"]  # top of layer 0 (.6), then layer 1 (.75)
    assert set(item["relation"]) == {"user_to_item"}


def _random_graph(seed: int, social: bool = False) -> RecGraph:
    rng = np.random.default_rng(seed)
    inter = Interactions.from_arrays(rng.integers(0, 9, 45), rng.integers(0, 7, 45),
                                     num_users=9, num_items=7)
    friends = None
    if social:
        friends = SocialEdges.from_arrays(rng.integers(0, 9, 20), rng.integers(0, 9, 20),
                                          num_users=9)
    return RecGraph(inter, friends)


def _all_paths(ag: AttentionGraph, target: int, hops: int, head: int, revisits: bool):
    """Every path into ``target`` by brute force: (weight, path in message order)."""
    dense = [ag.matrix(layer, head).toarray() for layer in range(ag.num_layers)]
    out = []
    for path in itertools.product(range(ag.num_nodes), repeat=hops):
        full = (*path, target)
        if not revisits and len(set(full)) < len(full):
            continue
        w = np.prod([dense[j][full[j + 1], full[j]] for j in range(hops)])
        if w > 0:
            out.append((w, full))
    return sorted(out, key=lambda t: -t[0])


@pytest.mark.parametrize("revisits", [True, False])
@pytest.mark.parametrize("social", [False, True])
def test_top_paths_match_brute_force(revisits, social):
    g = _random_graph(3, social)
    ag = AttentionGraph(g, random_attention(g, num_layers=3, heads=2, seed=1, social=social))
    for target in (0, 4, g.num_users + 2):
        for hops in (1, 2, 3):
            for head in (0, 1):
                found = ag.top_paths(target, hops, head, top_k=6, allow_revisits=revisits)
                truth = _all_paths(ag, target, hops, head, revisits)[:6]
                assert [w for w, _ in found] == pytest.approx([w for w, _ in truth])
                for w, path in found:
                    assert path[-1] == target and len(path) == hops + 1
                    weight = np.prod([ag.matrix(j, head)[path[j + 1], path[j]]
                                      for j in range(hops)])
                    assert w == pytest.approx(weight)


def test_contributions_sum_all_paths():
    g = _random_graph(5)
    ag = AttentionGraph(g, random_attention(g, num_layers=3, heads=1, seed=2))
    target = 1
    c = ag.contributions(target, 3, 0)
    totals = np.zeros(ag.num_nodes)
    for w, path in _all_paths(ag, target, 3, 0, revisits=True):
        totals[path[0]] += w
    np.testing.assert_allclose(c, totals, rtol=1e-10, atol=1e-12)


def test_heads_are_explained_separately(tiny_graph):
    layers = random_attention(tiny_graph, num_layers=2, heads=3, seed=4)
    df = explain_recommendation(FakeAttentionModel(tiny_graph, layers), "b", 10)
    assert sorted(df["head"].unique()) == [0, 1, 2]
    for head in range(3):
        one = rows(df, side="user", hops=1, head=head)
        # b's items in edge-id order are 20 (edge 2) and 30 (edge 3).
        expected = dict(zip([20, 30], layers[0]["item_to_user"][[2, 3], head]))
        assert one["weight"].to_numpy() == pytest.approx([expected[s] for s in one["source"]])


def test_lightgcn_is_explained_with_its_fixed_weights(tiny_graph):
    model = LightGCN(tiny_graph, dim=4, num_layers=2)
    df = explain_recommendation(model, "a", 30)
    one = rows(df, side="user", hops=1)
    # a's items: 10 (degree 1) and 20 (degree 2); weights ∝ d^-1/2.
    w10, w20 = 1.0, 2 ** -0.5
    assert one["source"].tolist() == [10, 20]
    assert one["weight"].to_numpy() == pytest.approx([w10 / (w10 + w20), w20 / (w10 + w20)])
    same = explain_recommendation(AttentionGraph(tiny_graph, fixed_attention(tiny_graph, 2)), "a", 30)
    pd.testing.assert_frame_equal(df, same)


def test_models_without_propagation_are_refused(tiny_graph):
    with pytest.raises(TypeError, match="MF has no attention"):
        explain_recommendation(MF(tiny_graph, dim=4), "a", 30)


def test_item_labels_reindex_metadata_by_raw_id():
    class Data:
        items = pd.DataFrame({"title": ["x", "y", "z"]})
        num_items = 3
        item_map = RecGraph(Interactions.from_arrays([0, 0, 0], [0, 1, 2])).item_map

    labels = item_labels(Data())
    assert labels.to_dict() == {0: "x", 1: "y", 2: "z"}
    with pytest.raises(ValueError, match="no column 'genre'"):
        item_labels(Data(), "genre")


def test_gat_recommender_starts_with_lightgcn_weights(tiny_graph):
    from graphrec.models.gat import GATRecommender

    if not hasattr(GATRecommender, "attention"):
        pytest.skip("GATRecommender.attention() is not available in this version")
    gat = GATRecommender(tiny_graph, dim=4, num_layers=2, heads=2)
    learned = AttentionGraph.from_model(gat)
    fixed = AttentionGraph(tiny_graph, fixed_attention(tiny_graph, 2, heads=2))
    for a, b in zip(learned.layers, fixed.layers):
        for relation in ("item_to_user", "user_to_item"):
            np.testing.assert_allclose(a[relation], b[relation], rtol=1e-5)
