"""Ready-to-use datasets: a seeded synthetic one and loaders for public benchmarks.

>>> from graphrec.datasets import synthetic, summary
>>> data = synthetic(num_users=50, num_items=40, num_communities=4, avg_degree=5)
>>> data.interactions.num_users
50
"""

from graphrec.datasets.dataset import Dataset
from graphrec.datasets.download import download_file, download_movielens_small
from graphrec.datasets.real import (
    ENV_VAR,
    data_root,
    default_data_dir,
    filmtrust,
    gowalla,
    lastfm,
    movielens_small,
    read_user_item_lists,
)
from graphrec.datasets.summary import DatasetSummary, holdout_share, split_profile, summary
from graphrec.datasets.synthetic import synthetic

__all__ = [
    "ENV_VAR", "Dataset", "DatasetSummary", "data_root", "default_data_dir", "download_file",
    "download_movielens_small", "filmtrust", "gowalla", "lastfm", "movielens_small",
    "holdout_share", "read_user_item_lists", "split_profile", "summary", "synthetic",
]
