"""Streaming from a memory-mapped .beton for datasets larger than device memory.

Background threads gather batches (``BetonReader.read_batch``: a parallel numba copy for raw
images and arrays, threaded decoding for JPEG) into a ring of preallocated (pinned, on CUDA)
buffers; the consumer copies each one to the device on a side stream, without blocking, and
the copy overlaps the compute of the previous batch. The prefetch depth bounds memory.

Sample order per epoch, fixed by ``(seed, epoch)`` whatever the number of threads:

- ``random``: a uniform permutation;
- ``quasi_random``: data pages in random order, samples shuffled within windows of a few
  consecutive pages, so each batch touches few pages (page-cache and disk friendly). Only for
  files whose samples were written in shuffled order: in a file written class by class (an
  image folder), a window holds few classes and so would each batch;
- ``sequential``: file order.

With ``world > 1`` each rank reads its own part of every epoch (``shard_indices``: disjoint,
equal sizes, padded by wrapping like ``DistributedSampler``).
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..beton import BetonReader
from .base import Batch
from .order import ORDERS, as_samples, epoch_order, quasi_random_order, shard_indices

__all__ = ["StreamingLoader"]


class StreamingLoader:
    """Batches of ``fields`` from a .beton: ``for images, labels in loader`` (images as
    (B, C, H, W) uint8 in channels-last memory, scalar fields as (B,) tensors).

    ``threads`` gather batches in the background, at most ``prefetch`` ahead. On CUDA the
    buffers are pinned and copies run on a side stream; on the CPU each batch is a fresh tensor.
    Call ``set_epoch(e)`` before each epoch for a new order. ``checked``: each sample is checked
    against the CRC-32 written with the file the first time it is read (a damaged one raises
    :class:`fastvis.beton.BetonError` naming it). A :class:`fastvis.loader.BatchLoader`
    (``batches`` gives the first two fields as images and labels); nothing ``applies``d.
    """

    applies = frozenset()

    def __init__(self, path, batch_size: int, fields=("image", "label"), order: str = "quasi_random",
                 seed: int = 0, rank: int = 0, world: int = 1, drop_last: bool = True, threads: int | None = None,
                 prefetch: int = 3, device="cpu", window_pages: int = 8, samples=None, checked: bool = True):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world}")
        self.reader = BetonReader(path, checked=checked)
        self.fields = list(fields)
        for f in self.fields:
            if f not in self.reader.fields:
                raise KeyError(f"{path} has no field {f!r}; fields: {self.reader.names}")
        self.batch_size, self.order, self.seed = batch_size, order, seed
        self.rank, self.world, self.drop_last = rank, world, drop_last
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.prefetch = max(1, prefetch)
        self.device = torch.device(device)
        self.window_pages = window_pages
        self.per_rank = world > 1
        self.samples = as_samples(samples, len(self.reader))  # None: every sample of the file
        self.epoch = 0
        self._shapes = {f: self._sample_shape(f) for f in self.fields}
        self._pages = self._sample_pages()

    def _sample_shape(self, name: str):
        spec = self.reader.batch_spec(name)  # ValueError naming the file for images of differing sizes
        if spec is None:
            raise TypeError(f"field {name!r} ({type(self.reader.fields[name]).__name__}) cannot be batched")
        return spec

    def _sample_pages(self) -> np.ndarray:
        """The data page of each sample (its first payload), for the quasi-random order."""
        for j, name in enumerate(self.reader.names):
            ptrs = self.reader._ptrs[j]
            if ptrs is not None:
                return ptrs // self.reader.page_size
        return np.zeros(len(self.reader), np.int64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self, epoch: int | None = None) -> torch.Tensor:
        """This rank's sample order for an epoch."""
        epoch = self.epoch if epoch is None else epoch
        ids = self.samples
        n = len(self.reader) if ids is None else len(ids)
        if self.order == "random":
            order = epoch_order(n, self.seed, epoch)
        elif self.order == "quasi_random":
            pages = self._pages if ids is None else self._pages[ids.numpy()]
            order = quasi_random_order(pages, self.seed, epoch, self.window_pages)
        else:
            order = torch.arange(n)
        return shard_indices(order if ids is None else ids[order], self.rank, self.world)

    def __len__(self) -> int:
        n = len(self.indices(0))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def sample(self, n: int, name: str = "image") -> torch.Tensor:
        """Up to ``n`` images spread over the samples, (n, C, H, W) on the device (statistics, initialisation)."""
        ids = np.arange(len(self.reader)) if self.samples is None else self.samples.numpy()
        pick = ids[np.linspace(0, len(ids) - 1, min(n, len(ids))).astype(np.int64)]
        return _layout(torch.from_numpy(self.reader.read_batch(name, pick))).to(self.device)

    # -- iteration -----------------------------------------------------------------------------
    def _alloc(self, b: int):
        pin = self.device.type == "cuda"
        out = {}
        for f, (shape, dtype) in self._shapes.items():
            t = torch.empty((b, *shape), dtype=_torch_dtype(dtype), pin_memory=pin)
            out[f] = t
        return out

    def _fill(self, slot: dict, idx: np.ndarray) -> int:
        for f in self.fields:
            arr = slot[f][: len(idx)].numpy()
            self.reader.read_batch(f, idx, out=arr, threads=1)
        return len(idx)

    def __iter__(self):
        """Tuples of ``fields`` of every batch of the current epoch."""
        return (fields for _, fields in self._stream(0))

    def batches(self, first: int = 0):
        """:class:`Batch` ``first, first + 1, ...`` of the current epoch (skipped batches are not read)."""
        for idx, fields in self._stream(first):
            yield Batch(fields[0], fields[1], torch.from_numpy(idx))

    def _stream(self, first: int):
        order = self.indices().numpy()
        b = self.batch_size
        starts = list(range(0, len(order), b))
        if self.drop_last and len(order) % b:
            starts = starts[:-1]
        starts = starts[first:]
        cuda = self.device.type == "cuda"
        slots = [self._alloc(b) for _ in range(self.prefetch)]
        ready = [None] * self.prefetch  # CUDA events: the slot's last copy has finished
        stream = torch.cuda.Stream(self.device) if cuda else None
        pending: deque = deque()
        with ThreadPoolExecutor(self.threads) as pool:
            def submit(k: int):
                s = k % self.prefetch
                if ready[s] is not None:
                    ready[s].synchronize()  # the device copy out of this slot is done
                idx = order[starts[k] : starts[k] + b]
                pending.append((k, s, pool.submit(self._fill, slots[s], idx)))

            for k in range(min(self.prefetch, len(starts))):
                submit(k)
            for k in range(len(starts)):
                _, s, fut = pending.popleft()
                n = fut.result()
                batch = []
                if cuda:
                    with torch.cuda.stream(stream):
                        for f in self.fields:
                            batch.append(_layout(slots[s][f][:n]).to(self.device, non_blocking=True))
                        ev = torch.cuda.Event()
                        ev.record(stream)
                    ready[s] = ev
                    torch.cuda.current_stream(self.device).wait_stream(stream)
                    for t in batch:
                        t.record_stream(torch.cuda.current_stream(self.device))
                else:
                    batch = [_layout(slots[s][f][:n]).clone(memory_format=torch.preserve_format)
                             for f in self.fields]
                if k + self.prefetch < len(starts):
                    submit(k + self.prefetch)
                yield order[starts[k] : starts[k] + b], tuple(batch)


def _layout(t: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) images as (B, 3, H, W) views (channels-last memory); others unchanged."""
    if t.dim() == 4 and t.shape[-1] == 3 and t.dtype == torch.uint8:
        return t.permute(0, 3, 1, 2)
    return t


def _torch_dtype(dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=np.dtype(dtype))).dtype
