"""Recommenders.

Embedding models (implicit feedback; user and item embeddings that a scorer compares):
``MF``, ``LightGCN``, ``GATRecommender``, ``SocialGATRecommender``. Closed-form ranking
models (fitted, not trained; they score users against all items directly, see
:mod:`graphrec.models.scoring_model`): ``GFCF``, ``LinearFilter``, ``IdealLowPassFilter``,
``ChebyshevFilter``, ``ItemKNN``, ``EASE``, ``IALS``, and ``Blend`` of them; ``AttentiveFilter`` starts as GF-CF
in closed form and then learns attention on its edges with the Trainer. Rating models (explicit feedback,
MSE): ``MFRating``, ``GraphRec``.
"""

from graphrec.models.attentive_filter import AttentiveFilter
from graphrec.models.base import EmbeddingRecommender, Recommender
from graphrec.models.blend import Blend
from graphrec.models.ease import EASE
from graphrec.models.gat import GATRecommender
from graphrec.models.graph_filter import GFCF, IdealLowPassFilter, LinearFilter
from graphrec.models.ials import IALS
from graphrec.models.itemknn import ItemKNN
from graphrec.models.lightgcn import LightGCN
from graphrec.models.mf import MF
from graphrec.models.mf_rating import MFRating
from graphrec.models.polynomial_filter import ChebyshevFilter
from graphrec.models.rating import RatingModel
from graphrec.models.scoring_model import ScoringModel
from graphrec.models.social_gat import SocialGATRecommender
from graphrec.models.social_graphrec import GraphRec

__all__ = ["AttentiveFilter", "Blend", "EASE", "GFCF", "IALS", "ChebyshevFilter", "EmbeddingRecommender", "GATRecommender", "GraphRec",
           "IdealLowPassFilter", "ItemKNN", "LightGCN", "LinearFilter", "MF", "MFRating",
           "RatingModel", "Recommender", "ScoringModel", "SocialGATRecommender"]
