"""Run files written atomically: checkpoints and per-epoch metrics."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import torch


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file next to ``path`` and rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_metrics(run_dir: Path, history: list[dict[str, float]]) -> None:
    """Per-epoch rows to ``run_dir/metrics.json`` and ``metrics.csv`` (atomically)."""
    atomic_write_bytes(run_dir / "metrics.json", json.dumps(history, indent=1).encode())
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(run_dir / "metrics.csv", buf.getvalue().encode())



def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` made atomic: a crash never leaves a truncated checkpoint."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())
