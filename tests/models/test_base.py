import pytest
import torch

from graphrec.data import RecGraph
from graphrec.datasets import synthetic
from graphrec.models import MF, LightGCN
from graphrec.models.gat import GATRecommender
from graphrec.models.social_gat import SocialGATRecommender


def test_score_pairs_equals_two_score_calls():
    graph = RecGraph(synthetic(num_users=60, num_items=40, seed=1).interactions)
    model = LightGCN(graph, dim=8, scorer="mlp")
    users = torch.tensor([0, 3, 5])
    pos = torch.tensor([1, 2, 3])
    user_emb, item_emb = model.propagate()
    for neg in (torch.tensor([4, 5, 6]), torch.tensor([[4, 7], [5, 8], [6, 9]])):
        pos_s, neg_s = model.score_pairs(users, pos, neg)
        torch.testing.assert_close(pos_s, model.score(users, pos, user_emb, item_emb))
        torch.testing.assert_close(neg_s, model.score(users, neg, user_emb, item_emb))


@pytest.mark.parametrize("scorer", ["dot", "cosine", "mlp"])
def test_score_shared_scores_every_user_against_every_shared_item(scorer):
    graph = RecGraph(synthetic(num_users=60, num_items=40, seed=1).interactions)
    model = LightGCN(graph, dim=8, scorer=scorer)
    users, pos, neg = torch.tensor([0, 3, 5]), torch.tensor([1, 2, 3]), torch.tensor([4, 7, 1, 9])
    user_emb, item_emb = model.propagate()
    pos_s, neg_s = model.score_shared(users, pos, neg)
    torch.testing.assert_close(pos_s, model.score(users, pos, user_emb, item_emb))
    torch.testing.assert_close(neg_s, model.score(users, neg.expand(3, 4), user_emb, item_emb))


@pytest.mark.parametrize("cls", [MF, LightGCN, GATRecommender, SocialGATRecommender])
def test_ego_embeddings_initialise_and_regularise_alike(cls):
    data = synthetic(num_users=300, num_items=200, seed=2)
    graph = RecGraph(data.interactions, social=data.social)
    torch.manual_seed(0)
    model = cls(graph, dim=16, init_std=0.05)
    for table in (model.user_emb.weight, model.item_emb.weight):
        assert abs(table.std().item() - 0.05) < 0.005
    users, items = torch.tensor([0, 2, 2]), torch.tensor([5, 1])
    reg = model.regularized(users, items)
    torch.testing.assert_close(reg[0], model.user_emb.weight[users])
    torch.testing.assert_close(reg[1], model.item_emb.weight[items])
    with torch.no_grad():
        model.user_emb.weight.fill_(3.0)
    model.reset_parameters()
    assert abs(model.user_emb.weight.std().item() - 0.05) < 0.005
