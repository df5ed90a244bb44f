"""Stand-ins for graph models: the attention contract with weights chosen by a test."""

from __future__ import annotations

import numpy as np
import torch

from graphrec.data import RecGraph


class FakeAttentionModel:
    """The attention contract of graph models, with weights fixed by the test."""

    def __init__(self, graph: RecGraph, layers: list[dict[str, np.ndarray]]) -> None:
        self.graph = graph
        self.num_layers = len(layers)
        self._layers = layers

    def attention(self) -> list[dict[str, torch.Tensor]]:
        return [{k: torch.as_tensor(v, dtype=torch.float32) for k, v in layer.items()}
                for layer in self._layers]


def random_attention(graph: RecGraph, num_layers: int, heads: int, seed: int = 0,
                     social: bool = False) -> list[dict[str, np.ndarray]]:
    """Random positive weights normalised over each destination's incoming edges."""
    rng = np.random.default_rng(seed)
    users, items = graph.edges()
    ends = {"item_to_user": (users, graph.num_users), "user_to_item": (items, graph.num_items)}
    if social:
        ends["user_to_user"] = (graph.social_edges()[1], graph.num_users)
    layers = []
    for _ in range(num_layers):
        layer = {}
        for name, (dst, n) in ends.items():
            w = rng.random((len(dst), heads)) + 0.05
            totals = np.stack([np.bincount(dst, w[:, h], minlength=n) for h in range(heads)], 1)
            layer[name] = w / totals[dst]
        layers.append(layer)
    return layers
