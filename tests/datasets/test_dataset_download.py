"""Downloads: checksums, atomic writes and extraction, tested against local file:// URLs."""

from __future__ import annotations

import functools
import hashlib
import io
import urllib.request
import zipfile
from pathlib import Path

import pytest

from graphrec.data.errors import DataError
from graphrec.datasets import download as dl
from graphrec.datasets import download_file, download_movielens_small, movielens_small, real

RATINGS = "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n2,10,3.5,964982224\n2,20,5.0,964981247\n"
MOVIES = 'movieId,title,genres\n10,"Heat, The (1995)",Action|Crime\n20,Up (2009),Animation\n30,Odd (1990),Drama\n'


def make_zip(path: Path, files: dict[str, str]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(f"ml-latest-small/{name}", text)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_for(files: dict[str, str]) -> dict[str, tuple[int, str]]:
    return {n: (t.count("\n"), hashlib.sha256(t.encode()).hexdigest())
            for n, t in files.items() if n in ("ratings.csv", "movies.csv")}


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_download_file_checks_sha_and_writes_atomically(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 3_000_000)  # several chunks
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "out" / "copy.bin"
    assert download_file(src.as_uri(), out, sha256=digest) == out
    assert out.read_bytes() == src.read_bytes()
    assert no_temp_files(out.parent)


def test_download_file_refuses_wrong_sha_and_keeps_old_file(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"new content")
    out = tmp_path / "out.bin"
    out.write_bytes(b"old content")
    with pytest.raises(DataError, match="SHA-256 of the download is"):
        download_file(src.as_uri(), out, sha256="0" * 64)
    assert out.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] and no_temp_files(tmp_path)


def test_download_file_network_error_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="could not download"):
        download_file((tmp_path / "missing.zip").as_uri(), tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists() and no_temp_files(tmp_path)


def test_download_file_uses_urlopen(tmp_path, monkeypatch):
    calls = []

    def fake_urlopen(url, timeout):
        calls.append(url)
        return io.BytesIO(b"payload")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    out = download_file("https://example.org/f.zip", tmp_path / "f.zip",
                        sha256=hashlib.sha256(b"payload").hexdigest())
    assert calls == ["https://example.org/f.zip"] and out.read_bytes() == b"payload"


def test_movielens_download_extracts_and_loads(tmp_path):
    files = {"ratings.csv": RATINGS, "movies.csv": MOVIES, "README.txt": "readme"}
    archive = tmp_path / "mirror.zip"
    digest = make_zip(archive, files)
    root = tmp_path / "data"
    folder = download_movielens_small(root, url=archive.as_uri(), sha256=digest,
                                      expected=expected_for(files))
    assert folder == root / "movielens-small"
    assert (folder / "ratings.csv").read_text() == RATINGS
    assert (folder / "README.txt").exists()
    assert no_temp_files(root)
    d = movielens_small(root)
    assert (d.num_users, d.num_items, len(d.interactions)) == (2, 3, 3)
    assert d.items["title"].tolist() == ["Heat, The (1995)", "Up (2009)", "Odd (1990)"]


def test_movielens_download_via_loader(tmp_path, monkeypatch):
    files = {"ratings.csv": RATINGS, "movies.csv": MOVIES}
    archive = tmp_path / "mirror.zip"
    digest = make_zip(archive, files)
    mirror = functools.partial(download_movielens_small, url=archive.as_uri(), sha256=digest,
                               expected=expected_for(files))
    monkeypatch.setattr(real, "download_movielens_small", mirror)
    with pytest.raises(DataError, match="movielens-small"):
        movielens_small(tmp_path / "data")  # download=False: never fetches
    assert not (tmp_path / "data").exists()
    d = movielens_small(tmp_path / "data", download=True)
    assert len(d.interactions) == 3
    assert (tmp_path / "data" / "ml-latest-small.zip").exists()


def test_movielens_download_rejects_altered_content(tmp_path):
    files = {"ratings.csv": RATINGS, "movies.csv": MOVIES}
    archive = tmp_path / "mirror.zip"
    digest = make_zip(archive, files)
    wrong = expected_for(files)
    wrong["ratings.csv"] = (wrong["ratings.csv"][0] + 1, wrong["ratings.csv"][1])
    root = tmp_path / "data"
    with pytest.raises(DataError, match="ratings.csv has 4 lines"):
        download_movielens_small(root, url=archive.as_uri(), sha256=digest, expected=wrong)
    assert not (root / "movielens-small").exists()
    assert no_temp_files(root)


def test_movielens_download_rejects_wrong_archive_checksum(tmp_path):
    archive = tmp_path / "mirror.zip"
    make_zip(archive, {"ratings.csv": RATINGS, "movies.csv": MOVIES})
    with pytest.raises(DataError, match="SHA-256"):
        download_movielens_small(tmp_path / "data", url=archive.as_uri())  # real checksum
    assert not (tmp_path / "data" / "ml-latest-small.zip").exists()


def test_movielens_archive_missing_a_file(tmp_path):
    archive = tmp_path / "mirror.zip"
    digest = make_zip(archive, {"ratings.csv": RATINGS})
    with pytest.raises(DataError, match="no movies.csv in the archive"):
        download_movielens_small(tmp_path / "data", url=archive.as_uri(), sha256=digest,
                                 expected=None)


def test_existing_files_are_not_downloaded_again(tmp_path):
    folder = tmp_path / "movielens-small"
    folder.mkdir()
    (folder / "ratings.csv").write_text(RATINGS)
    (folder / "movies.csv").write_text(MOVIES)
    # A URL that cannot be fetched proves nothing is fetched.
    assert download_movielens_small(tmp_path, url=(tmp_path / "nope").as_uri()) == folder


def test_published_file_checksums_match_local_copy(data_folder):
    folder = data_folder("movielens-small")
    for name, (lines, digest) in dl.MOVIELENS_SMALL_FILES.items():
        data = (folder / name).read_bytes()
        assert data.count(b"\n") == lines
        assert hashlib.sha256(data).hexdigest() == digest
