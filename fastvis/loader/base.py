"""The contract every loader keeps: :class:`BatchLoader`.

A loader turns a .beton file into batches on a device, epoch by epoch::

    loader.set_epoch(e)                 # the order of epoch e (fastvis.loader.order), fixed by (seed, e)
    len(loader)                         # whole batches per epoch (of this rank, or global: see per_rank)
    for batch in loader.batches(k): ... # batches k, k + 1, ... of the epoch (a resumed run starts at k)

A :class:`Batch` holds ``images`` (B, C, H, W) on the device, ``labels`` (B,) int64 there and,
where the loader knows them cheaply, the dataset ``indices`` (B,) of its samples on the CPU.

``applies`` says what the loader already did to the pixels, so that the trainer's augmentation
plan does not do it again: ``crop`` (random or random-resized crops), ``flip`` (random mirror),
``normalize`` (float, normalised by the mean and std it was given). ``per_rank``: True when
each process reads its own part of every epoch (``shard_indices``); False when every process
gets the same global batch (the resident loader: the batch is augmented identically on every
rank, then each keeps its slice).

The loaders are registered by name in :data:`fastvis.loader.LOADERS`, which the trainer and its
``--loader`` option share.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, Protocol, runtime_checkable

import torch

__all__ = ["Batch", "BatchLoader"]


class Batch(NamedTuple):
    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor | None = None


@runtime_checkable
class BatchLoader(Protocol):
    batch_size: int
    applies: frozenset[str]
    per_rank: bool

    def set_epoch(self, epoch: int) -> None: ...

    def __len__(self) -> int: ...

    def batches(self, first: int = 0) -> Iterator[Batch]: ...
