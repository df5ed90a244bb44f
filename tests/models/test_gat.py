import numpy as np
import torch

from graphrec.data import Interactions, RecGraph
from graphrec.models import LightGCN
from graphrec.models.gat import GATRecommender


def graph(seed=0, users=25, items=18, edges=110):
    rng = np.random.default_rng(seed)
    return RecGraph(Interactions.from_arrays(rng.integers(0, users, edges), rng.integers(0, items, edges),
                                             num_users=users + 1, num_items=items + 2))


def copied_pair(g, heads=1):
    gat = GATRecommender(g, dim=8, num_layers=3, heads=heads)
    light = LightGCN(g, dim=8, num_layers=3)
    light.load_state_dict({k: v for k, v in gat.state_dict().items() if k != "beta"})
    return gat, light


def test_starts_exactly_as_lightgcn():
    g = graph()
    gat, light = copied_pair(g, heads=2)
    for a, b in zip(gat.propagate(), light.propagate()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_mask_matches_lightgcn_mask():
    g = graph(1)
    gat, light = copied_pair(g)
    mask = torch.from_numpy(np.random.default_rng(0).random(g.num_edges) > 0.4)
    for a, b in zip(gat.propagate(mask), light.propagate(mask)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_attention_changes_weights_but_not_row_mass():
    """With β ≠ 0 the output differs from LightGCN, yet each node's weights still sum
    to LightGCN's row sum (attention redistributes mass, it does not add any)."""
    g = graph(2)
    gat, light = copied_pair(g)
    with torch.no_grad():
        gat.beta.fill_(3.0)
        gat.user_emb.weight.fill_(1.0)
        gat.item_emb.weight.fill_(1.0)
        light.user_emb.weight.fill_(1.0)
        light.item_emb.weight.fill_(1.0)
    # constant embeddings: cosines are all 1, so attention equals the prior again
    for a, b in zip(gat.propagate(), light.propagate()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    gat.reset_parameters()
    with torch.no_grad():
        gat.beta.fill_(3.0)
    light.load_state_dict({k: v for k, v in gat.state_dict().items() if k != "beta"})
    assert not torch.allclose(gat.propagate()[0], light.propagate()[0], atol=1e-4)


def test_gradients_reach_beta_and_embeddings():
    g = graph(3)
    gat = GATRecommender(g, dim=8, num_layers=2, heads=2)
    u, i = gat.propagate()
    (u[:5] @ i[:5].T).sum().backward()
    assert gat.beta.grad is not None and gat.beta.grad.abs().sum() > 0
    assert torch.isfinite(gat.user_emb.weight.grad).all()
