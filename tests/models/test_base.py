import torch

from graphrec.data import RecGraph
from graphrec.datasets import synthetic
from graphrec.models import LightGCN


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
