"""Recommenders: each produces user and item embeddings that a scorer compares."""

from graphrec.models.base import Recommender
from graphrec.models.lightgcn import LightGCN
from graphrec.models.mf import MF

__all__ = ["MF", "LightGCN", "Recommender"]
