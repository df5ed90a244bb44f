"""Where the real datasets are: $GRAPHREC_DATA, else ../shared/datasets next to the repo."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder holding the real datasets' folders; skips the test if there is none."""
    env = os.environ.get("GRAPHREC_DATA")
    root = Path(env) if env else SHARED
    if not root.is_dir():
        pytest.skip(f"real datasets not found at {root} (set GRAPHREC_DATA to the folder "
                    f"holding movielens-small/, filmtrust/, lastfm/, gowalla/)")
    return root


@pytest.fixture(scope="session")
def data_folder(real_data_dir: Path) -> Callable[[str], Path]:
    """``data_folder("gowalla")``: that dataset's folder, or skip if it is absent."""
    def get(name: str) -> Path:
        folder = real_data_dir / name
        if not folder.is_dir():
            pytest.skip(f"dataset folder {folder} is absent")
        return folder
    return get


@pytest.fixture
def evaluator_backends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``score_backend`` of every :class:`~graphrec.evaluate.Evaluator` built while the
    test runs, in order."""
    from graphrec.evaluate import Evaluator

    seen: list[str] = []
    init = Evaluator.__init__

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        init(self, *args, **kwargs)
        seen.append(self.score_backend)

    monkeypatch.setattr(Evaluator, "__init__", spy)
    return seen
