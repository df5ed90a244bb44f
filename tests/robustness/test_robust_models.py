"""Ids, indices, masks and k handed to public functions: checked, never used as they come."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from graphrec.data import Interactions
from graphrec.data.errors import DataError
from graphrec.data.graph import RecGraph
from graphrec.data.idmap import IdMap
from graphrec.data.social import SocialEdges
from graphrec.data.splits import per_user_split, random_split
from graphrec.models import MF, GATRecommender, LightGCN


@pytest.fixture(scope="module")
def graph():
    inter = Interactions.from_arrays([0, 0, 1, 1, 2, 2, 3], [0, 1, 1, 2, 0, 2, 3])
    return RecGraph(inter)


@pytest.fixture(scope="module")
def models(graph):
    torch.manual_seed(0)
    return {"mf": MF(graph, dim=4), "lightgcn": LightGCN(graph, dim=4, num_layers=2),
            "gat": GATRecommender(graph, dim=4, num_layers=1)}


BAD_MASKS = [
    (torch.ones(3, dtype=torch.bool), ValueError, "shape (7,)"),
    (torch.ones(8, dtype=torch.bool), ValueError, "shape (7,)"),
    (torch.ones(7, 1, dtype=torch.bool), ValueError, "shape (7,)"),
    (torch.ones(7, dtype=torch.long), TypeError, "bool"),
    (torch.tensor([0, 1, 2]), TypeError, "bool"),
    (torch.ones(7), TypeError, "bool"),
]


@pytest.mark.parametrize("name", ["lightgcn", "gat"])
@pytest.mark.parametrize("mask,error,words", BAD_MASKS,
                         ids=["short", "long", "2-D", "int64", "int indices", "float"])
def test_bad_edge_masks_are_refused(models, name, mask, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        models[name].propagate(edge_mask=mask)


def test_a_good_mask_hides_the_edges(models):
    model = models["lightgcn"]
    full = model.propagate()[0]
    mask = torch.ones(7, dtype=torch.bool)
    mask[0] = False
    assert not torch.allclose(model.propagate(edge_mask=mask)[0], full)


@pytest.mark.parametrize("name", ["mf", "lightgcn", "gat"])
@pytest.mark.parametrize("users,error,words", [
    ([-1], IndexError, "out of range"),
    ([4], IndexError, "out of range"),
    ([0, 99], IndexError, "out of range"),
    ([0.5], TypeError, "integer indices"),
    (["0"], TypeError, "integer indices"),
], ids=["-1", "num_users", "one of two", "float", "text"])
def test_bad_user_indices(models, name, users, error, words):
    with pytest.raises(error, match=words):
        models[name].recommend(users, raw_ids=False)


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3"])
def test_bad_k(models, k):
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        models["mf"].recommend([0], k=k)


def test_k_above_the_items_gives_every_unseen_item(models):
    frame = models["mf"].recommend([0], k=100)
    assert sorted(frame["item"]) == [2, 3]


def test_unknown_raw_ids(models):
    with pytest.raises(DataError, match="unknown user id"):
        models["mf"].recommend([77])


# ---------------------------------------------------------------------- data structures
@pytest.mark.parametrize("user,item,words", [
    ([0, 5], [0, 0], "user indices must lie in"),
    ([0, -1], [0, 0], "user indices must lie in"),
    ([0, 1], [0, 9], "item indices must lie in"),
    ([0, 1], [0], "differ in length"),
], ids=["user too big", "user negative", "item too big", "lengths"])
def test_interactions_refuse_bad_indices(user, item, words):
    with pytest.raises(DataError, match=words):
        Interactions(np.array(user), np.array(item), IdMap.identity(2), IdMap.identity(2))


@pytest.mark.parametrize("index", [-1, 3, [0, 3]])
def test_id_map_refuses_out_of_range(index):
    with pytest.raises(DataError, match="out of range"):
        IdMap(["a", "b", "c"]).to_raw(index)


def test_id_map_refuses_repeated_ids():
    with pytest.raises(DataError, match="unique"):
        IdMap(["a", "b", "a"])


@pytest.mark.parametrize("src,dst,n,words", [
    ([0, 3], [1, 0], 3, "indices must lie in"),
    ([0, -1], [1, 0], 3, "indices must lie in"),
    ([0, 1], [1], 3, "length|edges"),
], ids=["src too big", "src negative", "lengths"])
def test_social_edges_refuse_bad_indices(src, dst, n, words):
    with pytest.raises(DataError, match=words):
        SocialEdges(np.array(src), np.array(dst), None, n)


@pytest.mark.parametrize("ratios", [(float("nan"), 0.5, 0.5), (0.8, 0.1), (0.5, 0.5, 0.5),
                                    (float("inf"), 0, 0), (1.2, -0.1, -0.1), (0.5,)],
                         ids=["nan", "pair not summing", "sum 1.5", "inf", "negative", "one"])
@pytest.mark.parametrize("split", [random_split, per_user_split])
def test_splits_refuse_bad_ratios(split, ratios):
    inter = Interactions.from_arrays([0, 0, 1, 1], [0, 1, 0, 1])
    with pytest.raises(ValueError, match="ratios must be"):
        split(inter, ratios=ratios)


def test_splits_refuse_repeated_pairs():
    inter = Interactions.from_arrays([0, 0], [1, 1])
    with pytest.raises(DataError, match="repeat some"):
        random_split(inter)


def test_loader_frames_keep_text_ids_apart():
    inter = pd.DataFrame({"user": ["1", "01"], "item": ["a", "b"]})
    from graphrec.data.interactions import load_interactions
    assert load_interactions(inter).num_users == 1  # "1" and "01" are the integer 1
    text = pd.DataFrame({"user": ["a1", "a01"], "item": ["a", "b"]})
    assert load_interactions(text).num_users == 2


def test_a_failed_export_leaves_no_file(models, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(OSError, match="No space"):
        models["mf"].export_embeddings(tmp_path / "emb.npy")
    assert list(tmp_path.iterdir()) == []


def test_export_needs_a_known_suffix(models, tmp_path):
    with pytest.raises(ValueError, match=".npy or .parquet"):
        models["mf"].export_embeddings(tmp_path / "emb.txt")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def rating_model():
    from graphrec.models import MFRating

    inter = Interactions.from_arrays([0, 0, 1, 2], [0, 1, 1, 2], rating=[1.0, 2.0, 3.0, 4.0])
    torch.manual_seed(0)
    return MFRating(RecGraph(inter), inter, dim=4)


@pytest.mark.parametrize("users,items,error,words", [
    ([-1], [0], IndexError, "user index -1"),
    ([3], [0], IndexError, "user index 3"),
    ([0], [-2], IndexError, "item index -2"),
    ([0], [7], IndexError, "item index 7"),
], ids=["user -1", "user too big", "item -2", "item too big"])
def test_rating_predictions_check_indices(rating_model, users, items, error, words):
    with pytest.raises(error, match=words):
        rating_model.predict(torch.tensor(users), torch.tensor(items))


def test_rating_predictions_refuse_float_indices(rating_model):
    with pytest.raises(TypeError, match="integers"):
        rating_model.predict(torch.tensor([0.0]), torch.tensor([0]))


def test_rating_predictions_stay_in_the_training_range(rating_model):
    pred = rating_model.predict(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]))
    assert pred.min() >= 1.0 and pred.max() <= 4.0
