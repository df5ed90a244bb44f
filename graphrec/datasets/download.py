"""Downloading public datasets: checksummed, atomic, and only when asked to.

Nothing here runs unless a loader is called with ``download=True``. A download goes to a
temporary file next to its destination and is renamed into place only once it is
complete and its SHA-256 matches, so an interrupted or corrupt download never looks like
a finished one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from graphrec.data.errors import DataError

MOVIELENS_SMALL_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
# SHA-256 of the archive GroupLens serves (the release generated on 2018-09-26).
MOVIELENS_SMALL_SHA256 = "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"
# The files the loader needs, checked again after extraction: (lines incl. header, SHA-256).
MOVIELENS_SMALL_FILES: dict[str, tuple[int, str]] = {
    "ratings.csv": (100_837, "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646"),
    "movies.csv": (9_743, "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07"),
}
# Also extracted (not needed by the loader, not checked).
MOVIELENS_SMALL_EXTRA = ("tags.csv", "links.csv", "README.txt")

_CHUNK = 1 << 20


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download_file(url: str, dest: str | Path, *, sha256: str | None = None,
                  timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its SHA-256 if given.

    The bytes go to a temporary file in ``dest``'s folder, which is renamed to ``dest``
    only after the download finished and the checksum matched; on any failure it is
    removed and ``dest`` is left as it was.

    Raises:
        DataError: the download failed or the checksum does not match.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                while chunk := resp.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError) as exc:
            raise DataError(f"could not download {url} to {dest}: {exc}") from exc
        if sha256 is not None and h.hexdigest() != sha256:
            raise DataError(f"{url}: SHA-256 of the download is {h.hexdigest()}, expected {sha256}; "
                            f"the file is corrupt or changed upstream, so {dest} was not written")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def download_movielens_small(
    root: str | Path,
    *,
    url: str = MOVIELENS_SMALL_URL,
    sha256: str | None = MOVIELENS_SMALL_SHA256,
    expected: dict[str, tuple[int, str]] | None = MOVIELENS_SMALL_FILES,
) -> Path:
    """Fetch MovieLens "ml-latest-small" into ``root/movielens-small`` (unless present).

    The archive is kept as ``root/ml-latest-small.zip`` and checked against ``sha256``;
    the files are extracted into a temporary folder, their line counts and checksums
    compared with ``expected``, and only then moved into place.

    Args:
        root: the data folder (the loaders' ``root``).
        url: where to fetch from (the default is the public release; other values
            are for mirrors and tests).
        sha256: the archive's expected checksum.
        expected: file name → (line count, sha256) of the unpacked files.

    Returns:
        The ``movielens-small`` folder.
    """
    root = Path(root)
    target = root / "movielens-small"
    needed = list(expected or MOVIELENS_SMALL_FILES)
    if all((target / name).exists() for name in needed):
        return target
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "ml-latest-small.zip"
    if not archive.exists() or (sha256 is not None and sha256_of(archive) != sha256):
        download_file(url, archive, sha256=sha256)

    staging = Path(tempfile.mkdtemp(prefix=".movielens-small.", dir=root))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                members = {Path(m).name: m for m in zf.namelist() if not m.endswith("/")}
                for name in [*needed, *MOVIELENS_SMALL_EXTRA]:
                    if name not in members:
                        if name in needed:
                            raise DataError(f"{archive}: no {name} in the archive")
                        continue
                    # Write under the bare file name: member paths from the archive are
                    # never used as paths on disk.
                    with zf.open(members[name]) as src, open(staging / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{archive}: not a valid zip archive ({exc}); delete it and retry") from exc
        for name, (lines, digest) in (expected or {}).items():
            with open(staging / name, "rb") as f:
                found = sum(1 for _ in f)
            if found != lines or sha256_of(staging / name) != digest:
                raise DataError(f"{archive}: extracted {name} has {found} lines (expected {lines}) "
                                f"or a different SHA-256 than the published release")
        target.mkdir(exist_ok=True)
        for f in staging.iterdir():
            os.replace(f, target / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
