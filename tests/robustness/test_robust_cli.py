"""The ``graphrec`` command under misuse: one line ``graphrec: error: ...``, exit code 2,
nothing written; and run folders that reopen without their source data."""

from __future__ import annotations

import errno
import json

import pytest

from graphrec import atomic
from graphrec.cli import main

TINY = ["--set", "data.synthetic_users=40", "--set", "data.synthetic_items=30",
        "--set", "train.epochs=1", "--set", "train.progress=false", "--set", "model.dim=4",
        "--set", "model.name=mf"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphrec: error: "), err
    return lines[0]


def _metrics(text: str) -> dict:
    """Printed metrics without the timings, which differ from run to run."""
    return {k: v for k, v in json.loads(text).items() if not k.endswith("seconds")}


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished run on a CSV log, and that log."""
    root = tmp_path_factory.mktemp("cli")
    log = root / "log.csv"
    rows = [f"u{u},i{(u * 7 + k) % 25},{1 + (u + k) % 5}" for u in range(30) for k in range(8)]
    log.write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    out = root / "run"
    args = ["train", *TINY, "--set", "data.dataset=file", "--set", f"data.path={log}",
            "--out", str(out)]
    assert main(args) == 0
    return out, log


# ---------------------------------------------------------------------- user errors
BAD_COMMANDS = [
    (["train", "--set", "train.lr=-1"], "train.lr"),
    (["train", "--set", "train.device=cdua"], "train.device"),
    (["train", "--set", "train.monitor=recal@20"], "train.monitor"),
    (["train", "--set", "train.patience=-2"], "train.patience"),
    (["train", "--set", "data.ratios=[.nan,0.5,0.5]"], "data.ratios"),
    (["train", "--set", "train.ks=[1,"], "not valid YAML"),
    (["train", "--set", "nodot=1"], "section.key=value"),
    (["train", "--config", "{dir}"], "is a folder"),
    (["train", "--config", "{dir}/absent.yaml"], "no such config file"),
    (["train", "--set", "data.dataset=file", "--set", "data.path={dir}"], "is a folder"),
    (["train", "--set", "data.dataset=file", "--set", "data.path={dir}/none.csv"], "no such file"),
    (["train", "--bogus"], "unrecognized arguments"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
    (["--threads", "0", "train"], "--threads"),
    (["recommend", "--users", "1"], "--run"),
    (["recommend", "--run", "{dir}/none", "--users", "1"], "no such run folder"),
    (["evaluate", "--run", "{dir}"], "missing config.yaml"),
]


@pytest.mark.parametrize("argv,words", BAD_COMMANDS, ids=[" ".join(c[0])[:40] for c in BAD_COMMANDS])
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, words):
    out = tmp_path / "out"
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    if argv and argv[0] == "train":
        argv += [*TINY, "--out", str(out)]
    assert main(argv) == 2
    assert words in _error_line(capsys)
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize("content,words", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    ("train: {ks: " + "[" * 5000 + "]" * 5000 + "}\n", "deeper than"),
    ("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
     "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
     "train: {ks: *f}\n", "expands to more than"),
], ids=["binary", "deep", "aliases"])
def test_hostile_config_files(write, tmp_path, capsys, content, words):
    path = write("run.yaml", content)
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    line = _error_line(capsys)
    assert words in line and len(line) < 1000


@pytest.mark.parametrize("text,sets,words", [
    ("user,item,rating\n1,2,1\n2,3,2\n", ["data.rating_col=rating", "data.rating_threshold=5"],
     ["data.rating_threshold", "removes all 2 rows"]),
    ("user,item\n1,2\n2,3\n", ["data.min_user_interactions=5"], ["core", "removes all"]),
    ("user,item\n1,2,3\n2,3\n", [], ["line 2", "more fields"]),
    ("user,item\n1,2\n", ["data.split=temporal"], ["needs timestamps"]),
], ids=["threshold removes all", "k-core removes all", "extra field", "no timestamps"])
def test_data_that_leave_nothing_to_train_on(write, tmp_path, capsys, text, sets, words):
    path = write("log.csv", text)
    args = ["train", *TINY, "--set", "data.dataset=file", "--set", f"data.path={path}"]
    for s in sets:
        args += ["--set", s]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    line = _error_line(capsys)
    for word in words:
        assert word in line, line


def test_latin1_data_file(write, tmp_path, capsys):
    path = write("log.csv", "user,item\ncafé,1\n".encode("latin-1"))
    args = ["train", *TINY, "--set", "data.dataset=file", "--set", f"data.path={path}"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    assert "log.csv, line 2" in _error_line(capsys)


# ---------------------------------------------------------------------- never destroy work
def test_an_earlier_run_is_not_replaced(trained, capsys):
    out, log = trained
    before = _snapshot(out)
    args = ["train", *TINY, "--set", "data.dataset=file", "--set", f"data.path={log}"]
    assert main([*args, "--out", str(out)]) == 2
    assert "--overwrite" in _error_line(capsys)
    assert _snapshot(out) == before


def test_overwrite_replaces_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    (out / "notes.txt").write_text("keep me")
    assert main(["train", *TINY, "--set", "model.dim=6", "--out", str(out), "--overwrite"]) == 0
    assert "dim: 6" in (out / "config.yaml").read_text()
    assert (out / "notes.txt").read_text() == "keep me"
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


def test_a_killed_run_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    import graphrec.training.loop as train_module  # where the epoch loop looks it up

    real = train_module.write_metrics
    calls = []

    def killed_after_first_epoch(run_dir, history):
        real(run_dir, history)
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "write_metrics", killed_after_first_epoch)
    args = ["train", *TINY, "--set", "train.epochs=2", "--out", str(out)]
    assert main(args) == 130
    assert capsys.readouterr().err.strip() == "graphrec: interrupted"
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "failed" and not (out / ".lock").exists()
    assert not (out / "results.json").exists()
    assert main(args) == 2  # not silently restarted
    _error_line(capsys)
    assert main([*args, "--set", "train.resume=true"]) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "finished" and len(manifest["resumed"]) == 1
    assert len(json.loads((out / "metrics.json").read_text())) == 2
    assert not [p for p in out.rglob("*.tmp")]


def test_a_full_disk_is_an_error_and_leaves_no_temporaries(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    assert main(["train", *TINY, "--out", str(out)]) == 2
    assert "No space left on device" in _error_line(capsys)
    assert not out.exists()  # nothing half-made is left


# ---------------------------------------------------------------------- reopening a run
def test_a_run_reopens_without_its_source(trained, capsys, tmp_path, monkeypatch):
    out, log = trained
    assert main(["evaluate", "--run", str(out)]) == 0
    first = _metrics(capsys.readouterr().out)
    hidden = tmp_path / "elsewhere.csv"
    log.rename(hidden)
    monkeypatch.chdir(tmp_path)
    try:
        assert main(["evaluate", "--run", str(out)]) == 0
        assert _metrics(capsys.readouterr().out) == first
        assert main(["recommend", "--run", str(out), "--users", "u3", "--k", "2", "--csv"]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[0] == "user,rank,item,score" and len(lines) == 3
    finally:
        hidden.rename(log)


def test_a_changed_source_is_reported_and_ignored(trained, capsys):
    out, log = trained
    assert main(["evaluate", "--run", str(out)]) == 0
    first = capsys.readouterr()
    assert "warning" not in first.err
    original = log.read_text()
    try:
        log.write_text(original + "u99,i1,5\n")
        assert main(["evaluate", "--run", str(out)]) == 0
        now = capsys.readouterr()
        assert _metrics(now.out) == _metrics(first.out)
        assert "graphrec: warning:" in now.err and "log.csv changed" in now.err
    finally:
        log.write_text(original)


def test_the_manifest_records_versions_times_and_sources(trained):
    out, log = trained
    manifest = json.loads((out / "run.json").read_text())
    assert set(manifest["versions"]) >= {"graphrec", "torch", "python"}
    assert manifest["started"] <= manifest["finished"]
    assert [s["path"] for s in manifest["sources"]] == [str(log.resolve())]
    assert manifest["split"]["sizes"]["train"] > 0


@pytest.mark.parametrize("extra,words", [
    (["--users", "nobody"], "unknown user id"),
    (["--users", "u1", "--k", "0"], "--k"),
    (["--users", "u1", "--k", "-3"], "--k"),
], ids=["unknown user", "k zero", "k negative"])
def test_bad_recommend_requests(trained, capsys, extra, words):
    out, _ = trained
    assert main(["recommend", "--run", str(out), *extra]) == 2
    assert words in _error_line(capsys)


def test_a_truncated_checkpoint_is_an_error(trained, capsys, tmp_path):
    out, _ = trained
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = (copy / "best.pt").read_bytes()
    (copy / "best.pt").write_bytes(data[: len(data) // 3])
    assert main(["evaluate", "--run", str(copy)]) == 2
    line = _error_line(capsys)
    assert "best.pt" in line and "cannot read the checkpoint" in line


def test_other_warnings_pass_through(monkeypatch, capsys):
    import warnings

    import graphrec.cli as cli

    def warn_and_succeed(argv):
        warnings.warn("careful", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(cli, "_dispatch", warn_and_succeed)
    with pytest.warns(UserWarning, match="careful"):
        assert main(["evaluate", "--run", "x"]) == 0


def test_a_reopened_run_exports_without_its_source(trained, tmp_path):
    from graphrec.experiment import load_run

    out, log = trained
    hidden = tmp_path / "elsewhere.csv"
    log.rename(hidden)
    try:
        _, split, model = load_run(out)
        model.export_embeddings(tmp_path / "emb.parquet")
    finally:
        hidden.rename(log)
    import pandas as pd
    table = pd.read_parquet(tmp_path / "emb.parquet")
    assert set(table[table["kind"] == "user"]["id"]) == {f"u{u}" for u in range(30)}
    assert split.train.user_map.raw[0] == "u0"


def test_resuming_with_another_model_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    before = _snapshot(out)
    args = ["train", *TINY, "--set", "model.dim=8", "--set", "train.resume=true"]
    assert main([*args, "--out", str(out)]) == 2
    assert "model.dim" in _error_line(capsys)
    assert _snapshot(out) == before


def test_a_split_without_test_rows_is_refused(write, tmp_path, capsys):
    path = write("log.csv", "user,item\n1,2\n2,3\n")
    args = ["train", *TINY, "--set", "data.dataset=file", "--set", f"data.path={path}"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    assert "leaves test empty" in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_a_model_error_after_the_data_leaves_no_run_folder(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", *TINY, "--set", "model.name=social_gat", "--out", str(out)]) == 2
    assert "needs social edges" in _error_line(capsys)
    assert not out.exists()


def test_real_dataset_sources_are_fingerprinted(data_folder):
    from graphrec.config import load_config
    from graphrec.experiment import source_files
    from graphrec.run_folder import fingerprint

    root = data_folder("filmtrust").parent
    cfg = load_config(None, ["data.dataset=filmtrust", f"data.root={root}"])
    files = source_files(cfg.data)
    assert sorted(f.name for f in files) == ["ratings.txt", "trust.txt"]
    assert all(fingerprint(f)["size"] == f.stat().st_size for f in files)


def test_a_full_disk_after_training_keeps_the_checkpoints(tmp_path, capsys, monkeypatch):
    import graphrec.experiment as experiment

    real = experiment.atomic_write_bytes

    def full_at_results(path, data):
        if path.name == "results.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(experiment, "atomic_write_bytes", full_at_results)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 2
    assert "No space left on device" in _error_line(capsys)
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert (out / "best.pt").exists() and (out / "last.pt").exists()
    assert not (out / "results.json").exists() and not (out / ".lock").exists()
    monkeypatch.undo()
    assert main(["train", *TINY, "--set", "train.resume=true", "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
