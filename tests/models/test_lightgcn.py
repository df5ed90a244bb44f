import numpy as np
import pytest
import torch
from torch_geometric.nn import LightGCN as PyGLightGCN

from graphrec.data import Interactions, RecGraph
from graphrec.models import MF, LightGCN
from graphrec.models.masked_graph import MaskedGraph
from graphrec.models.propagation import lightgcn_adjacency, normalized_adjacency


def random_graph(seed=0, users=30, items=20, edges=120):
    rng = np.random.default_rng(seed)
    inter = Interactions.from_arrays(rng.integers(0, users, edges), rng.integers(0, items, edges),
                                     num_users=users + 2, num_items=items + 3)  # isolated nodes too
    return RecGraph(inter)


def dense_lightgcn(graph, emb, layers, keep=None):
    u, i = graph.edges()
    if keep is not None:
        u, i = u[keep], i[keep]
    n = graph.num_nodes
    a = np.zeros((n, n))
    a[u, i + graph.num_users] = 1
    a[i + graph.num_users, u] = 1
    d = a.sum(1)
    inv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1)), 0)
    a = inv[:, None] * a * inv[None, :]
    x, out = emb, emb.copy()
    for _ in range(layers):
        x = a @ x
        out += x
    return out / (layers + 1)


def test_propagation_matches_dense_reference_and_pyg():
    graph = random_graph()
    model = LightGCN(graph, dim=8, num_layers=3)
    u, i = model.propagate()
    emb = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach()
    ref = dense_lightgcn(graph, emb.double().numpy(), 3)
    np.testing.assert_allclose(torch.cat([u, i]).detach().numpy(), ref, rtol=1e-4, atol=1e-5)

    pyg = PyGLightGCN(graph.num_nodes, 8, 3)
    with torch.no_grad():
        pyg.embedding.weight.copy_(emb)
    ei = torch.from_numpy(graph.bipartite_edge_index())
    torch.testing.assert_close(pyg.get_embedding(ei), torch.cat([u, i]).detach(), rtol=1e-4, atol=1e-5)


def test_gradients_match_dense_autograd():
    graph = random_graph(1)
    model = LightGCN(graph, dim=4, num_layers=2)
    u, i = model.propagate()
    (u.sum() * 0.5 + (i ** 2).sum()).backward()
    emb = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach().double().requires_grad_()
    uu, ii = graph.edges()
    n = graph.num_nodes
    a = torch.zeros(n, n, dtype=torch.double)
    a[uu, ii + graph.num_users] = 1
    a[ii + graph.num_users, uu] = 1
    d = a.sum(1)
    inv = torch.where(d > 0, d.clamp(min=1).rsqrt(), torch.zeros_like(d))
    a = inv[:, None] * a * inv[None, :]
    x, out = emb, emb
    for _ in range(2):
        x = a @ x
        out = out + x
    out = out / 3
    (out[: graph.num_users].sum() * 0.5 + (out[graph.num_users:] ** 2).sum()).backward()
    torch.testing.assert_close(model.user_emb.weight.grad.double(), emb.grad[: graph.num_users],
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.item_emb.weight.grad.double(), emb.grad[graph.num_users:],
                               rtol=1e-4, atol=1e-5)


def test_edge_mask_equals_graph_without_those_edges():
    graph = random_graph(2)
    model = LightGCN(graph, dim=4, num_layers=2)
    rng = np.random.default_rng(0)
    keep = rng.random(graph.num_edges) > 0.3
    u, i = model.propagate(edge_mask=torch.from_numpy(keep))
    emb = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach().double().numpy()
    ref = dense_lightgcn(graph, emb, 2, keep)
    np.testing.assert_allclose(torch.cat([u, i]).detach().numpy(), ref, rtol=1e-4, atol=1e-5)
    full = torch.cat(model.propagate(edge_mask=torch.ones(graph.num_edges, dtype=torch.bool)))
    torch.testing.assert_close(full, torch.cat(model.propagate()))


