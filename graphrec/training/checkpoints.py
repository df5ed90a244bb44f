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
    """Per-epoch rows to ``run_dir/metrics.json``, ``metrics.jsonl`` and ``metrics.csv``.

    ``metrics.jsonl`` holds one JSON object per epoch and line, at full precision, for
    tools that read a log line by line (``tail -f``, ``jq``). Each file is rewritten
    whole and atomically, so a crash leaves the previous epoch's complete file, never
    a half-written line.
    """
    atomic_write_bytes(run_dir / "metrics.json", json.dumps(history, indent=1).encode())
    atomic_write_bytes(run_dir / "metrics.jsonl",
                       "".join(json.dumps(row) + "\n" for row in history).encode())
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
