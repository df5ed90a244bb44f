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
    saved = json.loads((out / "results.json").read_text())  # full precision
    assert evaluated["recall@20"] == saved["test"]["recall@20"]
    assert trained["test"]["recall@20"] == pytest.approx(saved["test"]["recall@20"], rel=1e-3)

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
    saved = json.loads((out / "results.json").read_text())
    assert json.loads(capsys.readouterr().out) == pytest.approx(saved["test"], rel=1e-6)

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


def _significant_digits(value: float) -> int:
    return len(f"{value:e}".split("e")[0].replace(".", "").replace("-", "").rstrip("0"))


def test_train_output_redirected_is_epoch_lines_a_rounded_summary_and_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    # progress on (the default); capsys streams are no terminal, as a file is not
    tiny = [a for pair in zip(TINY[::2], TINY[1::2]) if pair[1] != "train.progress=false"
            for a in pair]
    args = ["train", *tiny, "--set", "train.epochs=3", "--set", "train.patience=0",
            "--set", "model.name=mf", "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "\r" not in captured.err and "it/s" not in captured.err  # no tqdm bar
    assert [ln.split()[:2] for ln in lines[:-1]] == [["epoch", "1"], ["epoch", "2"], ["epoch", "3"]]
    assert all("loss" in ln and ln.endswith(" s") for ln in lines[:-1])
    assert lines[-1] == (f"graphrec: run saved to {out} "
                         f"(results.json, metrics.jsonl, best.pt)")
    summary = json.loads(captured.out)  # stdout stays one JSON document
    numbers = [v for part in ("valid", "test") for v in summary[part].values()
               if isinstance(v, float)]
    assert numbers and all(_significant_digits(v) <= 4 for v in numbers)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_train_tensorboard_without_the_package_is_a_config_error(monkeypatch, capsys, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    out = tmp_path / "run"
    assert main(["train", *TINY, "--set", "train.tensorboard=true", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphrec: error: train.tensorboard: needs tensorboard")
    assert 'pip install "graphrec[tensorboard]"' in err and not out.exists()


def test_evaluate_scores_with_the_run_s_eval_score_backend(tmp_path, capsys, evaluator_backends):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--set", "model.name=mf", "--set", "train.device=cpu",
                 "--set", "eval.score_backend=numpy", "--out", str(out)]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert evaluator_backends and set(evaluator_backends) == {"numpy"}
    evaluator_backends.clear()
    assert main(["evaluate", "--run", str(out)]) == 0
    assert evaluator_backends == ["numpy"]
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["recall@20"] == pytest.approx(trained["test"]["recall@20"], rel=1e-3)
