"""Custom graph: extra relations, item features, a custom scorer and model, trained as usual.

Everything here is user code on top of graphrec's public API; no library file changes:

1. load MovieLens small (when ``--root``, ``$GRAPHREC_DATA`` or ``../shared/datasets``
   has it) or else the synthetic dataset, and split it;
2. build a :class:`~graphrec.data.hetero.HeteroGraph` from the training RecGraph plus
   two relations of our own: item → genre membership (genres are also the items'
   feature vectors; the synthetic data's genres are its latent communities) and
   item–item co-occurrence (the items most often consumed by the same users);
3. define a scorer (dot product plus a learned item bias) and a model that subclasses
   :class:`~graphrec.models.base.Recommender`: a :class:`~graphrec.nn.GATConv` lets
   every item attend over its genres, and light propagation runs over the interaction
   and co-occurrence relations with graphrec's sparse primitives;
4. train it and LightGCN with the same :class:`~graphrec.training.Trainer` settings and
   report test Recall@20 and NDCG@20 from the full-ranking
   :class:`~graphrec.evaluate.Evaluator`.

    python examples/custom_graph.py                  # MovieLens small if present
    python examples/custom_graph.py --dataset synthetic --epochs 5
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from graphrec.data import DataError, RecGraph, per_user_split
from graphrec.data.hetero import HeteroGraph
from graphrec.datasets import Dataset, movielens_small, synthetic
from graphrec.evaluate import Evaluator
from graphrec.models import LightGCN, Recommender
from graphrec.nn import GATConv, spmm
from graphrec.scoring import Scorer
from graphrec.training import TrainConfig, Trainer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"

ITEM_GENRE = ("item", "has_genre", "genre")
GENRE_ITEM = ("genre", "genre_of", "item")
CO_OCCURS = ("item", "co_occurs", "item")
INTERACTS = ("user", "interacts", "item")
REV_INTERACTS = ("item", "rev_interacts", "user")


# ---------------------------------------------------------------------- data
def load_dataset(name: str, root: str | None, users: int, items: int,
                 seed: int) -> tuple[Dataset, pd.DataFrame]:
    """The dataset and its item × genre 0/1 matrix (rows in item-index order)."""
    if name in ("auto", "movielens"):
        folder = root or os.environ.get("GRAPHREC_DATA") or SHARED
        try:
            data = movielens_small(root=folder)
            genres = data.items["genres"].fillna("").str.get_dummies(sep="|")
            return data, genres.drop(columns="(no genres listed)", errors="ignore")
        except DataError:
            if name == "movielens":
                raise
            print(f"MovieLens small not found under {folder}; using the synthetic dataset")
    data = synthetic(num_users=users, num_items=items, seed=seed)
    # The synthetic items' latent community stands in for a genre.
    genres = pd.get_dummies(data.items["community"], prefix="community", dtype=np.int64)
    return data, genres


def cooccurrence(graph: RecGraph, top_k: int, chunk: int = 1024) -> tuple[np.ndarray, ...]:
    r"""The ``top_k`` most similar items of every item, by co-occurrence in training.

    Similarity :math:`s_{ij} = \sum_u r_{ui} r_{uj} / \log_2(1 + d_u) / \sqrt{d_i d_j}`:
    very active users say less about any pair of items, and dividing by the item degrees
    keeps popular items from being everyone's neighbour. Returns ``(src, dst, weight)``
    edges ``j → i`` for the top neighbours ``j`` of each ``i``. Items are processed in
    chunks, so memory stays at ``chunk × num_items`` scores.
    """
    r = graph.ui.astype(np.float32)
    du = graph.user_degree()
    di = np.maximum(graph.item_degree(), 1).astype(np.float32)
    rw = (sp.diags((1.0 / np.log2(1.0 + np.maximum(du, 1))).astype(np.float32)) @ r).tocsc()
    rt = r.T.tocsr()
    src, dst, weight = [], [], []
    for start in range(0, graph.num_items, chunk):
        rows = np.arange(start, min(start + chunk, graph.num_items))
        scores = (rt[rows] @ rw).toarray() / np.sqrt(di[rows, None] * di[None, :])
        scores[np.arange(len(rows)), rows] = 0.0  # an item is not its own neighbour
        k = min(top_k, graph.num_items - 1)
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        w = np.take_along_axis(scores, best, 1)
        keep = w > 0
        src.append(best[keep])
        dst.append(np.repeat(rows, k).reshape(len(rows), k)[keep])
        weight.append(w[keep])
    return np.concatenate(src), np.concatenate(dst), np.concatenate(weight)


def build_graph(graph: RecGraph, genres: pd.DataFrame, top_k: int) -> HeteroGraph:
    """Users, items and genres with interaction, genre and co-occurrence relations."""
    item, genre = np.nonzero(genres.to_numpy())
    src, dst, weight = cooccurrence(graph, top_k)
    return HeteroGraph.from_recgraph(
        graph,
        {ITEM_GENRE: (item, genre), GENRE_ITEM: (genre, item), CO_OCCURS: (src, dst, weight)},
        num_nodes={"genre": genres.shape[1]},
        features={"item": genres.to_numpy(dtype=np.float32)},
    )


# ---------------------------------------------------------------------- scorer and model
class ItemBiasScorer(Scorer):
    r""":math:`s(u, v) = u^\top v_{1..D} + v_{D+1}`: a dot product plus an item bias.

    The model hands over item embeddings with one extra column, the item's bias
    (how much the item is liked regardless of who looks at it).
    """

    def forward(self, u: Tensor, v: Tensor) -> Tensor:
        return (u * v[..., :-1]).sum(-1) + v[..., -1]

    def score_all(self, u: Tensor, items: Tensor) -> Tensor:
        return u @ items[:, :-1].T + items[:, -1]


def _symmetric_weights(src: Tensor, dst: Tensor, num_src: int, num_dst: int,
                       mask: Tensor | None = None) -> Tensor:
    r"""LightGCN's :math:`1/\sqrt{d_s d_d}` per edge, with masked edges removed."""
    keep = torch.ones_like(src, dtype=torch.float32) if mask is None else mask.float()
    ds = torch.zeros(num_src, device=src.device).index_add_(0, src, keep)
    dd = torch.zeros(num_dst, device=dst.device).index_add_(0, dst, keep)
    return keep * ds.clamp(min=1).rsqrt()[src] * dd.clamp(min=1).rsqrt()[dst]


