"""Import optional libraries on first use, with an error that names the extra to install.

torch-geometric, networkx, matplotlib and tensorboard serve only some features
(converters, plots, TensorBoard logs), so they are extras of the package rather than
requirements; the core never imports them at module level.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise an ImportError saying which extra provides it.

    Args:
        module: the module to import, e.g. ``"torch_geometric.data"``.
        extra: the graphrec extra that installs it, e.g. ``"pyg"``.
        feature: what needed it, for the message, e.g. ``"RecGraph.to_pyg()"``.

    Returns:
        The imported module.

    Raises:
        ImportError: the module is not installed (or fails to import).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise ImportError(
            f"{feature} needs {top}, which is not installed: "
            f"pip install \"graphrec[{extra}]\" (or install {top} yourself)") from exc
