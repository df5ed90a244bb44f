"""Converters to PyG, DGL and networkx keep every edge and its stable id."""

from __future__ import annotations

import builtins
import types

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrec.data import ColumnMap, Interactions, RecGraph, load_interactions
from graphrec.data.convert import import_dgl, to_dgl, to_networkx, to_pyg

INTERACTS = ("user", "interacts", "item")
REV = ("item", "rev_interacts", "user")
FOLLOWS = ("user", "follows", "user")


def make_social(src, dst, num_users: int, weight=None):
    """SocialEdges when that module exists, else a stand-in with the same attributes."""
    try:
        from graphrec.data.social import SocialEdges
    except ImportError:
        return types.SimpleNamespace(src=np.asarray(src), dst=np.asarray(dst),
                                     weight=weight, num_users=num_users)
    return SocialEdges(src, dst, weight, num_users)


def small_graph(social: bool) -> RecGraph:
    """String ids, an isolated user ("zoe") and item ("x9"), repeated and weighted rows."""
    df = pd.DataFrame({
        "user": ["bob", "amy", "bob", "cat", "amy", "bob", "zoe"],
        "item": ["x1", "x2", "x2", "x1", "x2", "x3", "x9"],
        "w": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
    })
    full = load_interactions(df, ColumnMap(weight="w"), duplicates="sum")
    # Training rows without zoe's: she and item x9 stay in the maps as isolated nodes.
    inter = full.subset(full.user != full.user_map.to_index("zoe"))
    soc = None
    if social:
        # amy -> bob, bob -> amy, cat -> amy, zoe -> cat (indices in the sorted user map)
        idx = {u: k for k, u in enumerate(full.user_map.raw)}
        pairs = [("amy", "bob"), ("bob", "amy"), ("cat", "amy"), ("zoe", "cat")]
        soc = make_social([idx[a] for a, _ in pairs], [idx[b] for _, b in pairs],
                          len(full.user_map), weight=np.array([0.5, 1.5, 2.5, 3.5], np.float32))
    return RecGraph(inter, social=soc, weighted=True)


@st.composite
def rec_graphs(draw) -> RecGraph:
    nu, ni = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    pairs = draw(st.lists(st.tuples(st.integers(0, nu - 1), st.integers(0, ni - 1)), max_size=25))
    inter = Interactions.from_arrays([p[0] for p in pairs], [p[1] for p in pairs],
                                     num_users=nu, num_items=ni,
                                     weight=np.arange(len(pairs), dtype=np.float32) + 1)
    social = None
    if draw(st.booleans()):
        links = draw(st.lists(st.tuples(st.integers(0, nu - 1), st.integers(0, nu - 1)),
                              unique=True, max_size=12))
        links = [(a, b) for a, b in links if a != b]
        social = make_social([a for a, _ in links], [b for _, b in links], nu)
    return RecGraph(inter, social=social, weighted=True)


# ---------------------------------------------------------------------- PyG
@settings(max_examples=40, deadline=None)
@given(rec_graphs(), st.randoms(use_true_random=False))
def test_pyg_keeps_edges_ids_and_weights(g: RecGraph, rnd) -> None:
    data = to_pyg(g, reverse=True)
    assert data["user"].num_nodes == g.num_users
    assert data["item"].num_nodes == g.num_items
    u, i = g.edges()
    fwd, rev = data[INTERACTS], data[REV]
    np.testing.assert_array_equal(fwd.edge_index.numpy(), np.stack([u, i]))
    np.testing.assert_array_equal(rev.edge_index.numpy(), np.stack([i, u]))
    for store in (fwd, rev):
        np.testing.assert_array_equal(store.edge_id.numpy(), np.arange(g.num_edges))
        np.testing.assert_array_equal(store.edge_weight.numpy(), g.ui.data)
    # A mask made on the PyG edges selects the same pairs in the RecGraph's CSR.
    mask = np.array([rnd.random() < 0.5 for _ in range(g.num_edges)], dtype=bool)
    picked = fwd.edge_index[:, torch.from_numpy(mask)].T.tolist()
    rows = np.repeat(np.arange(g.num_users), np.diff(g.ui.indptr))
    assert picked == np.stack([rows[mask], g.ui.indices[mask]]).T.tolist()
    if g.social is None:
        assert FOLLOWS not in data.edge_types
    else:
        s, d = g.social_edges()
        np.testing.assert_array_equal(data[FOLLOWS].edge_index.numpy(), np.stack([s, d]))
        np.testing.assert_array_equal(data[FOLLOWS].edge_weight.numpy(), g.social.data)
        np.testing.assert_array_equal(data[FOLLOWS].edge_id.numpy(), np.arange(len(s)))
    data.validate()


def test_pyg_method_on_graph() -> None:
    g = small_graph(social=True)
    data = g.to_pyg()
    assert set(data.edge_types) == {INTERACTS, FOLLOWS}
    assert set(g.to_pyg(reverse=True).edge_types) == {INTERACTS, REV, FOLLOWS}
    assert data[FOLLOWS].edge_index.size(1) == 4


@pytest.mark.parametrize("social", [False, True])
def test_pyg_to_undirected_adds_the_reverse_relation_once(social: bool) -> None:
    from torch_geometric.transforms import ToUndirected

    g = small_graph(social=social)
    data = ToUndirected()(g.to_pyg())
    expected = {INTERACTS, REV} | ({FOLLOWS} if social else set())
    assert set(data.edge_types) == expected  # no ("user", "rev_rev_interacts", "item")
    direct = g.to_pyg(reverse=True)
    for key in ("edge_index", "edge_id", "edge_weight"):
        torch.testing.assert_close(data[REV][key], direct[REV][key])
    data.validate()


