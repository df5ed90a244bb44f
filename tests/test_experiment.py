import numpy as np
import pytest

from graphrec.config import load_config
from graphrec.data import Interactions
from graphrec.data.errors import DataError
from graphrec.experiment import load_run, run

TINY = ["data.synthetic_users=120", "data.synthetic_items=90", "train.epochs=3",
        "train.progress=false", "model.dim=8", "train.patience=0"]


def test_refit_trains_on_train_plus_valid_and_is_what_load_run_returns(tmp_path):
    cfg = load_config(None, [*TINY, "train.refit=true", "model.name=lightgcn"])
    result = run(cfg, tmp_path)
    split = result.split
    assert result.selected_test is not None
    assert result.model.graph.num_edges == len(split.train) + len(split.valid)
    assert (tmp_path / "final.pt").exists()
    _, _, loaded = load_run(tmp_path)
    assert loaded.graph.num_edges == len(split.train) + len(split.valid)
    for a, b in zip(loaded.embeddings(), result.model.embeddings()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


def test_without_refit_the_selected_model_is_kept(tmp_path):
    cfg = load_config(None, [*TINY, "model.name=mf"])
    result = run(cfg, tmp_path)
    assert result.selected_test is None
    assert result.model.graph.num_edges == len(result.split.train)
    assert not (tmp_path / "final.pt").exists()


def test_concat_keeps_columns_and_requires_shared_maps():
    a = Interactions.from_arrays([0, 1], [1, 2], num_users=3, num_items=3, rating=[1.0, 2.0])
    b = a.subset(np.array([1]))
    c = a.concat(b)
    assert c.user.tolist() == [0, 1, 1] and c.rating.tolist() == [1.0, 2.0, 2.0]
    other = Interactions.from_arrays([0], [0], num_users=5, num_items=3)
    with pytest.raises(DataError, match="different id maps"):
        a.concat(other)
    no_rating = Interactions(b.user, b.item, b.user_map, b.item_map)
    assert a.concat(no_rating).rating is None
