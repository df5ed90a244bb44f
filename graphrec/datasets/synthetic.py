"""A seeded synthetic dataset with community structure, popularity skew and social ties.

It is the dataset everything can run on without downloads: small enough by default to
train in seconds, large enough (and fast enough to build) for benchmarks, and shaped
like real logs, so that methods which should win on real data also win here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graphrec.data.idmap import IdMap
from graphrec.data.interactions import Interactions
from graphrec.data.social import SocialEdges
from graphrec.datasets.dataset import Dataset

# Timestamps start on 2015-01-01 (UTC) and spread over about three years.
_EPOCH = 1_420_070_400
_SPAN_SECONDS = 3 * 365 * 24 * 3600

# Spread of log-degrees: with sigma = 1 a few percent of users have only 1–2
# interactions while the busiest have more than ten times the mean.
_DEGREE_SIGMA = 1.0
_FRIENDS_SIGMA = 0.8


def synthetic(
    num_users: int = 2000,
    num_items: int = 1500,
    num_communities: int = 10,
    avg_degree: float = 30.0,
    social: bool = True,
    avg_friends: float = 10.0,
    homophily: float = 0.8,
    ratings: bool = True,
    timestamps: bool = True,
    seed: int = 0,
    *,
    affinity: float = 0.6,
    social_influence: float = 0.2,
    popularity_exponent: float = 1.0,
) -> Dataset:
    """Generate a synthetic recommendation dataset (deterministic for a seed).

    Generative process:

    1. **Communities.** Users and items are split into ``num_communities`` latent
       communities of uneven sizes (Dirichlet shares, at least one member each).
    2. **Item popularity.** Items get Zipf-like weights ``rank ** -popularity_exponent``
       over a random ranking, so a small head of items draws most interactions; every
       community has its own head.
    3. **User activity.** Each user's number of interactions is log-normal with mean
       ``avg_degree`` (at least 1, at most half the items): heavy-tailed, with a few
       percent of users having only one or two interactions.
    4. **Social ties.** Each user proposes a Poisson-log-normal number of ties (mean
       ``avg_friends / 2``); a tie goes to a random user of the same community with
       probability ``homophily`` and otherwise to a random user of another community.
       Ties are made symmetric, so a user has ``avg_friends`` friends on average and a
       fraction ``homophily`` of all ties stay inside a community.
    5. **Interactions.** Each of a user's interactions is, independently:
       an item of the user's own community, drawn by popularity (probability
       ``affinity``); an item a random friend interacts with (``social_influence``;
       friends share taste beyond their community, so the social graph is predictive);
       or an item drawn by global popularity (the rest). Users without friends draw
       their share of friend items from the first two sources. Repeated items are
       dropped, so a user's degree can fall slightly short of its target.
    6. **Ratings** (1–5, integers) are higher for items of the user's community, with
       an item quality, a user bias and noise. **Timestamps** (seconds) fall in a
       per-user activity window within three years from 2015-01-01.

    Sub-generators are seeded separately, so ``social``, ``ratings`` and ``timestamps``
    only decide what is returned: the interactions of one seed are the same either way,
    which makes "with vs without social edges" a fair comparison. Everything is
    vectorised numpy; time and memory grow linearly with the number of interactions.

    Args:
        num_users, num_items: sizes of the user and item maps (exact).
        num_communities: latent communities (at most ``min(num_users, num_items)``).
        avg_degree: target mean interactions per user.
        social: return the social edges as ``Dataset.social``.
        avg_friends: target mean friends per user.
        homophily: fraction of ties inside a community.
        ratings, timestamps: return these fields with the interactions.
        seed: random seed; equal seeds give equal datasets.
        affinity: probability that an interaction is an own-community item.
        social_influence: probability that an interaction copies a friend's item.
        popularity_exponent: Zipf exponent of item popularity (0 = uniform).

    Returns:
        A :class:`Dataset` named ``"synthetic"``; ``users`` and ``items`` hold each
        user's and item's ``community`` (items also their ``popularity`` weight), the
        ground truth for analyses.
    """
    _check(num_users, num_items, num_communities, avg_degree, avg_friends, homophily,
           affinity, social_influence, popularity_exponent)
    seq = np.random.SeedSequence(seed)
    rng_comm, rng_social, rng_inter, rng_rating, rng_time = (
        np.random.default_rng(s) for s in seq.spawn(5))

    user_comm = _communities(num_users, num_communities, rng_comm)
    item_comm = _communities(num_items, num_communities, rng_comm)
    popularity = rng_comm.permutation(num_items).astype(np.float64) + 1.0
    popularity **= -popularity_exponent

    friends = _social_ties(user_comm, num_communities, avg_friends, homophily, rng_social)
    user, item = _interactions(user_comm, item_comm, popularity, friends, avg_degree,
                               affinity, social_influence, rng_inter)

    rating = _ratings(user, item, user_comm, item_comm, rng_rating) if ratings else None
    timestamp = _timestamps(user, num_users, rng_time) if timestamps else None
    inter = Interactions(user, item, IdMap.identity(num_users, "user"),
                         IdMap.identity(num_items, "item"), rating=rating, timestamp=timestamp)
    description = (
        f"synthetic(num_users={num_users}, num_items={num_items}, "
        f"num_communities={num_communities}, avg_degree={avg_degree}, avg_friends={avg_friends}, "
        f"homophily={homophily}, affinity={affinity}, social_influence={social_influence}, "
        f"popularity_exponent={popularity_exponent}, seed={seed})")
    return Dataset(
        name="synthetic",
        interactions=inter,
        social=friends if social else None,
        users=pd.DataFrame({"community": user_comm}),
        items=pd.DataFrame({"community": item_comm, "popularity": popularity}),
        description=description,
    )


def _check(num_users: int, num_items: int, num_communities: int, avg_degree: float,
           avg_friends: float, homophily: float, affinity: float, social_influence: float,
           popularity_exponent: float) -> None:
    if num_users < 1 or num_items < 1:
        raise ValueError(f"need at least one user and one item, got {num_users} and {num_items}")
    if not 1 <= num_communities <= min(num_users, num_items):
        raise ValueError(f"num_communities must lie in [1, min(num_users, num_items)] = "
                         f"[1, {min(num_users, num_items)}], got {num_communities}")
    if avg_degree < 1:
        raise ValueError(f"avg_degree must be >= 1, got {avg_degree}")
    if avg_friends < 0:
        raise ValueError(f"avg_friends must be >= 0, got {avg_friends}")
    for name, p in (("homophily", homophily), ("affinity", affinity),
                    ("social_influence", social_influence)):
        if not 0 <= p <= 1:
            raise ValueError(f"{name} must lie in [0, 1], got {p}")
    if affinity + social_influence > 1:
        raise ValueError(f"affinity + social_influence must be <= 1, got {affinity + social_influence}")
    if popularity_exponent < 0:
        raise ValueError(f"popularity_exponent must be >= 0, got {popularity_exponent}")


def _communities(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Community labels of ``n`` members: uneven sizes, every community non-empty."""
    shares = rng.dirichlet(np.full(k, 5.0))
    sizes = 1 + rng.multinomial(n - k, shares)
    return rng.permutation(np.repeat(np.arange(k, dtype=np.int64), sizes))


