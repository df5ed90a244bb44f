"""Train/validation/test splits of interaction logs, all leak-free and seeded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from graphrec.data.errors import DataError
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


# ---------------------------------------------------------------------- helpers
# Every split below assigns each row a part label and then takes the rows of each part
# in their original order, so parts are disjoint and together hold every row.
TRAIN, VALID, TEST = 0, 1, 2


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """``(train, valid, test)`` fractions; a pair means ``(train, test)`` with no valid."""
    r = tuple(float(x) for x in ratios)
    if len(r) == 2:
        r = (r[0], 0.0, r[1])
    if len(r) != 3 or not all(np.isfinite(r)) or min(r) < 0 or abs(sum(r) - 1.0) > 1e-6:
        raise ValueError(f"ratios must be 2 or 3 finite, non-negative fractions summing to 1 "
                         f"(train, [valid,] test), got {tuple(ratios)}")
    return r  # type: ignore[return-value]


def _check_unique_pairs(inter: Interactions) -> None:
    """Refuse repeated (user, item) rows: a split could put one pair in two parts."""
    if len(inter) < 2:
        return
    if inter.num_users * max(inter.num_items, 1) < 2**62:
        keys = np.sort(inter.user * inter.num_items + inter.item)
        repeated = bool((keys[1:] == keys[:-1]).any())
    else:  # the combined key would overflow int64
        order = np.lexsort((inter.item, inter.user))
        u, i = inter.user[order], inter.item[order]
        repeated = bool(((u[1:] == u[:-1]) & (i[1:] == i[:-1])).any())
    if repeated:
        raise DataError("the interactions repeat some (user, item) pairs, so a split could put "
                        "the same pair in train and test; merge them first with "
                        "graphrec.data.filtering.deduplicate or the loader's duplicates= option")


def _check_timestamps(inter: Interactions, what: str) -> np.ndarray:
    if inter.timestamp is None:
        raise DataError(f"{what} needs timestamps, but these interactions have none; load them "
                        f"with ColumnMap(timestamp=...) or use a random split")
    return inter.timestamp


def _finish(inter: Interactions, label: np.ndarray, method: str, cold_start: str) -> Split:
    """Cut ``inter`` by part label and apply the cold-start policy."""
    parts = {name: inter.subset(label == code) for name, code in
             (("train", TRAIN), ("valid", VALID), ("test", TEST))}
    train = parts.pop("train")
    return _cold_start(train, parts, method, cold_start)


def _round_half_up(x: np.ndarray) -> np.ndarray:
    # np.round rounds halves to even, which would make a 5-row user with ratio 0.1 get
    # no test row; the small epsilon absorbs float error such as 0.3 * 5 = 1.4999….
    return np.floor(x + 0.5 + 1e-9).astype(np.int64)


def _per_user_counts(n: np.ndarray, ratios: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Valid and test rows for users with ``n`` rows each (see :func:`per_user_split`)."""
    n_test = np.minimum(_round_half_up(ratios[2] * n), np.maximum(n - 1, 0))
    n_valid = np.minimum(_round_half_up(ratios[1] * n), np.maximum(n - 1 - n_test, 0))
    return n_valid, n_test


