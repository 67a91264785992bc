"""Sample order: which samples an epoch visits, in which order, and which part each rank reads.

Every loader takes its order from here, so the same ``(seed, epoch)`` gives the same samples
whatever the loader, the number of threads or the number of processes.

- :func:`epoch_order`: a uniform permutation fixed by ``(seed, epoch)``;
- :func:`seeded_passes`: any stretch of an endless stream of such permutations of a set of ids;
- :func:`quasi_random_order`: data pages in random order, samples shuffled within windows of a
  few consecutive pages (page-cache and disk friendly), for files written in random order;
- :func:`shard_indices`: rank ``r``'s part of an epoch for ``world`` processes (disjoint, equal
  sizes, padded by wrapping as ``DistributedSampler`` does).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import InputError

__all__ = ["ORDERS", "epoch_order", "holdout_split", "quasi_random_order", "seeded_passes", "shard_indices"]

ORDERS = ("random", "quasi_random", "sequential")


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch: a permutation fixed by ``(seed, epoch)``."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def seeded_passes(items: torch.Tensor, lo: int, hi: int, seed: int, key: int) -> torch.Tensor:
    """Entries ``lo`` to ``hi`` of an endless stream of passes over ``items``, pass ``p`` in the
    order fixed by ``(seed, key + p)``: any stretch of the stream can be drawn on its own (resume)."""
    n = len(items)
    if hi <= lo:
        return items[:0]
    first = lo // n
    passes = [items[epoch_order(n, seed, key + p).to(items.device)] for p in range(first, -(-hi // n))]
    return torch.cat(passes)[lo - first * n:hi - first * n]


def shard_indices(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Rank ``rank``'s part of an epoch: the order padded (by wrapping) to a multiple of
    ``world``, then every ``world``-th index; parts are disjoint except for the padding."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    if world == 1:
        return order
    n = len(order)
    total = -(-n // world) * world
    padded = torch.cat([order, order[: total - n]]) if total > n else order
    return padded[rank:total:world]


def as_samples(samples, n: int) -> torch.Tensor | None:
    """The sample ids a loader draws from (None: all ``n`` samples of the file), checked."""
    if samples is None:
        return None
    ids = torch.as_tensor(np.asarray(samples, dtype=np.int64).reshape(-1))
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= n):
        raise ValueError(f"sample ids must lie in [0, {n})")
    return ids


def quasi_random_order(pages: np.ndarray, seed: int, epoch: int, window: int = 8) -> torch.Tensor:
    """Pages shuffled, then samples shuffled inside windows of ``window`` consecutive pages;
    ``pages[i]`` is the data page of sample ``i``."""
    rng = np.random.default_rng([seed, epoch, 7])
    uniq, inverse = np.unique(pages, return_inverse=True)
    page_order = rng.permutation(len(uniq))
    rank = np.empty(len(uniq), np.int64)
    rank[page_order] = np.arange(len(uniq))
    group = rank[inverse] // max(1, window)  # window index of each sample
    key = group.astype(np.float64) + rng.random(len(pages))  # random order inside a window
    return torch.from_numpy(np.argsort(key, kind="stable"))


def holdout_split(labels: np.ndarray, size: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train, holdout)`` sample ids: a stratified (class-balanced) held-out part of ``size``
    samples (a count, or a fraction when below 1), drawn with ``seed``; both sorted.

    Each class gives its share of the holdout in proportion to its size (the largest
    remainders get the samples left over), so the holdout's class mix is the file's."""
    labels = np.asarray(labels).reshape(-1)
    n = len(labels)
    total = int(round(size * n)) if 0 < size < 1 else int(size)
    if not 0 < total < n:
        raise InputError(f"a holdout of {size} leaves no training or no held-out samples out of {n}")
    classes, counts = np.unique(labels, return_counts=True)
    share = total * counts / n
    take = np.floor(share).astype(np.int64)
    left = total - int(take.sum())
    take[np.argsort(-(share - take), kind="stable")[:left]] += 1
    rng = np.random.default_rng([seed, 104729])
    held = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    holdout = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    mask = np.ones(n, bool)
    mask[holdout] = False
    return np.flatnonzero(mask), holdout
