"""Recommenders: each produces user and item embeddings that a scorer compares."""

from graphrec.models.base import Recommender
from graphrec.models.lightgcn import LightGCN
from graphrec.models.mf import MF

__all__ = ["MF", "LightGCN", "Recommender"]

# Social and rating-prediction models.
from graphrec.models.mf_rating import MFRating  # noqa: E402
from graphrec.models.rating import RatingModel  # noqa: E402
from graphrec.models.social_gat import SocialGATRecommender  # noqa: E402
from graphrec.models.social_graphrec import GraphRec  # noqa: E402

__all__ += ["GraphRec", "MFRating", "RatingModel", "SocialGATRecommender"]
