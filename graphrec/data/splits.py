"""Train/validation/test splits of interaction logs, all leak-free and seeded."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from graphrec.data.interactions import Interactions


@dataclass
class SplitReport:
    """What a split did.

    Attributes:
        method: the split's name and parameters.
        sizes: rows in train/valid/test.
        cold_users, cold_items: per part (``"valid"``, ``"test"``), how many users/items
            appear there but not in train.
        policy: what was done with them (``"keep"`` or ``"drop"``).
        dropped: per part, rows removed by that policy.
    """

    method: str
    sizes: dict[str, int] = field(default_factory=dict)
    cold_users: dict[str, int] = field(default_factory=dict)
    cold_items: dict[str, int] = field(default_factory=dict)
    policy: str = "keep"
    dropped: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"split: {self.method}; sizes {self.sizes}; cold-start policy {self.policy!r}"]
        for part in ("valid", "test"):
            if part in self.cold_users:
                lines.append(f"  {part}: {self.cold_users[part]} users and {self.cold_items[part]} items "
                             f"not in train; {self.dropped.get(part, 0)} rows dropped")
        return "\n".join(lines)


@dataclass
class Split:
    """Train, validation and test interactions sharing one pair of id maps."""

    train: Interactions
    valid: Interactions
    test: Interactions
    report: SplitReport

    def __repr__(self) -> str:
        return f"Split(train={len(self.train)}, valid={len(self.valid)}, test={len(self.test)})"


def _cold_start(
    train: Interactions, parts: dict[str, Interactions], method: str, policy: str
) -> Split:
    """Count users/items of valid/test missing from train, apply the policy, build the Split."""
    if policy not in ("keep", "drop"):
        raise ValueError(f"cold-start policy must be 'keep' or 'drop', not {policy!r}")
    seen_u = np.zeros(train.num_users, dtype=bool)
    seen_u[train.user] = True
    seen_i = np.zeros(train.num_items, dtype=bool)
    seen_i[train.item] = True
    report = SplitReport(method, policy=policy)
    out: dict[str, Interactions] = {}
    for name, part in parts.items():
        cold_u = ~seen_u[part.user]
        cold_i = ~seen_i[part.item]
        report.cold_users[name] = len(np.unique(part.user[cold_u]))
        report.cold_items[name] = len(np.unique(part.item[cold_i]))
        if policy == "drop":
            keep = ~(cold_u | cold_i)
            report.dropped[name] = int((~keep).sum())
            part = part.subset(keep)
        else:
            report.dropped[name] = 0
        out[name] = part
    report.sizes = {"train": len(train), **{k: len(v) for k, v in out.items()}}
    return Split(train, out["valid"], out["test"], report)


def given_split(
    train: Interactions,
    test: Interactions,
    valid: Interactions | None = None,
    cold_start: str = "keep",
) -> Split:
    """A split the user hands in as separate parts (e.g. the Gowalla LightGCN files).

    The parts may have been loaded separately: their id maps are merged (train's ids
    first, keeping their indices) and every part is re-expressed in the merged maps.
    """
    user_map, item_map = train.user_map, train.item_map
    for part in (test, valid):
        if part is not None:
            user_map = user_map.union(part.user_map)
            item_map = item_map.union(part.item_map)
    train = train.with_maps(user_map, item_map)
    test = test.with_maps(user_map, item_map)
    valid = (valid.with_maps(user_map, item_map) if valid is not None
             else train.subset(np.zeros(0, dtype=np.int64)))
    return _cold_start(train, {"valid": valid, "test": test}, "given", cold_start)