# ---------------------------------------------------------------------- networkx
def interaction_edges(graph: nx.Graph) -> set[tuple]:
    return {(a[1], b[1], d["edge_id"], d["weight"]) for a, b, d in graph.edges(data=True)
            if d["relation"] == "interacts" and a[0] == "user"}


@settings(max_examples=40, deadline=None)
@given(rec_graphs())
def test_networkx_round_trips_edges(g: RecGraph) -> None:
    nxg = to_networkx(g)
    u, i = g.edges()
    expected = set(zip(u.tolist(), i.tolist(), range(g.num_edges), g.ui.data.tolist()))
    assert nxg.number_of_nodes() == g.num_nodes
    if g.social is None:
        assert type(nxg) is nx.Graph
        assert nxg.number_of_edges() == g.num_edges
        # Undirected edges may come back with the item first; normalise.
        got = {(a[1], b[1], d["edge_id"], d["weight"]) if a[0] == "user"
               else (b[1], a[1], d["edge_id"], d["weight"]) for a, b, d in nxg.edges(data=True)}
        assert got == expected
    else:
        assert type(nxg) is nx.DiGraph
        assert interaction_edges(nxg) == expected
        backwards = {(b[1], a[1], d["edge_id"], d["weight"]) for a, b, d in nxg.edges(data=True)
                     if d["relation"] == "interacts" and a[0] == "item"}
        assert backwards == expected
        s, d = g.social_edges()
        follows = {(a[1], b[1], attrs["edge_id"]) for a, b, attrs in nxg.edges(data=True)
                   if attrs["relation"] == "follows"}
        assert follows == set(zip(s.tolist(), d.tolist(), range(len(s))))
        assert nxg.number_of_edges() == 2 * g.num_edges + len(s)


def test_networkx_nodes_follow_the_bipartite_convention() -> None:
    g = small_graph(social=False)
    nxg = g.to_networkx()
    users = {n for n, b in nxg.nodes(data="bipartite") if b == 0}
    items = {n for n, b in nxg.nodes(data="bipartite") if b == 1}
    assert users == {("user", k) for k in range(g.num_users)}
    assert items == {("item", k) for k in range(g.num_items)}
    assert nx.bipartite.is_bipartite_node_set(nxg, users)
    assert [nxg.nodes[("user", k)]["raw_id"] for k in range(g.num_users)] == list(g.user_map.raw)
    assert [nxg.nodes[("item", k)]["raw_id"] for k in range(g.num_items)] == list(g.item_map.raw)
    zoe = ("user", list(g.user_map.raw).index("zoe"))
    assert nxg.degree(zoe) == 0  # isolated users are still nodes
    assert nxg.graph["num_users"] == g.num_users


def test_networkx_with_social_is_directed() -> None:
    g = small_graph(social=True)
    nxg = to_networkx(g)
    raw = list(g.user_map.raw)
    amy, bob, cat = (("user", raw.index(n)) for n in ("amy", "bob", "cat"))
    assert nxg.has_edge(cat, amy) and not nxg.has_edge(amy, cat)
    assert nxg.edges[cat, amy]["relation"] == "follows"
    assert nxg.edges[amy, bob]["weight"] == 0.5


# ---------------------------------------------------------------------- DGL
def dgl_or_skip():
    """The dgl module, or skip the test with the reason DGL cannot be used here."""
    try:
        return import_dgl()
    except ImportError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("social", [False, True])
def test_dgl_round_trips_edges(social: bool) -> None:
    dgl_or_skip()
    g = small_graph(social)
    dg = to_dgl(g)
    assert dg.num_nodes("user") == g.num_users and dg.num_nodes("item") == g.num_items
    u, i = g.edges()
    src, dst = dg.edges(etype=INTERACTS, order="eid")
    np.testing.assert_array_equal(np.stack([src.numpy(), dst.numpy()]), np.stack([u, i]))
    src, dst = dg.edges(etype=REV, order="eid")
    np.testing.assert_array_equal(np.stack([src.numpy(), dst.numpy()]), np.stack([i, u]))
    for rel in (INTERACTS, REV):
        np.testing.assert_array_equal(dg.edges[rel].data["edge_id"].numpy(), np.arange(g.num_edges))
        np.testing.assert_array_equal(dg.edges[rel].data["weight"].numpy(), g.ui.data)
    if social:
        s, d = g.social_edges()
        src, dst = dg.edges(etype=FOLLOWS, order="eid")
        np.testing.assert_array_equal(np.stack([src.numpy(), dst.numpy()]), np.stack([s, d]))
    else:
        assert FOLLOWS not in dg.canonical_etypes


@pytest.mark.parametrize("failure", [ImportError("No module named 'dgl'"),
                                     OSError("libgraphbolt_pytorch_2.13.0.so: cannot open"),
                                     RuntimeError("undefined symbol")])
def test_dgl_import_failure_explains_what_to_install(failure, monkeypatch) -> None:
    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "dgl" or name.startswith("dgl."):
            raise failure
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(ImportError) as err:
        to_dgl(small_graph(social=False))
    message = str(err.value)
    assert str(failure) in message
    assert torch.__version__ in message
    assert "torch <= 2.2.1" in message
    assert 'pip install "graphrec[dgl]"' in message and "torch==2.2.1 dgl==2.1.0" in message
    assert "to_pyg()" in message and "to_networkx()" in message
