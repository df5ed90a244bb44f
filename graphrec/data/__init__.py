"""Interaction logs and social edges → validated, id-mapped, split data → RecGraph."""

from graphrec.data.adjacency import Adjacency
from graphrec.data.errors import DataError
from graphrec.data.graph import RecGraph, TorchGraph
from graphrec.data.idmap import IdMap
from graphrec.data.interactions import ColumnMap, Interactions, LoadReport, load_interactions

__all__ = [
    "Adjacency", "ColumnMap", "DataError", "IdMap", "Interactions", "LoadReport",
    "RecGraph", "TorchGraph", "load_interactions",
]
