import numpy as np
import pytest
import torch

import graphrec.models.propagation as propagation
from graphrec.data import Interactions, RecGraph
from graphrec.models import GATRecommender, LightGCN
from graphrec.models.masked_graph import MaskedGraph, masked_view
from graphrec.models.propagation import normalized_adjacency
from graphrec.training import TrainConfig, Trainer


def random_graph(seed=0, users=25, items=18, edges=110):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, users, edges), rng.integers(0, items, edges)
    return RecGraph(Interactions.from_arrays(u, i, num_users=users, num_items=items))


def test_every_form_of_the_mask_matches_a_reference_and_is_built_once():
    graph = random_graph()
    tg = LightGCN(graph, dim=4).torch_graph()
    hidden = torch.tensor([0, 3, 4, 17, graph.num_edges - 1])
    view = MaskedGraph.hiding(tg, hidden)
    mask = np.ones(graph.num_edges, dtype=bool)
    mask[hidden.numpy()] = False
    assert np.array_equal(view.edge_mask.numpy(), mask)
    # stored order: the stored entry k of an adjacency is the edge edge_id[k]
    for adj in (tg.item_to_user, tg.user_to_item):
        assert np.array_equal(view.stored(adj).numpy(), mask[adj.edge_id.numpy()])
        assert view.stored(adj) is view.stored(adj)
    users, items = graph.edges()
    du, di = view.degrees
    assert np.array_equal(du.numpy(), np.bincount(users[mask], minlength=graph.num_users))
    assert np.array_equal(di.numpy(), np.bincount(items[mask], minlength=graph.num_items))
    want = normalized_adjacency(tg.edge_index, tg.num_users, tg.num_items, torch.from_numpy(mask))
    torch.testing.assert_close(view.norm_adj.to_dense(), want.to_dense(), rtol=0, atol=0)
    assert view.norm_adj is view.norm_adj


def test_masked_view_passes_views_through_and_checks_masks():
    tg = LightGCN(random_graph(), dim=4).torch_graph()
    view = MaskedGraph.hiding(tg, torch.tensor([1]))
    assert masked_view(tg, None) is None
    assert masked_view(tg, view) is view
    other = masked_view(tg, view.edge_mask)
    assert other is not view and torch.equal(other.edge_mask, view.edge_mask)
    with pytest.raises(ValueError, match="shape"):
        MaskedGraph(tg, torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        MaskedGraph(tg, torch.ones(tg.edge_index.size(1)))


@pytest.mark.parametrize("make", [lambda g: LightGCN(g, dim=8, num_layers=2),
                                  lambda g: GATRecommender(g, dim=8, num_layers=2, learn_powers=True)])
def test_a_view_gives_the_same_scores_as_its_mask(make):
    graph = random_graph(1)
    torch.manual_seed(0)
    model = make(graph)
    mask = torch.ones(graph.num_edges, dtype=torch.bool)
    mask[::3] = False
    users, items = torch.tensor([0, 2, 5]), torch.tensor([1, 1, 7])
    with torch.no_grad():
        plain = model.propagate_rows(users, items, edge_mask=mask)
        viewed = model.propagate_rows(users, items, edge_mask=MaskedGraph(model.torch_graph(), mask))
        full = model.propagate(edge_mask=MaskedGraph(model.torch_graph(), mask))
    for a, b in zip(plain, viewed):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(viewed[0], full[0][users], rtol=1e-5, atol=1e-6)


def test_a_step_with_hard_negatives_builds_the_masked_matrix_once(monkeypatch):
    graph = random_graph(2)
    built = []
    real = propagation.masked_norm_adj

    def counting(g, mask):
        built.append(mask.clone())
        return real(g, mask)

    monkeypatch.setattr(propagation, "masked_norm_adj", counting)
    cfg = TrainConfig(epochs=1, batch_size=graph.num_edges, hard_negatives=3, mask_batch_edges=True,
                      progress=False, device="cpu")
    Trainer(LightGCN(graph, dim=4), None, cfg).fit()
    # one batch: hard-negative scoring and the step share one view
    assert len(built) == 1
    assert not built[0].any()  # the batch is every edge
