"""RecGraph: the user–item bipartite graph (and optional user–user graph) of a training set.

Every later stage reads its graphs from here. Interaction edges have stable ids: edge
``e`` is the ``e``-th stored entry of the user × item CSR matrix :attr:`RecGraph.ui`
(rows sorted by user, then item). Every other representation (the item × user CSR, torch
tensors, :class:`~graphrec.data.adjacency.Adjacency` objects, PyG/DGL/networkx graphs)
carries or keeps that id, so a boolean edge mask built against one is valid in all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from graphrec.data.adjacency import Adjacency
from graphrec.data.csr import csr_tensor
from graphrec.data.errors import DataError
from graphrec.data.idmap import IdMap

if TYPE_CHECKING:
    from graphrec.data.interactions import Interactions
    from graphrec.data.social import SocialEdges


@dataclass
class TorchGraph:
    """A :class:`RecGraph` as torch tensors on one device.

    Attributes:
        edge_index: ``(2, E)`` (user, item) of each interaction edge, in edge-id order.
        ui, iu: ``torch.sparse_csr_tensor`` user × item and item × user (values: weights).
        item_to_user: adjacency whose destinations are users and sources items (the
            messages that update user embeddings); ``edge_id`` holds interaction ids.
        user_to_item: the reverse direction; the same interaction ids.
        social: user ← user adjacency with social edge ids, or ``None``.
        norm_adj: symmetric-normalised ``(U+I) × (U+I)`` CSR (users first), or ``None``.
        norm_adj_edges: the interaction edge id of every stored ``norm_adj`` entry, once
            propagation with an edge mask has needed it (else ``None``).
    """

    num_users: int
    num_items: int
    edge_index: Tensor
    ui: Tensor
    iu: Tensor
    item_to_user: Adjacency
    user_to_item: Adjacency
    social: Adjacency | None
    norm_adj: Tensor | None
    # Derived on demand by graphrec.models.propagation; to() starts a copy without them.
    norm_adj_edges: Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        return self.edge_index.device

    def to(self, device: torch.device | str) -> TorchGraph:
        """A copy on ``device`` (``self`` when already there)."""
        dev = torch.device(device)
        if dev == self.device:
            return self
        return TorchGraph(
            self.num_users, self.num_items, self.edge_index.to(dev), self.ui.to(dev),
            self.iu.to(dev), self.item_to_user.to(dev), self.user_to_item.to(dev),
            None if self.social is None else self.social.to(dev),
            None if self.norm_adj is None else self.norm_adj.to(dev))


class RecGraph:
    """User–item interaction graph of a training set, with an optional social graph.

    Args:
        interactions: the training interactions (their maps define all users and items;
            users or items without training edges are isolated nodes).
        social: optional user–user edges over the same user ids.
        weighted: use the interactions' ``weight`` column as edge values (else ones).

    Repeated (user, item) pairs are merged into one edge (with ``weighted``, their
    weights are added; otherwise the edge's value stays one).
    """

    def __init__(
        self,
        interactions: Interactions,
        social: SocialEdges | None = None,
        weighted: bool = False,
    ) -> None:
        self.user_map: IdMap = interactions.user_map
        self.item_map: IdMap = interactions.item_map
        self.num_users = interactions.num_users
        self.num_items = interactions.num_items
        w = interactions.weight if weighted and interactions.weight is not None else None
        values = np.ones(len(interactions), dtype=np.float32) if w is None else w.astype(np.float32)
        ui = sp.csr_matrix((values, (interactions.user, interactions.item)),
                           shape=(self.num_users, self.num_items), dtype=np.float32)
        ui.sum_duplicates()
        ui.sort_indices()
        if w is None:
            # An unweighted graph has edge values one; summing repeated rows gave counts.
            ui.data[:] = 1.0
        self.ui: sp.csr_matrix = ui
        # Transposing a matrix whose values are edge ids tells where each edge lands.
        # (+1 keeps edge 0 from being an explicit zero that a conversion could drop.)
        ids = sp.csr_matrix((np.arange(1, ui.nnz + 1, dtype=np.int64), ui.indices, ui.indptr), shape=ui.shape)
        ids_t = ids.T.tocsr()
        ids_t.sort_indices()
        self.iu_edge_id: np.ndarray = ids_t.data.astype(np.int64) - 1
        self.iu: sp.csr_matrix = sp.csr_matrix(
            (ui.data[self.iu_edge_id], ids_t.indices, ids_t.indptr), shape=(self.num_items, self.num_users))
        self.social: sp.csr_matrix | None = None
        if social is not None:
            if social.num_users != self.num_users:
                raise DataError(f"social edges are over {social.num_users} users but the "
                                f"interactions have {self.num_users}; load them with the same user map")
            for side in ("src", "dst"):
                ends = np.asarray(getattr(social, side))
                if len(ends) and (ends.min() < 0 or ends.max() >= self.num_users):
                    raise DataError(f"social edge {side} users must lie in [0, {self.num_users}), "
                                    f"found {ends.min()}..{ends.max()}")
            s = sp.csr_matrix((social.weight if social.weight is not None else
                               np.ones(len(social.src), dtype=np.float32),
                               (social.src, social.dst)), shape=(self.num_users, self.num_users),
                              dtype=np.float32)
            s.sum_duplicates()
            s.sort_indices()
            self.social = s

    # ------------------------------------------------------------------ sizes and views
    @property
    def num_edges(self) -> int:
        """Number of user–item interaction edges."""
        return int(self.ui.nnz)

    @property
    def num_social_edges(self) -> int:
        return 0 if self.social is None else int(self.social.nnz)

    @property
    def num_nodes(self) -> int:
        """Users plus items (the size of the homogeneous view)."""
        return self.num_users + self.num_items

    def __repr__(self) -> str:
        s = f"RecGraph({self.num_users} users, {self.num_items} items, {self.num_edges} interactions"
        if self.social is not None:
            s += f", {self.num_social_edges} social edges"
        return s + ")"

    def user_degree(self) -> np.ndarray:
        """Training interactions per user."""
        return np.diff(self.ui.indptr)

    def item_degree(self) -> np.ndarray:
        """Training interactions per item."""
        return np.diff(self.iu.indptr)

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """``(users, items)`` of every interaction edge, in edge-id order."""
        return np.repeat(np.arange(self.num_users), self.user_degree()), self.ui.indices.astype(np.int64)

    def social_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """``(src, dst)`` of every social edge, in social edge-id order."""
        if self.social is None:
            raise DataError("this RecGraph has no social graph; pass social edges when building it")
        return np.repeat(np.arange(self.num_users), np.diff(self.social.indptr)), self.social.indices.astype(np.int64)

    def bipartite_edge_index(self, both_directions: bool = True) -> np.ndarray:
        """Edges of the homogeneous view (users ``0..U-1``, items ``U..U+I-1``).

        Edge ``e < E`` is interaction ``e`` as user → item; with ``both_directions``,
        edge ``E + e`` is the same interaction as item → user. A mask ``m`` over
        interactions becomes ``np.concatenate([m, m])`` in this view.
        """
        u, i = self.edges()
        i = i + self.num_users
        if not both_directions:
            return np.stack([u, i])
        return np.stack([np.concatenate([u, i]), np.concatenate([i, u])])

    def normalized_adjacency(self) -> sp.csr_matrix:
        r"""The symmetric-normalised bipartite adjacency used by LightGCN-style propagation.

        .. math::
            \hat A = D^{-1/2} \begin{pmatrix} 0 & R \\ R^\top & 0 \end{pmatrix} D^{-1/2}

        with :math:`R` the user × item matrix and :math:`D` the node degrees (isolated
        nodes keep a zero row instead of dividing by zero). Users come first.
        """
        # Built block by block from the two CSRs already at hand: the user rows are ui with
        # item columns shifted by U, the item rows are iu. Going through scipy's bmat and
        # diagonal products instead costs several sorts and copies of the 2E entries
        # (most of to_torch's time on large graphs).
        nu = self.num_users
        du = np.diff(self.ui.indptr)
        di = np.diff(self.iu.indptr)
        inv_u = np.where(du > 0, 1.0 / np.sqrt(np.maximum(du, 1)), 0.0).astype(np.float32)
        inv_i = np.where(di > 0, 1.0 / np.sqrt(np.maximum(di, 1)), 0.0).astype(np.float32)
        users, items = self.edges()
        values = inv_u[users] * inv_i[items]  # one value per interaction, edge-id order
        index_dtype = np.int64 if self.num_nodes + 2 * self.num_edges > 2**31 - 1 else np.int32
        indptr = np.concatenate([self.ui.indptr, self.ui.indptr[-1] + self.iu.indptr[1:]])
        indices = np.concatenate([self.ui.indices.astype(index_dtype) + nu,
                                  self.iu.indices.astype(index_dtype)])
        data = np.concatenate([values, values[self.iu_edge_id]])
        adj = sp.csr_matrix((data, indices, indptr.astype(index_dtype)),
                            shape=(self.num_nodes, self.num_nodes))
        adj.has_sorted_indices = True  # both blocks have sorted rows
        return adj

    # ------------------------------------------------------------------ torch
    def to_torch(self, device: torch.device | str = "cpu", normalized: bool = True) -> TorchGraph:
        """Tensors of this graph on ``device`` (see :class:`TorchGraph`)."""
        dev = torch.device(device)
        u, i = self.edges()
        ui = _csr_to_torch(self.ui, dev)
        iu = _csr_to_torch(self.iu, dev)
        num_e = self.num_edges
        item_to_user = Adjacency(
            ui.crow_indices(), ui.col_indices(),
            torch.arange(num_e, device=dev), self.num_items, self.num_users, ui.values())
        user_to_item = Adjacency(
            iu.crow_indices(), iu.col_indices(),
            torch.from_numpy(self.iu_edge_id).to(dev), self.num_users, self.num_items, iu.values())
        social = None
        if self.social is not None:
            # Social messages flow src → dst, so destination-major storage is the transpose.
            st = self.social.T.tocsr()
            ids = sp.csr_matrix((np.arange(self.social.nnz, dtype=np.int64) + 1,
                                 self.social.indices, self.social.indptr), shape=self.social.shape).T.tocsr()
            ids.sort_indices()
            st.sort_indices()
            social = Adjacency(
                torch.from_numpy(st.indptr.astype(np.int64)).to(dev),
                torch.from_numpy(st.indices.astype(np.int64)).to(dev),
                torch.from_numpy(ids.data - 1).to(dev), self.num_users, self.num_users,
                torch.from_numpy(st.data).to(dev))
        return TorchGraph(
            num_users=self.num_users, num_items=self.num_items,
            edge_index=torch.from_numpy(np.stack([u, i])).to(dev),
            ui=ui, iu=iu, item_to_user=item_to_user, user_to_item=user_to_item, social=social,
            norm_adj=(_csr_to_torch(self.normalized_adjacency(), dev, compact_indices=True)
                      if normalized else None),
        )

    # ------------------------------------------------------------------ other libraries
    def to_pyg(self, reverse: bool = False) -> Any:
        """A PyG ``HeteroData`` (see :func:`graphrec.data.convert.to_pyg`)."""
        from graphrec.data.convert import to_pyg

        return to_pyg(self, reverse=reverse)

    def to_dgl(self) -> Any:
        """A DGL heterograph (see :func:`graphrec.data.convert.to_dgl`)."""
        from graphrec.data.convert import to_dgl

        return to_dgl(self)

    def to_networkx(self) -> Any:
        """A networkx graph (see :func:`graphrec.data.convert.to_networkx`)."""
        from graphrec.data.convert import to_networkx

        return to_networkx(self)


def _csr_to_torch(m: sp.csr_matrix, device: torch.device, compact_indices: bool = False) -> Tensor:
    return csr_tensor(
        torch.from_numpy(m.indptr.astype(np.int64)).to(device),
        torch.from_numpy(m.indices.astype(np.int64)).to(device),
        torch.from_numpy(m.data.astype(np.float32)).to(device),
        m.shape, compact_indices=compact_indices,
    )
