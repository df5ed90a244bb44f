"""Small graphs with hand-set attention, shared by the explanation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from attention_fakes import FakeAttentionModel

from graphrec.data import ColumnMap, RecGraph, load_interactions


@pytest.fixture
def tiny_graph() -> RecGraph:
    """Users "a", "b"; items 10, 20, 30; edges a-10, a-20, b-20, b-30 (ids 0..3 in that order)."""
    log = load_interactions(pd.DataFrame({"user": ["a", "a", "b", "b"], "item": [10, 20, 20, 30]}),
                            ColumnMap("user", "item"))
    return RecGraph(log)


@pytest.fixture
def tiny_model(tiny_graph: RecGraph) -> FakeAttentionModel:
    """Two layers, one head, weights chosen so that every path weight is easy to work out.

    Layer 0: a <- (10: .8, 20: .2); b <- (20: .3, 30: .7); 10 <- a: 1; 20 <- (a: .6, b: .4);
    30 <- b: 1.  Layer 1: a <- (.5, .5); b <- (.1, .9); 10 <- 1; 20 <- (.25, .75); 30 <- 1.
    """
    layers = [
        {"item_to_user": np.array([0.8, 0.2, 0.3, 0.7]),
         "user_to_item": np.array([1.0, 0.6, 0.4, 1.0])},
        {"item_to_user": np.array([0.5, 0.5, 0.1, 0.9]),
         "user_to_item": np.array([1.0, 0.25, 0.75, 1.0])},
    ]
    return FakeAttentionModel(tiny_graph, layers)
