"""summary(): one call describing a dataset, interactions or a split."""

from __future__ import annotations

import numpy as np
import pytest

from graphrec.data.interactions import Interactions
from graphrec.data.social import SocialEdges
from graphrec.data.splits import given_split, holdout_valid
from graphrec.datasets import Dataset, holdout_share, split_profile, summary, synthetic


@pytest.fixture
def small() -> Interactions:
    # Users 0..3 (user 3 without interactions), items 0..2.
    return Interactions.from_arrays([0, 0, 0, 1, 2], [0, 1, 2, 0, 0], num_users=4, num_items=3,
                                    rating=[1, 2, 3, 4, 5])


def test_interactions(small):
    s = summary(small)
    assert (s.users, s.items, s.interactions) == (4, 3, 5)
    assert s.density == pytest.approx(5 / 12)
    assert s.users_without_interactions == 1 and s.items_without_interactions == 0
    assert s.user_degree["min"] == 0 and s.user_degree["max"] == 3
    assert s.user_degree["50%"] == pytest.approx(np.median([3, 1, 1, 0]))
    assert s.item_degree.tolist() == pytest.approx(np.quantile([3, 1, 1], [0, .25, .5, .75, .9, .99, 1]))
    assert s.rating_range == (1.0, 5.0)
    assert s.social_edges is None and s.split_sizes is None


def test_dataset_with_social_and_split(small):
    train = small.subset(np.array([0, 1, 3]))
    test = small.subset(np.array([2, 4]))
    social = SocialEdges.from_arrays([0, 1, 2], [1, 0, 0], num_users=4)
    d = Dataset("toy", split=given_split(train, test), social=social)
    s = summary(d)
    assert s.interactions == 5 and s.split_sizes == {"train": 3, "valid": 0, "test": 2}
    assert s.social_edges == 3 and s.avg_friends == pytest.approx(3 / 4)
    assert s.rating_range == (1.0, 5.0)
    text = str(s)
    assert "toy: 4 users, 3 items, 5 interactions" in text
    assert "train 3, valid 0, test 2" in text and "3 edges" in text
    row = s.to_series()
    assert row["test"] == 2 and row["user degree max"] == 3 and row.name == "toy"
    assert summary(d.split).split_sizes == s.split_sizes


def test_synthetic_summary_is_consistent():
    d = synthetic(num_users=80, num_items=60, num_communities=4, avg_degree=6)
    s = summary(d)
    x = d.interactions
    assert s.interactions == len(x) and s.social_edges == len(d.social)
    assert s.user_degree["min"] >= 1
    assert s.user_degree["max"] == x.user_degrees().max()
    assert "synthetic: 80 users, 60 items" in str(s)


def test_rejects_other_types():
    with pytest.raises(TypeError, match="Dataset, Interactions or Split"):
        summary([1, 2, 3])


def _profiled_split(with_valid: bool = True):
    part = lambda u, i: Interactions.from_arrays(u, i, num_users=4, num_items=4)  # noqa: E731
    # Training popularity of items 0..3: [3, 1, 0, 0]; user 3 has no training row.
    train = part([0, 1, 2, 0], [0, 0, 0, 1])
    valid = part([1], [1]) if with_valid else None
    test = part([0, 3, 3], [2, 0, 1])
    return given_split(train, test, valid)


def test_split_profile_by_hand():
    p = split_profile(_profiled_split(), top_share=0.25)
    assert list(p.index) == ["train", "valid", "test"]
    assert p["rows"].tolist() == [4, 1, 3] and p["users"].tolist() == [3, 1, 2]
    assert p["rows per user"].tolist() == pytest.approx([4 / 3, 1.0, 1.5])
    # train rows count the *other* training rows: items 0, 0, 0, 1 → 2, 2, 2, 0
    assert p["mean popularity"].tolist() == pytest.approx([1.5, 1.0, (0 + 3 + 1) / 3])
    assert p["median popularity"].tolist() == pytest.approx([2.0, 1.0, 1.0])
    # top quarter of the catalogue by training popularity: item 0 alone
    assert p["head share"].tolist() == pytest.approx([0.75, 0.0, 1 / 3])
    assert p["cold users"].tolist() == [0, 0, 2] and p["cold items"].tolist() == [0, 0, 1]


def test_split_profile_leaves_out_empty_parts_and_checks_share():
    assert list(split_profile(_profiled_split(with_valid=False)).index) == ["train", "test"]
    with pytest.raises(ValueError, match="top_share"):
        split_profile(_profiled_split(), top_share=0.0)


def test_holdout_share_by_hand():
    split = _profiled_split()
    # test: held rows per item [1, 1, 1, 0], with training [4, 2, 1, 0]; median cut at 2
    t = holdout_share(split, "test", quantiles=(0.5,))
    assert t["items"].tolist() == [2, 1] and t["rows"].tolist() == [3, 4]
    assert t["min rows"].tolist() == [1, 4] and t["max rows"].tolist() == [2, 4]
    assert t["held-out share"].tolist() == pytest.approx([2 / 3, 1 / 4])
    # valid (test left out): held [0, 1, 0, 0], with training [3, 2, 0, 0]; cut at 2.5
    v = holdout_share(split, "valid", quantiles=(0.5,))
    assert v["items"].tolist() == [1, 1]
    assert v["held-out share"].tolist() == pytest.approx([1 / 2, 0.0])


def test_holdout_share_is_flat_for_a_random_carve():
    ds = synthetic(num_users=400, num_items=300, avg_degree=30.0, seed=3)
    split = holdout_valid(ds.interactions, ratio=0.2, seed=0)
    shares = holdout_share(split, "valid", quantiles=(0.5, 0.9))["held-out share"]
    assert shares.between(0.17, 0.23).all(), shares.tolist()


def test_holdout_share_checks_its_arguments():
    split = _profiled_split()
    with pytest.raises(ValueError, match="part"):
        holdout_share(split, "train")
    with pytest.raises(ValueError, match="quantiles"):
        holdout_share(split, quantiles=(0.9, 0.5))
    with pytest.raises(ValueError, match="no valid rows"):
        holdout_share(_profiled_split(with_valid=False), "valid")
