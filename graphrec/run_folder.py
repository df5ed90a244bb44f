"""Run folders: written by one process at a time, never over an earlier run, readable alone.

A run folder (``graphrec train --out DIR``) holds:

- ``run.json``: the manifest — format, versions of graphrec/torch/numpy/pandas/Python,
  start and end times, status (``running``, ``finished``, ``failed``), the split's sizes,
  and a fingerprint (path, size, sha256) of every source file the data came from;
- ``data/``: the data the model was trained and tested on (``train/``, ``valid/``,
  ``test/`` with their id maps, and ``social.parquet``), so that evaluating,
  recommending and exporting need no source file;
- ``config.yaml``, checkpoints (``best.pt``, ``last.pt``, ``final.pt``), metrics and
  ``results.json``.

:func:`claim` guards writing: it refuses a folder that already holds something unless the
run is resumed or ``overwrite`` is given, and holds a lock file (``.lock``, created with
``O_EXCL``, holding the owner's pid and host) so a second writer is refused instead of
interleaving its files with the first one's. A lock left by a process that no longer
exists on this host is stale and taken over.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pickle
import platform
import shutil
import socket
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphrec.atomic import atomic_path, atomic_write_bytes

if TYPE_CHECKING:
    import torch

# numpy, pandas and torch are imported where they are used: taking or refusing a lock
# stays cheap for a process that only checks the folder.

MANIFEST = "run.json"
LOCK = ".lock"
DATA = "data"
TITLES = "item_titles.parquet"  # raw item id -> title, when the dataset has titles
FORMAT = 1
# Files and folders a run writes; ``overwrite`` removes these and nothing else.
RUN_ENTRIES = ("run.json", "config.yaml", "best.pt", "last.pt", "final.pt", "results.json",
               "metrics.json", "metrics.csv", DATA)


class RunError(ValueError):
    """A run folder cannot be written or read as asked (in use, an earlier run, damaged)."""


class SourceChangedWarning(UserWarning):
    """A source file of a run differs from the one the run was trained on."""


# ---------------------------------------------------------------------- checkpoints
def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a damaged file is a :class:`RunError`.

    A checkpoint cut short (a copy interrupted, a disk that filled up outside graphrec)
    or one holding arbitrary Python objects is refused with a message naming the file.
    """
    import torch

    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError as exc:
        raise RunError(f"{path}: no such checkpoint") from exc
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError,
            ValueError) as exc:
        raise RunError(f"{path}: cannot read the checkpoint; it is truncated, damaged or not "
                       f"written by graphrec ({_first_line(exc)})") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise RunError(f"{path}: not a graphrec checkpoint (expected a mapping with 'model')")
    return ckpt


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[:limit] + "…"


# ---------------------------------------------------------------------- fingerprints
def fingerprint(path: str | Path) -> dict[str, Any]:
    """``{"path", "size", "sha256"}`` of a file (the path made absolute)."""
    path = Path(path).resolve()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "size": path.stat().st_size, "sha256": digest.hexdigest()}


def changed_sources(recorded: list[dict[str, Any]]) -> list[str]:
    """What differs between the recorded fingerprints and the files on disk now.

    A source that is absent is not reported: the run folder holds its own copy of the
    data, so the source is not needed.
    """
    notes = []
    for old in recorded:
        path = Path(old["path"])
        if not path.is_file():
            continue
        new = fingerprint(path)
        if new["sha256"] != old["sha256"]:
            notes.append(f"{path} changed since the run was trained (size {old['size']} → "
                         f"{new['size']} bytes, sha256 {old['sha256'][:12]}… → "
                         f"{new['sha256'][:12]}…); the run keeps using its stored data")
    return notes


