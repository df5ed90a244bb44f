"""The tutorial notebooks: stored without outputs, listed in the README, and run without error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))


def tracked_notebooks() -> list[Path]:
    """Notebooks git knows about, plus any others in the folder (about to be added)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--", "notebooks/*.ipynb"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = []
    return sorted({ROOT / p for p in listed} | set(NOTEBOOKS))


def test_the_four_tutorials_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_explore.ipynb", "02_train_compare.ipynb",
                                           "03_attention.ipynb", "04_custom_graph.ipynb"]


@pytest.mark.parametrize("path", tracked_notebooks(), ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs; clear them"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_readme_lists_every_notebook():
    readme = (FOLDER / "README.md").read_text()
    for path in NOTEBOOKS:
        assert path.name in readme, f"notebooks/README.md does not mention {path.name}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    before = sorted(p.name for p in FOLDER.iterdir())
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(FOLDER)}})
    client.execute()  # raises CellExecutionError naming the cell on the first error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert sorted(p.name for p in FOLDER.iterdir()) == before, "the notebook wrote files"
