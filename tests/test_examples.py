"""The example scripts: each documents itself with --help, and the real-data ones run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_has_help(path, capsys):
    with pytest.raises(SystemExit) as exc:
        load(path).main(["--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.slow
def test_movielens_example_trains_all_three_models(real_data_dir):
    if not (real_data_dir / "movielens-small").is_dir():
        pytest.skip(f"{real_data_dir / 'movielens-small'} is absent")
    results = load(EXAMPLES[[p.stem for p in EXAMPLES].index("movielens")]).main(
        ["--root", str(real_data_dir), "--epochs", "2", "--quiet", "--dim", "16"])
    assert set(results) == {"mf", "lightgcn", "gat"}
    for r in results.values():
        assert 0.0 < r["recall@20"] < 1.0 and r["best_epoch"] in (1, 2)


@pytest.mark.slow
def test_gowalla_example_runs_briefly(real_data_dir, tmp_path):
    if not (real_data_dir / "gowalla").is_dir():
        pytest.skip(f"{real_data_dir / 'gowalla'} is absent")
    summary = load(EXAMPLES[[p.stem for p in EXAMPLES].index("gowalla")]).main(
        ["--root", str(real_data_dir), "--model", "mf", "--epochs", "1", "--quiet",
         "--batch-size", "65536", "--lr", "0.01", "--out", str(tmp_path)])
    assert summary["best_epoch"] == 1 and (tmp_path / "best.pt").exists()
    assert 0.0 < summary["test"]["recall@20"] < 1.0


def test_closed_form_example_chooses_on_validation(capsys):
    results = load(EXAMPLES[[p.stem for p in EXAMPLES].index("closed_form")]).main(
        ["--users", "300", "--items", "200", "--models", "gfcf", "itemknn", "ials"])
    assert set(results) == {"gfcf", "itemknn", "ials"}
    for r in results.values():
        assert 0.0 < r["recall@20"] < 1.0
    assert results["gfcf"]["chosen"]["ideal_weight"] in (0.1, 0.3, 0.6)
    assert "| gfcf |" in capsys.readouterr().out


def test_quickstart_trains_the_three_models_and_prints_one_table(capsys):
    results = load(EXAMPLES[[p.stem for p in EXAMPLES].index("quickstart")]).main(
        ["--users", "150", "--items", "100", "--epochs", "2", "--dim", "8", "--threads", "1",
         "--quiet"])
    assert list(results) == ["MF-BPR", "LightGCN", "GAT (attention)"]
    for r in results.values():
        assert 0.0 < r["recall@20"] <= 1.0 and 0.0 < r["ndcg@20"] <= 1.0 and r["seconds"] > 0
    table = capsys.readouterr().out.split("model ")[-1].splitlines()
    assert table[0].split() == ["Recall@20", "NDCG@20", "seconds"]
    assert [line.split()[0] for line in table[1:4]] == ["MF-BPR", "LightGCN", "GAT"]
