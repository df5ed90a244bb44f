"""HeteroGraph: validation messages, adjacency helpers, RecGraph round trip, layers on top."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from graphrec.data import DataError, Interactions, RecGraph, SocialEdges
from graphrec.data.hetero import HeteroGraph
from graphrec.nn import GATConv, spmm

RATES = ("user", "rates", "item")
TAGGED = ("item", "tagged", "tag")


def small(**kw) -> HeteroGraph:
    relations = {RATES: ([0, 1, 2, 2], [1, 0, 1, 2]), TAGGED: ([0, 1, 2], [1, 1, 0])}
    relations.update(kw.pop("relations", {}))
    return HeteroGraph({"user": 3, "item": 3, "tag": 2}, relations, **kw)


def test_edge_forms_are_equivalent():
    src, dst = np.array([0, 1, 2, 2]), np.array([1, 0, 1, 2])
    forms = [(src, dst), [src.tolist(), dst.tolist()], np.stack([src, dst]),
             torch.tensor(np.stack([src, dst])), pd.DataFrame({"src": src, "dst": dst})]
    for form in forms:
        g = HeteroGraph({"user": 3, "item": 3}, {RATES: form})
        np.testing.assert_array_equal(g.edges(RATES)[0], src)
        np.testing.assert_array_equal(g.edges("rates")[1], dst)
        assert g.edges(RATES)[0].dtype == np.int64
    g = HeteroGraph({"user": 3, "item": 3},
                    {RATES: pd.DataFrame({"src": src, "dst": dst, "weight": [1, 2, 3, 4]})})
    assert g.relations[RATES].weight.tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("edges, message", [
    (([0, 1, 3], [0, 0, 0]), r"\('user', 'rates', 'item'\), src position 2: id 3 is out of range; "
                             r"node type 'user' has 3 nodes \(ids 0..2\)"),
    (([0, 1], [0, 7]), r"dst position 1: id 7 is out of range; node type 'item' has 3 nodes"),
    (([0, -2], [0, 1]), r"src position 1: id -2 is negative"),
    (([0, 1.5], [0, 1]), r"src position 1: 1.5 is not an integer node id"),
    (([0.0, 1.0], [0, 1]), r"src position 0: 0.0 is not an integer node id .*float64"),
    ((["a", 1], [0, 1]), r"src position 0: 'a' is not an integer node id"),
    (([True, False], [0, 1]), r"src: got booleans"),
    (([0, 1, 2], [0, 1]), r"3 sources but 2 destinations"),
    (([[0, 1]], [0]), r"1-D array"),
    (("nonsense",), r"edges must be \(src, dst\)"),
    (pd.DataFrame({"from": [0], "to": [0]}), r"lacks columns \['src', 'dst'\]"),
    (([0, 1], [0, 1], [1.0]), r"weight has shape \(1,\) for 2 edges"),
    (([0, 1], [0, 1], [1.0, np.nan]), r"weight position 1: nan is not finite"),
])
def test_bad_edges_name_relation_position_and_id(edges, message):
    with pytest.raises(DataError, match=message):
        HeteroGraph({"user": 3, "item": 3}, {RATES: edges})


def test_out_of_range_counts_every_bad_id():
    with pytest.raises(DataError, match="position 1: id 5 .*; 2 bad ids in all"):
        HeteroGraph({"user": 3, "item": 3}, {RATES: ([0, 5, 9], [0, 0, 0])})


def test_undeclared_node_types_and_bad_edge_types():
    with pytest.raises(DataError, match=r"\('user', 'likes', 'genre'\) destination: node type "
                                        r"'genre' is not declared; declared types are \['item', 'user'\]"):
        HeteroGraph({"user": 2, "item": 2}, {("user", "likes", "genre"): ([0], [0])})
    with pytest.raises(DataError, match="source: node type 'shop'"):
        HeteroGraph({"user": 2, "item": 2}, {("shop", "sells", "item"): ([0], [0])})
    with pytest.raises(DataError, match="tuples of strings"):
        HeteroGraph({"user": 2}, {("user", "follows"): ([0], [1])})
    with pytest.raises(DataError, match="count must be >= 0"):
        HeteroGraph({"user": -1})
    with pytest.raises(DataError, match="count must be an integer"):
        HeteroGraph({"user": 2.5})
    with pytest.raises(DataError, match="non-empty strings"):
        HeteroGraph({"": 2})


def test_features_are_checked_and_stored_as_float_tensors():
    g = small(features={"item": np.eye(3, dtype=np.int64), "tag": [0.5, 1.5]})
    assert g.features["item"].dtype == torch.float32 and g.features["item"].shape == (3, 3)
    assert g.features["tag"].shape == (2, 1)
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0, 0, 1]})
    assert small(features={"user": frame}).features["user"].shape == (3, 2)
    with pytest.raises(DataError, match="features of node type 'item' have 4 rows but the type has 3"):
        small(features={"item": np.ones((4, 2))})
    with pytest.raises(DataError, match="features: node type 'genre' is not declared"):
        small(features={"genre": np.ones((3, 2))})
    with pytest.raises(DataError, match="row 1, column 0: inf is not finite"):
        small(features={"item": [[0.0], [np.inf], [1.0]]})
    with pytest.raises(DataError, match="not numeric"):
        small(features={"item": np.array([["x"], ["y"], ["z"]])})
    with pytest.raises(DataError, match="must be 2-D"):
        small(features={"item": np.ones((3, 2, 2))})


def test_adjacency_keeps_edge_ids_and_weights():
    weight = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    g = small(relations={RATES: ([0, 1, 2, 2], [1, 0, 1, 2], weight)})
    adj = g.adjacency(RATES)
    assert (adj.num_src, adj.num_dst, adj.num_edges) == (3, 3, 4)
    assert g.adjacency("rates") is adj  # cached
    src, dst = adj.edge_index()
    ids = adj.edge_id.numpy()
    np.testing.assert_array_equal(src.numpy(), g.edges(RATES)[0][ids])
    np.testing.assert_array_equal(dst.numpy(), g.edges(RATES)[1][ids])
    np.testing.assert_allclose(adj.weight.numpy(), weight[ids])
    np.testing.assert_array_equal(g.degree(RATES), [1, 2, 1])
    np.testing.assert_array_equal(g.degree(RATES, side="src"), [1, 1, 2])
    # The weighted sum with spmm: item 1 receives 0.1 * x[0] + 0.3 * x[2].
    x = torch.arange(3.0).view(3, 1, 1)
    out = spmm(adj, adj.weight.view(-1, 1), x).view(-1)
    torch.testing.assert_close(out, torch.tensor([0.2 * 1, 0.1 * 0 + 0.3 * 2, 0.4 * 2]))


def test_gat_layer_runs_on_a_relation_and_masks_by_edge_id():
    g = small(features={"user": torch.randn(3, 4), "item": torch.randn(3, 4)})
    conv = GATConv((4, 4), 5, heads=2, add_self_loops=False)
    adj = g.adjacency(RATES)
    out, alpha = conv((g.features["user"], g.features["item"]), adj, return_attention=True)
    assert out.shape == (3, 10)
    assert alpha.shape == (4, 2)
    # Attention per destination sums to one; rows are in the relation's edge order.
    dst = torch.from_numpy(g.edges(RATES)[1])
    torch.testing.assert_close(torch.zeros(3, 2).index_add_(0, dst, alpha), torch.ones(3, 2))
    mask = torch.tensor([True, True, False, True])  # hide edge 2 (user 2 -> item 1)
    _, masked = conv((g.features["user"], g.features["item"]), adj, edge_mask=mask,
                     return_attention=True)
    assert masked[2].abs().sum() == 0
    torch.testing.assert_close(masked[3], torch.ones(2))


def test_from_recgraph_keeps_edge_ids_maps_and_adds_relations():
    inter = Interactions.from_arrays([0, 0, 1, 2, 2], [1, 2, 0, 2, 1], num_users=3, num_items=3)
    social = SocialEdges.from_arrays([0, 1], [1, 2], num_users=3)
    rg = RecGraph(inter, social)
    genre = ("item", "in_genre", "genre")
    g = HeteroGraph.from_recgraph(rg, {genre: ([0, 1, 2], [0, 0, 1])}, num_nodes={"genre": 2},
                                  features={"genre": np.eye(2)})
    assert g.num_nodes == {"user": 3, "item": 3, "genre": 2}
    users, items = rg.edges()
    np.testing.assert_array_equal(g.edges(("user", "interacts", "item"))[0], users)
    np.testing.assert_array_equal(g.edges(("item", "rev_interacts", "user"))[0], items)
    np.testing.assert_array_equal(np.stack(g.edges("follows")), np.stack(rg.social_edges()))
    assert g.id_maps["user"] == rg.user_map and g.id_maps["item"] == rg.item_map
    # Same edge ids as the RecGraph's own adjacency: an interaction mask means the same.
    tg = rg.to_torch()
    mine = g.adjacency(("item", "rev_interacts", "user"))
    torch.testing.assert_close(mine.edge_id, tg.item_to_user.edge_id)
    torch.testing.assert_close(mine.col, tg.item_to_user.col)
    assert g.num_edges(genre) == 3
    no_rev = HeteroGraph.from_recgraph(rg, reverse=False)
    assert ("item", "rev_interacts", "user") not in no_rev.relations
    with pytest.raises(DataError, match="already comes from the RecGraph"):
        HeteroGraph.from_recgraph(rg, {("user", "interacts", "item"): ([0], [0])})
    with pytest.raises(DataError, match="'genre' is not declared"):
        HeteroGraph.from_recgraph(rg, {genre: ([0], [0])})


def test_copies_with_relations_features_and_reverse():
    g = small()
    rev = g.with_reverse(TAGGED)
    np.testing.assert_array_equal(rev.edges(("tag", "rev_tagged", "item"))[0], g.edges(TAGGED)[1])
    assert TAGGED in rev.relations and ("tag", "rev_tagged", "item") not in g.relations
    g2 = g.with_relation(("user", "follows", "user"), ([0, 1], [1, 2]))
    assert g2.num_edges("follows") == 2 and "follows" not in [r[1] for r in g.edge_types]
    with pytest.raises(DataError, match="id 3 is out of range"):
        g.with_relation(("user", "follows", "user"), ([0, 3], [1, 2]))
    g3 = g.with_features("tag", np.ones((2, 3)))
    assert g3.features["tag"].shape == (2, 3) and "tag" not in g.features
    with pytest.raises(KeyError, match="no relation named 'buys'"):
        g.adjacency("buys")
    both = g.with_relation(("item", "rates", "tag"), ([0], [0]))
    with pytest.raises(KeyError, match="several relations named 'rates'"):
        both.edges("rates")


def test_summary_repr_and_pyg():
    g = small(features={"item": np.ones((3, 2))})
    s = g.summary()
    assert s["edges"].tolist() == [4, 3]
    assert s["relation"].tolist() == ["rates", "tagged"]
    assert "item=3 (features 2)" in repr(g)
    pyg = pytest.importorskip("torch_geometric")
    data = g.to_pyg()
    assert isinstance(data, pyg.data.HeteroData)
    assert data["item"].x.shape == (3, 2)
    assert data[RATES].edge_index.shape == (2, 4)