def test_masked_adjacency_is_the_rebuilt_one_and_is_built_once_per_view():
    graph = random_graph(4)
    tg = LightGCN(graph, dim=4).torch_graph()
    rng = np.random.default_rng(1)
    mask = torch.from_numpy(rng.random(graph.num_edges) > 0.4)
    mask[tg.edge_index[0] == 0] = False  # user 0 loses every edge: a zero row, no NaN
    view = MaskedGraph(tg, mask)
    got = lightgcn_adjacency(tg, view)
    want = normalized_adjacency(tg.edge_index, tg.num_users, tg.num_items, mask)
    torch.testing.assert_close(got.to_dense(), want.to_dense(), rtol=0, atol=0)
    assert torch.equal(got.crow_indices().long(), want.crow_indices().long())
    # the view keeps its matrix; changing the caller's tensor afterwards does not
    # corrupt what was kept
    assert lightgcn_adjacency(tg, view) is got
    mask[(~mask).nonzero()[0, 0]] = True  # one removed edge comes back
    assert lightgcn_adjacency(tg, view) is got
    torch.testing.assert_close(lightgcn_adjacency(tg, view).to_dense(), want.to_dense(), rtol=0, atol=0)
    # a plain tensor is a new view
    other = lightgcn_adjacency(tg, mask)
    assert other is not got
    torch.testing.assert_close(other.to_dense(), normalized_adjacency(
        tg.edge_index, tg.num_users, tg.num_items, mask).to_dense(), rtol=0, atol=0)
    assert lightgcn_adjacency(tg, None) is tg.norm_adj


@pytest.mark.parametrize("layers", [0, 1, 3])
@pytest.mark.parametrize("masked", [False, True])
def test_propagate_rows_equals_full_propagation_values_and_gradients(layers, masked, rows_pass):
    graph = random_graph(3)
    model = LightGCN(graph, dim=4, num_layers=layers)
    rng = np.random.default_rng(layers)
    mask = torch.from_numpy(rng.random(graph.num_edges) > 0.3) if masked else None
    # repeats, an isolated user (31) and isolated items (20..22) included
    users = torch.tensor([0, 5, 5, 31, 7])
    items = torch.tensor([3, 21, 3, 0, 19, 22, 8])
    gu, gi = torch.randn(users.numel(), 4), torch.randn(items.numel(), 4)

    def run(rows):
        return rows_pass(model, users, items, mask, rows, lambda u, i: (u * gu).sum() + (i * gi).sum())

    for got, want in zip(run(True), run(False)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_mf_embeddings_are_the_tables_and_recommend_excludes_seen():
    graph = random_graph(3)
    model = MF(graph, dim=4)
    u, i = model.embeddings()
    assert torch.equal(u, model.user_emb.weight)
    users = graph.user_map.to_raw(np.arange(5))
    frame = model.recommend(users, k=5)
    assert set(frame.columns) == {"user", "rank", "item", "score"}
    seen = set(zip(*graph.edges()))
    for row in frame.itertuples():
        assert (graph.user_map.to_index(row.user), graph.item_map.to_index(row.item)) not in seen
    # scores are sorted within each user
    for _, grp in frame.groupby("user"):
        assert (np.diff(grp["score"].to_numpy()) <= 1e-6).all()


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_export_embeddings(tmp_path, suffix):
    import pandas as pd

    graph = random_graph(4)
    model = MF(graph, dim=3)
    model.export_embeddings(tmp_path / f"emb{suffix}")
    if suffix == ".npy":
        users = np.load(tmp_path / "emb_users.npy")
        np.testing.assert_allclose(users, model.user_emb.weight.detach().numpy())
    else:
        table = pd.read_parquet(tmp_path / "emb.parquet")
        assert len(table) == graph.num_users + graph.num_items
        assert list(table.columns[:2]) == ["kind", "id"]

