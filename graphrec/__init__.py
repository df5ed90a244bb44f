"""graphrec: graph-based recommendation with sparse, edge-masked attention.

The flow of data: interaction log → :mod:`graphrec.data` (ids, filtering, splits,
:class:`~graphrec.data.RecGraph`) → :mod:`graphrec.nn` (sparse attention layers) →
:mod:`graphrec.models` → :mod:`graphrec.scoring` → training and evaluation.
"""

__version__ = "0.1.0"