def _pick_members(comm: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random member of community ``comm[j]`` for every ``j``."""
    order = np.argsort(labels, kind="stable")
    ptr = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=int(labels.max()) + 1))])
    size = ptr[comm + 1] - ptr[comm]
    offset = np.minimum((rng.random(len(comm)) * size).astype(np.int64), size - 1)
    return order[ptr[comm] + offset]


def _social_ties(user_comm: np.ndarray, k: int, avg_friends: float, homophily: float,
                 rng: np.random.Generator) -> SocialEdges:
    n = len(user_comm)
    # Each tie is proposed by one side and made mutual below, hence half the mean.
    mean_proposed = avg_friends / 2
    if mean_proposed > 0:
        mu = np.log(mean_proposed) - _FRIENDS_SIGMA**2 / 2
        proposed = rng.poisson(rng.lognormal(mu, _FRIENDS_SIGMA, n))
    else:
        proposed = np.zeros(n, dtype=np.int64)
    src = np.repeat(np.arange(n, dtype=np.int64), proposed)
    own = user_comm[src]
    if k > 1:
        other = (own + 1 + (rng.random(len(src)) * (k - 1)).astype(np.int64)) % k
        target = np.where(rng.random(len(src)) < homophily, own, other)
    else:
        target = own
    dst = _pick_members(target, user_comm, rng)
    return SocialEdges.from_arrays(src, dst, num_users=n, symmetrize=True)


def _draw_by_popularity(comm: np.ndarray | None, item_comm: np.ndarray, popularity: np.ndarray,
                        rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` items drawn proportionally to popularity, within ``comm[j]`` if given.

    Items are laid out community by community with one cumulative popularity curve, so
    a draw inside community ``c`` is an inverse-CDF lookup restricted to c's stretch.
    """
    order = np.argsort(item_comm, kind="stable")
    cum = np.cumsum(popularity[order])
    if comm is None:
        pos = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
        return order[np.minimum(pos, len(order) - 1)]
    ptr = np.concatenate([[0], np.cumsum(np.bincount(item_comm, minlength=int(item_comm.max()) + 1))])
    lo = np.concatenate([[0.0], cum])[ptr[comm]]
    hi = cum[ptr[comm + 1] - 1]
    pos = np.searchsorted(cum, lo + rng.random(n) * (hi - lo), side="right")
    # Rounding at the top of a stretch can step one past it.
    return order[np.clip(pos, ptr[comm], ptr[comm + 1] - 1)]


def _interactions(user_comm: np.ndarray, item_comm: np.ndarray, popularity: np.ndarray,
                  friends: SocialEdges, avg_degree: float, affinity: float,
                  social_influence: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    num_users, num_items = len(user_comm), len(item_comm)
    mu = np.log(avg_degree) - _DEGREE_SIGMA**2 / 2
    target = np.rint(rng.lognormal(mu, _DEGREE_SIGMA, num_users)).astype(np.int64)
    target = np.clip(target, 1, max(1, num_items // 2))

    friend_deg = friends.degrees()
    friend_ptr = np.concatenate([[0], np.cumsum(friend_deg)])
    base_share = affinity / (1 - social_influence) if social_influence < 1 else 1.0

    def own_or_popular(user: np.ndarray) -> np.ndarray:
        """One item per slot of ``user``: own-community or globally popular."""
        in_comm = rng.random(len(user)) < base_share
        item = np.empty(len(user), dtype=np.int64)
        item[in_comm] = _draw_by_popularity(user_comm[user[in_comm]], item_comm, popularity,
                                            rng, int(in_comm.sum()))
        item[~in_comm] = _draw_by_popularity(None, item_comm, popularity, rng,
                                             int((~in_comm).sum()))
        return item

    def copy_friends(user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Replace a ``social_influence`` share of slots by an item of a random friend."""
        copy = (rng.random(len(user)) < social_influence) & (friend_deg[user] > 0)
        cu = user[copy]
        friend = friends.dst[friend_ptr[cu] + (rng.random(len(cu)) * friend_deg[cu]).astype(np.int64)]
        slot = base_ptr[friend] + (rng.random(len(cu)) * target[friend]).astype(np.int64)
        item[copy] = base[slot]
        return item

    # A few more candidates than needed, since repeated items are dropped; users still
    # short (busy users of small communities) get more candidates in later rounds.
    n_cand = target + np.ceil(0.25 * target).astype(np.int64) + 2
    user = np.repeat(np.arange(num_users, dtype=np.int64), n_cand)
    # Friends' items are copied from these first-round draws (each user's first
    # `target` slots), which exist for everyone before any copying starts.
    base = own_or_popular(user)
    base_ptr = np.concatenate([[0], np.cumsum(n_cand)])
    item = copy_friends(user, base.copy())
    user, item = _first_distinct(user, item, target, num_items)
    active = np.ones(num_users, dtype=bool)  # users whose rows are still in `user`
    done_user, done_item = [], []
    for round_ in range(12):
        have = np.bincount(user, minlength=num_users)
        finished = active & (have >= target)
        active &= ~finished
        moved = finished[user]
        done_user.append(user[moved])
        done_item.append(item[moved])
        user, item = user[~moved], item[~moved]
        if not active.any():
            break
        extra = np.where(active, (target - have) * min(2**round_, 64) + 2, 0)
        new_user = np.repeat(np.arange(num_users, dtype=np.int64), extra)
        new_item = copy_friends(new_user, own_or_popular(new_user))
        user, item = _first_distinct(np.concatenate([user, new_user]),
                                     np.concatenate([item, new_item]), target, num_items)
    # Users still short after the last round keep what they have.
    user = np.concatenate(done_user + [user])
    item = np.concatenate(done_item + [item])
    key = np.sort(user * num_items + item)
    return key // num_items, key % num_items


def _first_distinct(user: np.ndarray, item: np.ndarray, target: np.ndarray,
                    num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's first ``target`` distinct items, in slot order (user-major output)."""
    n = len(user)
    pair = user * num_items + item
    if n == 0:
        return user, item
    # Sorting (pair, slot) as one integer puts each pair's earliest slot first; plain
    # integer sorts are several times faster than stable argsorts or np.unique here.
    if int(pair.max()) < np.iinfo(np.int64).max // n:
        key = np.sort(pair * n + np.arange(n))
        pair_sorted, slot = key // n, key % n
    else:
        order = np.argsort(pair, kind="stable")
        pair_sorted, slot = pair[order], order
    first = np.ones(n, dtype=bool)
    first[1:] = pair_sorted[1:] != pair_sorted[:-1]
    # Now order the distinct pairs by (user, earliest slot).
    slot = slot[first]
    by_user = np.sort(user[slot] * n + slot)
    user, slot = by_user // n, by_user % n
    item = item[slot]
    start = np.searchsorted(user, np.arange(len(target)))
    keep = np.arange(len(user)) - start[user] < target[user]
    return user[keep], item[keep]


def _ratings(user: np.ndarray, item: np.ndarray, user_comm: np.ndarray, item_comm: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    quality = rng.normal(0.0, 0.5, len(item_comm))
    bias = rng.normal(0.0, 0.4, len(user_comm))
    match = user_comm[user] == item_comm[item]
    score = 2.6 + 1.4 * match + quality[item] + bias[user] + rng.normal(0.0, 0.7, len(user))
    return np.clip(np.rint(score), 1, 5).astype(np.float32)


def _timestamps(user: np.ndarray, num_users: int, rng: np.random.Generator) -> np.ndarray:
    start = rng.random(num_users) * _SPAN_SECONDS * 0.8
    # Activity windows from days to months: some users binge, some stay for years.
    window = rng.lognormal(np.log(60 * 86400), 1.0, num_users)
    offset = rng.exponential(1.0, len(user)) * window[user]
    t = _EPOCH + np.minimum(start[user] + offset, _SPAN_SECONDS)
    return t.astype(np.int64)
