"""Run files written atomically: checkpoints and per-epoch metrics."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import torch

from graphrec.atomic import atomic_write_bytes


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
