import json

import pytest

from graphrec.cli import main

TINY = ["--set", "data.synthetic_users=120", "--set", "data.synthetic_items=90",
        "--set", "train.epochs=2", "--set", "train.progress=false", "--set", "model.dim=8"]


def test_train_evaluate_recommend_round_trip(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--set", "model.name=gat", "--out", str(out)]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert {"best_epoch", "valid", "test"} <= set(trained)
    assert (out / "best.pt").exists() and (out / "results.json").exists()

    assert main(["evaluate", "--run", str(out)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["recall@20"] == trained["test"]["recall@20"]

    assert main(["recommend", "--run", str(out), "--users", "0", "5", "--k", "3", "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "user,rank,item,score" and len(lines) == 1 + 2 * 3


def test_config_errors_are_reported_without_traceback(capsys):
    assert main(["train", "--set", "model.nam=gat", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['nam']" in err and "Traceback" not in err


def test_graphrec_rating_run_round_trip_with_social_edges(tmp_path, capsys):
    out = tmp_path / "graphrec"
    args = ["train", *TINY, "--set", "model.name=graphrec", "--set", "data.social=dataset",
            "--set", "data.split=random", "--out", str(out)]
    assert main(args) == 0
    trained = json.loads(capsys.readouterr().out)
    assert set(trained["test"]) == {"rmse", "mae"} and trained["test"]["rmse"] > 0

    assert main(["evaluate", "--run", str(out)]) == 0
    # CUDA's scatter-adds may sum in another order: equal up to float rounding
    assert json.loads(capsys.readouterr().out) == pytest.approx(trained["test"], rel=1e-6)

    assert main(["recommend", "--run", str(out), "--users", "0", "--k", "4", "--csv"]) == 0
    rows = [line.split(",") for line in capsys.readouterr().out.strip().splitlines()[1:]]
    scores = [float(r[3]) for r in rows]
    assert len(rows) == 4 and scores == sorted(scores, reverse=True)


def test_social_models_without_social_edges_are_refused(capsys):
    assert main(["train", *TINY, "--set", "model.name=social_gat", "--out", "x"]) == 2
    assert "needs social edges" in capsys.readouterr().err


def test_version(capsys):
    import graphrec

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"graphrec {graphrec.__version__}"


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom graphrec.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("False")


@pytest.mark.parametrize("before", [True, False])
def test_threads_is_accepted_before_or_after_the_subcommand(before, capsys):
    import torch

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        args = ["train", "--print-config"]
        args = ["--threads", "1", *args] if before else [*args, "--threads", "1"]
        assert main(args) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