class GenreGraphRecommender(Recommender):
    r"""Items attend over their genres; light propagation over interactions and co-occurrence.

    Ego item embedding :math:`x_i = e_i + \mathrm{GAT}(\{g_c : c \in \mathrm{genres}(i)\})`,
    where each genre node :math:`c` has a learned embedding :math:`g_c` and a
    :class:`~graphrec.nn.GATConv` weighs an item's genres by attention. Then, for
    :math:`l = 0 .. L-1` (no transforms, as in LightGCN),

    .. math::
        u^{(l+1)} = \sum_{i \in N(u)} \frac{i^{(l)}}{\sqrt{d_u d_i}}, \qquad
        i^{(l+1)} = \sum_{u \in N(i)} \frac{u^{(l)}}{\sqrt{d_i d_u}}
                  + \gamma \sum_{j \in C(i)} s_{ij}\, j^{(l)}

    with :math:`C(i)` the co-occurring items, :math:`s_{ij}` their similarities
    normalised over :math:`C(i)` and :math:`\gamma` learned (starting at 0, so training
    begins from LightGCN plus genres). Outputs are averaged over layers; the item bias
    is appended for :class:`ItemBiasScorer`.
    """

    def __init__(self, graph: RecGraph, hetero: HeteroGraph, dim: int = 64, num_layers: int = 2,
                 heads: int = 2, init_std: float = 0.1) -> None:
        super().__init__(graph, dim, ItemBiasScorer())
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.hetero = hetero
        self.num_layers = num_layers
        self.init_std = init_std
        self.user_emb = nn.Embedding(graph.num_users, dim)
        self.item_emb = nn.Embedding(graph.num_items, dim)
        self.genre_emb = nn.Embedding(hetero.num_nodes["genre"], dim)
        self.item_bias = nn.Embedding(graph.num_items, 1)
        # Bipartite genre → item attention; the item's own embedding enters the score.
        self.genre_attention = GATConv((dim, dim), dim // heads, heads=heads,
                                       add_self_loops=False, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))
        self.reset_parameters()
        users, items = (torch.from_numpy(a) for a in graph.edges())
        self.register_buffer("edge_users", users, persistent=False)
        self.register_buffer("edge_items", items, persistent=False)
        w = torch.from_numpy(hetero.relations[CO_OCCURS].weight)
        dst = torch.from_numpy(hetero.relations[CO_OCCURS].dst)
        total = torch.zeros(graph.num_items).index_add_(0, dst, w)
        self.register_buffer("cooc_weight", (w / total[dst]).unsqueeze(1), persistent=False)

    def reset_parameters(self) -> None:
        for emb in (self.user_emb, self.item_emb, self.genre_emb):
            nn.init.normal_(emb.weight, std=self.init_std)
        nn.init.zeros_(self.item_bias.weight)
        self.genre_attention.reset_parameters()
        # Small output weights: genres refine the item embedding rather than replace it.
        with torch.no_grad():
            self.genre_attention.lin_src.weight.mul_(self.init_std)

    def propagate(self, edge_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        dev = self.device
        h = self.hetero
        to_item, to_user = h.adjacency(INTERACTS, dev), h.adjacency(REV_INTERACTS, dev)
        # Relation edge ids are the RecGraph's edge ids, so the Trainer's mask applies as is.
        w = _symmetric_weights(self.edge_users, self.edge_items, self.num_users, self.num_items,
                               edge_mask).unsqueeze(1)
        w_item, w_user = w[to_item.edge_id], w[to_user.edge_id]
        cooc = h.adjacency(CO_OCCURS, dev)
        w_cooc = self.cooc_weight[cooc.edge_id]

        xi = self.item_emb.weight + self.genre_attention(
            (self.genre_emb.weight, self.item_emb.weight), h.adjacency(GENRE_ITEM, dev))
        xu = self.user_emb.weight
        out_u, out_i = xu, xi
        for _ in range(self.num_layers):
            new_u = spmm(to_user, w_user, xi.unsqueeze(1)).squeeze(1)
            new_i = (spmm(to_item, w_item, xu.unsqueeze(1))
                     + self.gamma * spmm(cooc, w_cooc, xi.unsqueeze(1))).squeeze(1)
            xu, xi = new_u, new_i
            out_u, out_i = out_u + xu, out_i + xi
        scale = 1.0 / (self.num_layers + 1)
        return out_u * scale, torch.cat([out_i * scale, self.item_bias.weight], dim=1)

    def regularized(self, users: Tensor, items: Tensor) -> list[Tensor]:
        return [self.user_emb(users), self.item_emb(items), self.item_bias(items)]


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("auto", "movielens", "synthetic"), default="auto",
                        help="'auto': MovieLens small if found, else synthetic (default)")
    parser.add_argument("--root", default=None,
                        help="folder holding movielens-small/ (default $GRAPHREC_DATA, "
                             "then ../shared/datasets)")
    parser.add_argument("--users", type=int, default=2000, help="synthetic users (default 2000)")
    parser.add_argument("--items", type=int, default=1500, help="synthetic items (default 1500)")
    parser.add_argument("--epochs", type=int, default=25, help="maximum training epochs (default 25)")
    parser.add_argument("--batch-size", type=int, default=4096, help="training edges per step")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    parser.add_argument("--dim", type=int, default=64, help="embedding size")
    parser.add_argument("--layers", type=int, default=2, help="propagation layers of both models")
    parser.add_argument("--heads", type=int, default=2, help="attention heads over genres")
    parser.add_argument("--cooc-k", type=int, default=10, help="co-occurring items per item")
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, split and training")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--quiet", action="store_true", help="no epoch lines or progress bars")
    args = parser.parse_args(argv)
    if not args.quiet:  # the trainers log one line per epoch
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    start = time.perf_counter()
    data, genres = load_dataset(args.dataset, args.root, args.users, args.items, args.seed)
    split = per_user_split(data.interactions, ratios=(0.8, 0.1, 0.1), seed=args.seed)
    graph = RecGraph(split.train)
    hetero = build_graph(graph, genres, args.cooc_k)
    print(f"{data.name}: {graph}")
    print(hetero)
    print(f"graph built in {time.perf_counter() - start:.1f} s")

    test_eval = Evaluator(exclude=[split.train, split.valid], ks=(20,))
    models = {
        "LightGCN": LightGCN(graph, dim=args.dim, num_layers=args.layers),
        "GenreGraph (custom)": GenreGraphRecommender(graph, hetero, dim=args.dim,
                                                     num_layers=args.layers, heads=args.heads),
    }
    results: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             patience=args.patience, seed=args.seed, device="cpu",
                             progress=not args.quiet)
        t0 = time.perf_counter()
        fit = Trainer(model, split.valid, config).fit()
        results[name] = test_eval.evaluate(model, split.test)
        results[name]["seconds"] = time.perf_counter() - t0
        results[name]["best_epoch"] = fit.best_epoch
    table = pd.DataFrame(results).T[["recall@20", "ndcg@20", "best_epoch", "seconds"]]
    print("\ntest set, full ranking:")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    return results


if __name__ == "__main__":
    main()
