"""Interaction logs and social edges → validated, id-mapped, split data → RecGraph."""

from graphrec.data.adjacency import Adjacency
from graphrec.data.errors import DataError
from graphrec.data.filtering import binarize, deduplicate, k_core
from graphrec.data.graph import RecGraph, TorchGraph
from graphrec.data.hetero import HeteroGraph
from graphrec.data.idmap import IdMap
from graphrec.data.interactions import ColumnMap, Interactions, LoadReport, load_interactions
from graphrec.data.sampling import NegativeSampler
from graphrec.data.social import SocialColumns, SocialEdges, load_social
from graphrec.data.splits import (
    Split,
    SplitReport,
    given_split,
    holdout_valid,
    leave_one_out,
    per_user_split,
    per_user_temporal_split,
    popularity_buckets,
    random_split,
    temporal_split,
    thin_holdout,
)

__all__ = [
    "Adjacency", "ColumnMap", "DataError", "HeteroGraph", "IdMap", "Interactions",
    "LoadReport", "NegativeSampler", "RecGraph", "SocialColumns", "SocialEdges", "Split",
    "SplitReport", "TorchGraph", "binarize", "deduplicate", "given_split", "holdout_valid",
    "k_core", "leave_one_out", "load_interactions", "load_social", "per_user_split",
    "per_user_temporal_split", "popularity_buckets", "random_split", "temporal_split",
    "thin_holdout",
]