# ---------------------------------------------------------------------- the lock
def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` for the block; refuse when a live process holds it."""
    lock = folder / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _read_lock(lock)
            stale = owner is not None and owner.get("host") == me["host"] and \
                not _process_alive(int(owner.get("pid", -1)))
            if not stale:
                who = (f"process {owner.get('pid')} on {owner.get('host')}" if owner
                       else "another process")
                raise RunError(f"{folder}: the run folder is in use by {who}; wait for it to "
                               f"finish, or delete {lock} if that process is gone") from None
            lock.unlink(missing_ok=True)  # left by a process that no longer exists
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:
        raise RunError(f"{folder}: could not take the lock {lock}")
    try:
        yield
    finally:
        if _read_lock(lock) == me:
            lock.unlink(missing_ok=True)


def _read_lock(lock: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


# ---------------------------------------------------------------------- claiming a folder
def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """Versions of graphrec and of the libraries that decide its numbers."""
    import numpy as np
    import pandas as pd
    import torch

    from graphrec import __version__

    return {"graphrec": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "python": platform.python_version()}


@dataclass
class Manifest:
    """The contents of ``run.json`` (see the module docs)."""

    format: int = FORMAT
    status: str = "running"
    started: str = field(default_factory=_now)
    finished: str | None = None
    versions: dict[str, str] = field(default_factory=versions)
    sources: list[dict[str, Any]] = field(default_factory=list)
    split: dict[str, Any] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)

    def save(self, folder: Path) -> None:
        atomic_write_bytes(folder / MANIFEST, json.dumps(self.__dict__, indent=1).encode())

    @classmethod
    def load(cls, folder: Path) -> Manifest | None:
        """The folder's manifest, or ``None`` for a run written before manifests existed."""
        path = folder / MANIFEST
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text())
            return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise RunError(f"{path}: not a readable run manifest ({_first_line(exc)})") from exc


def _earlier_run(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK)


def check_claim(folder: str | Path, *, resume: bool = False, overwrite: bool = False) -> None:
    """Raise the :class:`RunError` that :func:`claim` would, without writing anything.

    Lets a caller refuse a folder before spending time on reading data.
    """
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise RunError(f"{folder}: exists and is not a folder; give a folder for the run")
    earlier = _earlier_run(folder)
    if earlier and not resume and not overwrite:
        shown = ", ".join(earlier[:5]) + (", …" if len(earlier) > 5 else "")
        raise RunError(f"{folder}: the folder already holds files ({shown}); an earlier "
                       f"run is never replaced silently. Choose a new folder, resume "
                       f"it (train.resume=true) or pass --overwrite to replace it")


@contextmanager
def claim(folder: str | Path, *, resume: bool = False, overwrite: bool = False,
          sources: list[Path] | None = None) -> Iterator[Manifest]:
    """Own ``folder`` for one training run: refuse an earlier run, lock, keep ``run.json``.

    Args:
        folder: the run folder (created if absent).
        resume: continue the run already in the folder (its checkpoints are kept).
        overwrite: replace the earlier run's files (other files are left alone).
        sources: the files the data come from, fingerprinted into the manifest.

    Raises:
        RunError: the folder holds files and neither ``resume`` nor ``overwrite`` is
            given, another process holds its lock, or the path is not a folder.
    """
    folder = Path(folder)
    check_claim(folder, resume=resume, overwrite=overwrite)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    with run_lock(folder):
        check_claim(folder, resume=resume, overwrite=overwrite)  # again, now under the lock
        manifest = Manifest.load(folder) if resume else None
        fresh = not _earlier_run(folder) or not resume
        if not resume:
            _remove_run_files(folder)
        if manifest is None:
            manifest = Manifest()
            manifest.sources = [fingerprint(p) for p in sources or [] if Path(p).is_file()]
        else:  # the sources stay those the run's stored data came from
            manifest.resumed.append(_now())
            manifest.status, manifest.finished = "running", None
        manifest.versions = versions()
        try:
            manifest.save(folder)
            yield manifest
        except BaseException:
            if fresh and not any((folder / n).exists() for n in ("best.pt", "last.pt", "final.pt")):
                # Failed before any training was saved: leave no half-made run behind,
                # so the same command can simply be run again.
                _remove_run_files(folder)
            else:
                manifest.status, manifest.finished = "failed", _now()
                with suppress(OSError):  # e.g. a full disk: the original error matters more
                    manifest.save(folder)
            raise
        finally:
            if created and not _earlier_run(folder):
                (folder / LOCK).unlink(missing_ok=True)
                folder.rmdir()
        manifest.status, manifest.finished = "finished", _now()
        manifest.save(folder)


def _remove_run_files(folder: Path) -> None:
    """Remove the files a run writes (:data:`RUN_ENTRIES`), and nothing else."""
    for name in RUN_ENTRIES:
        entry = folder / name
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


# ---------------------------------------------------------------------- stored data
def save_data(folder: Path, split: Any, social: Any | None, *,
              item_titles: Any | None = None) -> None:
    """Store a split (and its social edges and item titles) under ``folder/data``.

    ``item_titles`` is a Series raw item id → title, kept so that recommendations can
    show titles without the dataset's files."""
    import pandas as pd

    data = folder / DATA
    for part in ("train", "valid", "test"):
        getattr(split, part).save(data / part)
    if social is not None:
        frame = pd.DataFrame({"src": social.src, "dst": social.dst})
        if social.weight is not None:
            frame["weight"] = social.weight
        with atomic_path(data / "social.parquet") as tmp:
            frame.to_parquet(tmp, index=False)
    if item_titles is not None and len(item_titles):
        titles = pd.DataFrame({"item": item_titles.index.to_numpy(),
                               "title": item_titles.to_numpy().astype(str)})
        with atomic_path(data / TITLES) as tmp:
            titles.to_parquet(tmp, index=False)


def load_item_titles(folder: str | Path) -> Any | None:
    """The run's raw item id → title Series, or ``None`` when its dataset has no titles."""
    import pandas as pd

    path = Path(folder) / DATA / TITLES
    if not path.exists():
        return None
    try:
        frame = pd.read_parquet(path)
        return pd.Series(frame["title"].to_numpy(), index=pd.Index(frame["item"]), name="title")
    except (OSError, ValueError, KeyError) as exc:
        raise RunError(f"{path}: cannot read the run's item titles ({_first_line(exc)})") from exc


def has_data(folder: Path) -> bool:
    """Whether the run folder stores its own data."""
    return (folder / DATA / "train").is_dir()


def load_data(folder: Path) -> tuple[Any, Any | None]:
    """The split and social edges stored by :func:`save_data` (parts share one pair of maps)."""
    import dataclasses

    import pandas as pd

    from graphrec.data.interactions import Interactions
    from graphrec.data.social import SocialEdges
    from graphrec.data.splits import Split, SplitReport

    data = folder / DATA
    try:
        parts = {p: Interactions.load(data / p) for p in ("train", "valid", "test")}
        train = parts["train"]
        # One map object for all parts, as in a freshly made split.
        for p in ("valid", "test"):
            if parts[p].user_map != train.user_map or parts[p].item_map != train.item_map:
                raise RunError(f"{data / p}: its id maps differ from train's; the run's data "
                               f"are damaged")
            parts[p] = dataclasses.replace(parts[p], user_map=train.user_map, item_map=train.item_map)
        social = None
        if (data / "social.parquet").exists():
            frame = pd.read_parquet(data / "social.parquet")
            social = SocialEdges.from_arrays(frame["src"].to_numpy(), frame["dst"].to_numpy(),
                                             num_users=train.num_users,
                                             weight=frame["weight"].to_numpy() if "weight" in frame
                                             else None)
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, RunError):
            raise
        raise RunError(f"{data}: cannot read the run's stored data ({_first_line(exc)})") from exc
    sizes = {p: len(v) for p, v in parts.items()}
    split = Split(train, parts["valid"], parts["test"], SplitReport("stored", sizes=sizes))
    return split, social


def warn_changed_sources(folder: Path) -> None:
    """Warn (:class:`SourceChangedWarning`) about every source file that changed."""
    manifest = Manifest.load(folder)
    for note in changed_sources(manifest.sources if manifest else []):
        warnings.warn(note, SourceChangedWarning, stacklevel=3)
