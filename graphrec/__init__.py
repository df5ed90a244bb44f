"""graphrec: graph-based recommendation with sparse, edge-masked attention.

The flow of data: interaction log → :mod:`graphrec.data` (ids, filtering, splits,
:class:`~graphrec.data.RecGraph`) → :mod:`graphrec.nn` (sparse attention layers) →
:mod:`graphrec.models` → :mod:`graphrec.scoring` → training and evaluation.
"""

__version__ = "0.1.0"

import warnings as _warnings

# torch announces its sparse CSR support as "beta" on first use; graphrec relies on the
# parts of it that are stable, so the notice is noise to users.
_warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
_warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
