"""Recommenders: each produces user and item embeddings that a scorer compares.

Ranking models (implicit feedback): ``MF``, ``LightGCN``, ``GATRecommender``,
``SocialGATRecommender``. Rating models (explicit feedback, MSE): ``MFRating``,
``GraphRec``.
"""

from graphrec.models.base import EmbeddingRecommender, Recommender
from graphrec.models.gat import GATRecommender
from graphrec.models.lightgcn import LightGCN
from graphrec.models.mf import MF
from graphrec.models.mf_rating import MFRating
from graphrec.models.rating import RatingModel
from graphrec.models.social_gat import SocialGATRecommender
from graphrec.models.social_graphrec import GraphRec

__all__ = ["EmbeddingRecommender", "GATRecommender", "GraphRec", "LightGCN", "MF", "MFRating", "RatingModel",
           "Recommender", "SocialGATRecommender"]