def _group_ranks(user: np.ndarray, order: np.ndarray, num_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each row within its user's rows, given ``order`` sorting rows by user.

    Returns ``(rank, size)``: for every row (in the original row order), its position in
    ``order`` among its user's rows and that user's number of rows.
    """
    counts = np.bincount(user, minlength=num_users)
    starts = np.cumsum(counts) - counts
    sorted_user = user[order]
    rank = np.empty(len(user), dtype=np.int64)
    rank[order] = np.arange(len(user)) - starts[sorted_user]
    return rank, counts[user]


def _label_from_end(rank: np.ndarray, size: np.ndarray, n_valid: np.ndarray,
                    n_test: np.ndarray) -> np.ndarray:
    """Last ``n_test`` ranks of each user → test, the ``n_valid`` before them → valid."""
    from_end = size - rank  # 1 for the last row of a user
    label = np.full(len(rank), TRAIN, dtype=np.int8)
    label[from_end <= n_test + n_valid] = VALID
    label[from_end <= n_test] = TEST
    return label


def _user_random_order(inter: Interactions, rng: np.random.Generator) -> np.ndarray:
    """Rows sorted by user, in random order within each user."""
    perm = rng.permutation(len(inter))
    return perm[np.argsort(inter.user[perm], kind="stable")]


def _user_time_order(inter: Interactions) -> np.ndarray:
    """Rows sorted by user, then time; equal times keep their row order."""
    return np.lexsort((np.arange(len(inter)), inter.timestamp, inter.user))


# ---------------------------------------------------------------------- splits
def random_split(
    inter: Interactions,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    cold_start: str = "keep",
) -> Split:
    """Rows shuffled and cut by ``ratios`` into train/valid/test.

    Part sizes are ``round(n * cumulative ratio)`` differences, so they add up to ``n``.
    Users and items may end up only in valid/test; see ``cold_start``.

    Args:
        inter: interactions with at most one row per (user, item) pair.
        ratios: ``(train, valid, test)`` fractions summing to 1, or ``(train, test)``.
        seed: seed of the shuffle; the same seed gives the same split.
        cold_start: ``"keep"`` valid/test rows whose user or item is not in train, or
            ``"drop"`` them; either way they are counted in the report.

    Raises:
        DataError: a (user, item) pair occurs in several rows.
    """
    r = _check_ratios(ratios)
    _check_unique_pairs(inter)
    n = len(inter)
    bounds = np.round(np.cumsum(r) * n).astype(np.int64)
    rank = np.empty(n, dtype=np.int64)
    rank[np.random.default_rng(seed).permutation(n)] = np.arange(n)
    label = np.full(n, TEST, dtype=np.int8)
    label[rank < bounds[1]] = VALID
    label[rank < bounds[0]] = TRAIN
    return _finish(inter, label, f"random(ratios={r}, seed={seed})", cold_start)


def per_user_split(
    inter: Interactions,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    cold_start: str = "keep",
) -> Split:
    """Each user's rows shuffled and cut by ``ratios``, so every user is in train.

    A user with ``n`` rows gets ``round(ratio_test * n)`` test rows and
    ``round(ratio_valid * n)`` valid rows (halves round up), except that at least one
    row always stays in train: valid gives way first, then test. So a user with one row
    is train-only, and with the default ratios a user needs 5 rows to get a test row.

    Args: as for :func:`random_split`.
    """
    r = _check_ratios(ratios)
    _check_unique_pairs(inter)
    order = _user_random_order(inter, np.random.default_rng(seed))
    label = _per_user_label(inter, order, r)
    return _finish(inter, label, f"per_user(ratios={r}, seed={seed})", cold_start)


def _per_user_label(inter: Interactions, order: np.ndarray,
                    r: tuple[float, float, float]) -> np.ndarray:
    rank, size = _group_ranks(inter.user, order, inter.num_users)
    n_valid, n_test = _per_user_counts(size, r)
    return _label_from_end(rank, size, n_valid, n_test)


def temporal_split(
    inter: Interactions,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    cold_start: str = "keep",
) -> Split:
    """One global time cut: train strictly before valid, valid strictly before test.

    The cut times are the timestamps at the ``ratios`` quantiles of all rows. Rows that
    share a cut timestamp all go to the later part, so every train time is earlier than
    every valid time, which is earlier than every test time; parts can therefore be a
    little smaller than the ratios ask when many rows share a timestamp. The split is
    deterministic and takes no seed.

    Args:
        inter: interactions with timestamps and at most one row per (user, item).
        ratios: as for :func:`random_split`.
        cold_start: as for :func:`random_split`.

    Raises:
        DataError: no timestamps, or repeated (user, item) pairs.
    """
    r = _check_ratios(ratios)
    t = _check_timestamps(inter, "temporal_split")
    _check_unique_pairs(inter)
    n = len(inter)
    label = np.full(n, TRAIN, dtype=np.int8)
    if n:
        sorted_t = np.sort(t)
        bounds = np.round(np.cumsum(r) * n).astype(np.int64)
        for code, b in ((VALID, bounds[0]), (TEST, bounds[1])):
            if b < n:
                label[t >= sorted_t[b]] = code
    return _finish(inter, label, f"temporal(ratios={r})", cold_start)


def per_user_temporal_split(
    inter: Interactions,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    cold_start: str = "keep",
) -> Split:
    """Each user's latest rows to test, the ones before to valid, the rest to train.

    Counts per user follow the rule of :func:`per_user_split`. Within a user, rows with
    equal timestamps are ordered by row position (a later row counts as later), so no
    train row of a user is later than any of its valid or test rows. Deterministic.

    Raises:
        DataError: no timestamps, or repeated (user, item) pairs.
    """
    r = _check_ratios(ratios)
    _check_timestamps(inter, "per_user_temporal_split")
    _check_unique_pairs(inter)
    label = _per_user_label(inter, _user_time_order(inter), r)
    return _finish(inter, label, f"per_user_temporal(ratios={r})", cold_start)


def leave_one_out(
    inter: Interactions,
    mode: str = "last",
    seed: int = 0,
    valid: bool = True,
    cold_start: str = "keep",
    min_interactions: int | None = None,
) -> Split:
    """One row per user to test and (with ``valid``) one more to valid.

    ``mode="last"`` takes each user's latest row for test and the one before it for
    valid (equal timestamps ordered by row position); ``mode="random"`` takes random
    rows. Users with fewer than ``min_interactions`` rows (default: 3 with ``valid``,
    2 without, i.e. enough to leave at least one training row) stay in train only.

    Raises:
        DataError: ``mode="last"`` without timestamps, or repeated (user, item) pairs.
    """
    if mode not in ("last", "random"):
        raise ValueError(f"mode must be 'last' or 'random', not {mode!r}")
    held = 2 if valid else 1
    min_n = held + 1 if min_interactions is None else int(min_interactions)
    if min_n < held + 1:
        raise ValueError(f"min_interactions must be at least {held + 1} so that held-out "
                         f"users keep a training row, got {min_n}")
    _check_unique_pairs(inter)
    if mode == "last":
        _check_timestamps(inter, "leave_one_out(mode='last')")
        order = _user_time_order(inter)
    else:
        order = _user_random_order(inter, np.random.default_rng(seed))
    rank, size = _group_ranks(inter.user, order, inter.num_users)
    eligible = size >= min_n
    n_test = eligible.astype(np.int64)
    n_valid = n_test if valid else np.zeros_like(n_test)
    label = _label_from_end(rank, size, n_valid, n_test)
    method = f"leave_one_out(mode={mode!r}, valid={valid}, min_interactions={min_n}"
    method += f", seed={seed})" if mode == "random" else ")"
    return _finish(inter, label, method, cold_start)


def holdout_valid(
    split_or_train: Split | Interactions,
    ratio: float = 0.1,
    seed: int = 0,
    cold_start: str = "keep",
) -> Split:
    """Carve a validation part out of a training part, leaving test untouched.

    Each user's training rows are split at random as in :func:`per_user_split`
    (``ratio`` of them, rounded, go to valid; at least one stays in train). Use it when
    a split has no validation part (e.g. a :func:`given_split` of published train/test
    files), so that model selection never looks at test.

    Args:
        split_or_train: a :class:`Split` with an empty ``valid`` part, or training
            interactions alone (the result's ``test`` is then empty).
        ratio: the fraction of each user's training rows to move to valid.
        seed: seed of the per-user shuffle.
        cold_start: policy for valid and test rows whose user/item is not in the new,
            smaller train; test cold-start counts are recomputed against it.

    Raises:
        ValueError: the split already has validation rows.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio must lie in [0, 1), got {ratio}")
    if isinstance(split_or_train, Split):
        if len(split_or_train.valid):
            raise ValueError(f"this split already has {len(split_or_train.valid)} validation "
                             f"rows; holdout_valid only fills an empty validation part")
        train, test = split_or_train.train, split_or_train.test
        base = split_or_train.report.method
    else:
        train, base = split_or_train, None
        test = train.subset(np.zeros(0, dtype=np.int64))
    _check_unique_pairs(train)
    order = _user_random_order(train, np.random.default_rng(seed))
    label = _per_user_label(train, order, (1.0 - ratio, ratio, 0.0))
    method = f"holdout_valid(ratio={ratio}, seed={seed})"
    if base is not None:
        method = f"{base} + {method}"
    return _cold_start(train.subset(label == TRAIN),
                       {"valid": train.subset(label == VALID), "test": test},
                       method, cold_start)


def popularity_buckets(rows: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """The bucket of every item by its row count ``rows``: bucket ``b`` holds the items
    above the ``quantiles[b-1]`` and up to the ``quantiles[b]`` quantile of the counts of
    the items with rows (``-1`` for items without rows).

    Raises:
        ValueError: ``quantiles`` do not increase strictly within (0, 1).
    """
    if list(quantiles) != sorted(set(quantiles)) or not all(0.0 < q < 1.0 for q in quantiles):
        raise ValueError(f"quantiles must increase strictly within (0, 1), got {tuple(quantiles)}")
    seen = rows > 0
    if not seen.any():
        return np.full(rows.shape, -1)
    edges = np.quantile(rows[seen], quantiles)
    return np.where(seen, np.searchsorted(edges, rows, side="left"), -1)


def thin_holdout(
    split: Split,
    part: str = "test",
    quantiles: Sequence[float] = (0.5, 0.9, 0.99, 0.999),
    reference: float = 0.99,
    seed: int = 0,
) -> Split:
    r"""A copy of ``split`` whose ``part`` is thinned to take one share of every item's rows.

    A part drawn at random per user holds about the same share of every item's rows.
    Some published splits do not (see :func:`graphrec.datasets.holdout_share`): their
    test part holds a larger share of the most popular items' rows, which rewards
    popularity-leaning models. Thinning such a part estimates what it would have been
    drawn uniformly: items are bucketed by their rows in ``train`` plus ``part``
    (:func:`popularity_buckets`); :math:`s` is the held-out share of the items up to the
    ``reference`` quantile; in every bucket whose share is higher, each held-out row is
    kept with probability :math:`p_B = \frac{s\,T_B}{(1 - s)\,H_B}` (:math:`T_B`,
    :math:`H_B`: the bucket's train and held-out rows), which brings its share to
    :math:`s` in expectation. Rows are only removed, never added.

    This is an analysis of a fixed test set, not a way to select models: it looks at
    the test part's item counts.

    Args:
        split: the split; ``train`` and the other parts are kept as they are.
        part: ``"test"`` or ``"valid"``.
        quantiles: cut points between popularity buckets.
        reference: one of ``quantiles``; the items up to it set the share :math:`s`.
        seed: seed of the row draws.
    """
    if part not in ("test", "valid"):
        raise ValueError(f"part must be 'test' or 'valid', got {part!r}")
    if reference not in quantiles:
        raise ValueError(f"reference ({reference}) must be one of quantiles {tuple(quantiles)}")
    held = getattr(split, part)
    if len(held) == 0:
        raise ValueError(f"the split has no {part} rows")
    h = held.item_degrees()
    t = split.train.item_degrees()
    bucket = popularity_buckets(t + h, quantiles)
    low = (bucket >= 0) & (bucket <= list(quantiles).index(reference))
    share = h[low].sum() / (t[low].sum() + h[low].sum())
    keep_p = np.ones(len(quantiles) + 1)
    for b in range(len(quantiles) + 1):
        tb, hb = t[bucket == b].sum(), h[bucket == b].sum()
        if hb and hb / (tb + hb) > share:
            keep_p[b] = share * tb / ((1.0 - share) * hb)
    rng = np.random.default_rng(seed)
    keep = rng.random(len(held)) < keep_p[bucket[held.item]]
    parts = {"valid": split.valid, "test": split.test}
    parts[part] = held.subset(keep)
    method = f"{split.report.method} + thin_holdout({part!r}, reference={reference}, seed={seed})"
    return _cold_start(split.train, parts, method, split.report.policy)
