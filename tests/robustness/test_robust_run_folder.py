"""Run folders: no earlier run replaced, one writer at a time, no half-written files."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest
import torch

from graphrec import atomic
from graphrec.atomic import atomic_path, atomic_write_bytes
from graphrec.data import Interactions
from graphrec.run_folder import (
    LOCK,
    Manifest,
    RunError,
    changed_sources,
    claim,
    fingerprint,
    load_checkpoint,
)
from graphrec.train import save_checkpoint


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _earlier_run(folder):
    folder.mkdir(exist_ok=True)
    (folder / "best.pt").write_bytes(b"weights of the earlier run")
    (folder / "results.json").write_text('{"test": 1}')
    return _snapshot(folder)


def test_an_empty_folder_is_claimed_and_released(tmp_path):
    with claim(tmp_path / "run") as manifest:
        assert (tmp_path / "run" / LOCK).exists()
        assert manifest.status == "running"
    saved = Manifest.load(tmp_path / "run")
    assert saved.status == "finished" and saved.finished and saved.versions["torch"]
    assert not (tmp_path / "run" / LOCK).exists()


def test_an_earlier_run_is_refused_and_untouched(tmp_path):
    before = _earlier_run(tmp_path / "run")
    with pytest.raises(RunError, match="already holds files.*--overwrite"):
        with claim(tmp_path / "run"):
            pytest.fail("claimed a folder holding an earlier run")
    assert _snapshot(tmp_path / "run") == before


def test_overwrite_replaces_only_the_run_files(tmp_path):
    _earlier_run(tmp_path / "run")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with claim(tmp_path / "run", overwrite=True):
        pass
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["notes.txt", "run.json"]


def test_resume_keeps_the_run_files(tmp_path):
    before = _earlier_run(tmp_path / "run")
    with claim(tmp_path / "run", resume=True) as manifest:
        assert manifest.status == "running"
    after = _snapshot(tmp_path / "run")
    assert {k: v for k, v in after.items() if k.name != "run.json"} == before


def test_a_file_in_place_of_the_folder(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(RunError, match="not a folder"):
        with claim(tmp_path / "run"):
            pass


def test_a_second_writer_is_refused(tmp_path):
    folder = tmp_path / "run"
    with claim(folder):
        (folder / "best.pt").write_bytes(b"first writer")
        with pytest.raises(RunError, match="in use by process"):
            with claim(folder, resume=True):
                pytest.fail("two writers in one folder")
        with pytest.raises(RunError, match="in use"):
            with claim(folder, overwrite=True):
                pytest.fail("overwrite took a folder in use")
        assert (folder / "best.pt").read_bytes() == b"first writer"
    assert not (folder / LOCK).exists()


def test_a_second_process_is_refused(tmp_path):
    folder = tmp_path / "run"
    code = ("import sys; from graphrec.run_folder import claim, RunError\n"
            "try:\n    claim(sys.argv[1], resume=True).__enter__()\n"
            "except RunError as e:\n    print(e); sys.exit(3)\n")
    with claim(folder):
        done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                              text=True, timeout=120)
    assert done.returncode == 3 and "in use by process" in done.stdout


def test_a_stale_lock_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import json
    import socket
    (folder / LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with claim(folder, resume=True):
        assert json.loads((folder / LOCK).read_text())["pid"] != dead.pid


@pytest.mark.parametrize("content", ["", "not json", '{"pid": 1, "host": "elsewhere"}'])
def test_an_unreadable_or_foreign_lock_is_respected(tmp_path, content):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK).write_text(content)
    with pytest.raises(RunError, match="in use"):
        with claim(folder, resume=True):
            pass
    assert (folder / LOCK).read_text() == content


def test_a_run_failing_after_a_checkpoint_is_marked_and_unlocked(tmp_path):
    with pytest.raises(RuntimeError, match="crash"):
        with claim(tmp_path / "run"):
            (tmp_path / "run" / "last.pt").write_bytes(b"epoch 1")
            raise RuntimeError("crash")
    assert Manifest.load(tmp_path / "run").status == "failed"
    assert not (tmp_path / "run" / LOCK).exists()


@pytest.mark.parametrize("existed", [False, True])
def test_a_run_failing_before_any_checkpoint_leaves_nothing(tmp_path, existed):
    folder = tmp_path / "run"
    if existed:
        folder.mkdir()
    with pytest.raises(RuntimeError, match="crash"):
        with claim(folder):
            (folder / "config.yaml").write_text("x")
            raise RuntimeError("crash")
    assert folder.exists() == existed
    assert not existed or list(folder.iterdir()) == []


# ---------------------------------------------------------------------- atomic writes
def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")
    monkeypatch.setattr(atomic.os, "fsync", _disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_full_disk_while_saving_a_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    save_checkpoint({"model": {"w": torch.ones(2)}}, path)
    monkeypatch.setattr(atomic.os, "fsync", _disk_full)
    with pytest.raises(OSError):
        save_checkpoint({"model": {"w": torch.zeros(2)}}, path)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_a_failed_dataset_save_leaves_no_temporary(tmp_path, monkeypatch):
    inter = Interactions.from_arrays([0, 1], [1, 0])
    inter.save(tmp_path / "d")
    before = _snapshot(tmp_path / "d")
    monkeypatch.setattr("graphrec.data.idmap.IdMap.save", _disk_full)
    with pytest.raises(OSError):
        inter.save(tmp_path / "d")
    assert _snapshot(tmp_path / "d") == before


def test_temporary_names_are_unique(tmp_path):
    with atomic_path(tmp_path / "x") as a, atomic_path(tmp_path / "x") as b:
        assert a != b
        a.write_text("a")
        b.write_text("b")
    assert (tmp_path / "x").read_text() in ("a", "b")
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


# ---------------------------------------------------------------------- checkpoints
class _Anything:
    pass


@pytest.mark.parametrize("damage,words", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), ["cannot read"]),
    (lambda p: p.write_bytes(b""), ["cannot read"]),
    (lambda p: p.write_bytes(b"\x00" * 100), ["cannot read"]),
    (lambda p: torch.save({"model": _Anything()}, p), ["cannot read"]),
    (lambda p: torch.save(torch.ones(3), p), ["not a graphrec checkpoint"]),
    (lambda p: p.unlink(), ["no such checkpoint"]),
], ids=["truncated", "empty", "zeros", "arbitrary object", "a bare tensor", "missing"])
def test_damaged_checkpoints_are_refused(tmp_path, damage, words):
    path = tmp_path / "best.pt"
    save_checkpoint({"model": {"w": torch.ones(100)}}, path)
    damage(path)
    with pytest.raises(RunError) as err:
        load_checkpoint(path)
    assert "best.pt" in str(err.value)
    for word in words:
        assert word in str(err.value)


# ---------------------------------------------------------------------- fingerprints
def test_changed_sources_are_reported_and_absent_ones_are_not(tmp_path):
    src = tmp_path / "log.csv"
    src.write_text("user,item\n1,2\n")
    recorded = [fingerprint(src)]
    assert recorded[0]["size"] == src.stat().st_size and len(recorded[0]["sha256"]) == 64
    assert changed_sources(recorded) == []
    with src.open("a") as fh:
        fh.write("3,4\n")
    notes = changed_sources(recorded)
    assert len(notes) == 1 and "log.csv changed" in notes[0] and "stored data" in notes[0]
    src.unlink()
    assert changed_sources(recorded) == []


def test_atomic_path_without_overwrite_keeps_a_file_created_meanwhile(tmp_path):
    target = tmp_path / "out.parquet"
    with pytest.raises(FileExistsError):
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_text("new")
            target.write_text("someone else's")  # appears while we write
    assert target.read_text() == "someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]
    fresh = tmp_path / "fresh.txt"
    with atomic_path(fresh, overwrite=False) as tmp:
        tmp.write_text("new")
    assert fresh.read_text() == "new"
