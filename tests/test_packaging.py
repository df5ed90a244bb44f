"""Packaging: the core imports without the optional libraries, and their features say which extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from graphrec._optional import require

ROOT = Path(__file__).resolve().parents[1]

# A child interpreter in which the optional libraries cannot be imported.
BLOCKED = """
import sys
for name in ("torch_geometric", "networkx", "matplotlib"):
    sys.modules[name] = None
"""


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKED + code], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_core_imports_and_trains_without_optional_libraries():
    done = run_blocked("""
import graphrec.cli, graphrec.data, graphrec.datasets, graphrec.evaluate, graphrec.experiment
import graphrec.explain, graphrec.models, graphrec.nn, graphrec.train
from graphrec.data import RecGraph
from graphrec.data.splits import per_user_split
from graphrec.datasets import synthetic
from graphrec.models import LightGCN
from graphrec.train import TrainConfig, Trainer
split = per_user_split(synthetic(num_users=60, num_items=40, seed=0).interactions, seed=0)
model = LightGCN(RecGraph(split.train), dim=8)
Trainer(model, split.valid, TrainConfig(epochs=1, progress=False)).fit()
print("ok")
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def test_optional_features_name_their_extra():
    done = run_blocked("""
from graphrec.data import RecGraph
from graphrec.datasets import synthetic
graph = RecGraph(synthetic(num_users=30, num_items=20, seed=0).interactions)
for call in (graph.to_pyg, graph.to_networkx, lambda: __import__("graphrec.explain.plots")):
    try:
        call()
        print("no error")
    except ImportError as exc:
        print(exc)
""")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3
    for line, extra in zip(lines, ("pyg", "graph", "plots")):
        assert f'pip install "graphrec[{extra}]"' in line, line


def test_require_returns_the_module_when_installed():
    assert require("json", "none", "test").dumps([1]) == "[1]"


def test_pyproject_declares_extras_and_ships_py_typed():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = " ".join(meta["project"]["dependencies"])
    assert "torch>=" in deps and "==" not in deps
    for lib in ("torch-geometric", "networkx", "matplotlib"):
        assert lib not in deps
    extras = meta["project"]["optional-dependencies"]
    assert {"pyg", "graph", "plots", "tensorboard"} <= set(extras)
    assert "graphrec[pyg,graph,plots,tensorboard]" in extras["dev"]
    assert "graphrec[pyg,graph,plots,tensorboard]" in extras["all"]
    assert "py.typed" in meta["tool"]["setuptools"]["package-data"]["graphrec"]
    assert (ROOT / "graphrec" / "py.typed").is_file() and (ROOT / "LICENSE").is_file()
