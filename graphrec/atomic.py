"""Atomic file writes: a file is either its old self or completely new, never half-written.

Every write goes to a temporary file with a unique name in the target's folder (so two
writers never share one temporary file, and the final rename stays on one file system),
is flushed to disk, then renamed over the target. When writing fails — a full disk, an
interrupt — the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """A unique temporary path next to ``path``; renamed onto ``path`` when the block ends
    without an error, removed when it raises.

    With ``overwrite=False`` an existing ``path`` is never replaced: the file is linked
    into place (which fails if ``path`` exists, even one created while writing) and
    :class:`FileExistsError` is raised.

    Use it for writers that take a path (``DataFrame.to_parquet``, ``np.save``)::

        with atomic_path("table.parquet") as tmp:
            frame.to_parquet(tmp)
    """
    target = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        yield tmp
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
