"""JPEG (or differently sized) images decoded in batches and cropped on the device.

:func:`decode_jpeg_batch` hands the stored JPEG bytes of a batch to nvjpeg
(``torchvision.io.decode_jpeg(..., device="cuda")``, one call for the whole batch) on a CUDA
device, and to Pillow on the CPU. :class:`JpegLoader` puts decoding and the batched crops of
:mod:`fastvis.augment.resized_crop` together behind background threads for training on photos.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..augment.resized_crop import center_boxes, resized_crops, rrc_boxes
from ..beton import BetonReader
from ..beton.format import MODE_JPEG
from .base import Batch
from .order import as_samples, epoch_order, shard_indices

__all__ = ["JpegLoader", "center_sample", "decode_jpeg_batch"]


def decode_jpeg_batch(reader: BetonReader, indices, device: torch.device | str = "cpu",
                      name: str = "image") -> list[torch.Tensor]:
    """Images ``indices`` of a JPEG (or raw) RGB field as a list of (3, H, W) uint8 tensors on
    ``device``. A damaged JPEG raises ``BetonError`` naming the file and the sample."""
    device = torch.device(device)
    idx = [int(i) for i in np.asarray(indices).reshape(-1)]
    modes = reader.image_modes(name)[idx]
    if device.type == "cuda" and len(idx) and (modes == MODE_JPEG).all():
        from torchvision.io import ImageReadMode, decode_jpeg

        data = [torch.from_numpy(reader.payload(i, name).copy()) for i in idx]
        try:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:  # nvjpeg does not say which: the CPU decoder names the bad sample
            for i in idx:
                reader.get(i, name)
            raise
    out = []
    for i in idx:
        img = reader.get(i, name)  # (H, W, 3) uint8, decoded by Pillow
        if not img.flags.writeable:  # a raw image is a view of the file
            img = img.copy()
        out.append(torch.from_numpy(img).permute(2, 0, 1).to(device))
    return out


class JpegLoader:
    """``size x size`` crops of an RGB field stored as JPEG or in differing sizes (photos,
    ImageNet-style folders), batch by batch: ``for images, labels in loader``.

    Training (``train=True``): every image a random-resized crop (:func:`rrc_boxes`) mirrored
    with probability ``flip_p``; evaluation: the centre crop (:func:`center_boxes`).

    On CUDA each background thread hands the compressed bytes of a whole batch to nvjpeg in one
    call and crops it (:func:`resized_crops`, one ``roi_align``) on a side stream that the
    consumer's stream then waits for, so decoding overlaps training. On the CPU each background
    thread decodes (Pillow) and crops whole batches (antialiased uint8 resampling). With
    ``mean``/``std`` (in [0, 1] units) batches come normalised as float32 (on the CPU image by
    image, in the threads), otherwise as uint8. At most ``prefetch`` batches are in flight.

    The crops of batch ``k`` of epoch ``e`` are drawn from ``(seed, e, rank, k)`` and the order
    from ``(seed, e)``: the same seed gives the same batches whatever the number of threads.
    With ``world > 1`` each rank reads its own part of every epoch (:func:`shard_indices`).
    ``checked``: each sample is checked against the CRC-32 written with the file the first time
    it is read (:class:`fastvis.beton.BetonReader`). A :class:`fastvis.loader.BatchLoader`: it
    ``applies`` crop and flip (and normalize with ``mean``/``std``), ``per_rank``.
    """

    per_rank = True

    def __init__(self, path, batch_size: int, size: int, train: bool = True, scale=(0.08, 1.0),
                 ratio=(3 / 4, 4 / 3), flip_p: float = 0.5, crop_frac: float = 0.875, seed: int = 0,
                 rank: int = 0, world: int = 1, drop_last: bool = True, threads: int | None = None,
                 prefetch: int = 3, device="cpu", image_field: str = "image", label_field: str = "label",
                 mean=None, std=None, samples=None, checked: bool = True):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world}")
        self.reader = BetonReader(path, checked=checked)
        self.sizes = self.reader.image_sizes(image_field)  # TypeError unless an RGB field
        self.image_field, self.size, self.train = image_field, int(size), train
        self.scale, self.ratio, self.flip_p, self.crop_frac = scale, ratio, flip_p, crop_frac
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.drop_last, self.mean, self.std = drop_last, mean, std
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.prefetch = max(1, prefetch)
        self.device = torch.device(device)
        self.labels = self.reader.labels(label_field)
        self.samples = as_samples(samples, len(self.reader))  # None: every sample of the file
        self.epoch = 0
        self.applies = frozenset({"crop", "flip"} | ({"normalize"} if mean is not None else set()))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self, epoch: int | None = None) -> torch.Tensor:
        """This rank's sample order for an epoch (shuffled when training, file order otherwise)."""
        epoch = self.epoch if epoch is None else epoch
        ids = self.samples
        n = len(self.reader) if ids is None else len(ids)
        order = epoch_order(n, self.seed, epoch) if self.train else torch.arange(n)
        return shard_indices(order if ids is None else ids[order], self.rank, self.world)

    def __len__(self) -> int:
        n = len(self.indices(0))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def crops(self, idx: np.ndarray, k: int, epoch: int | None = None):
        """(boxes, flips) of batch ``k`` holding samples ``idx``."""
        sizes = self.sizes[idx]
        if not self.train:
            return center_boxes(sizes, self.crop_frac), None
        r = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch, self.rank, k])
        boxes = rrc_boxes(sizes, self.scale, self.ratio, r)
        return boxes, r.random(len(idx)) < self.flip_p

    def _prepare(self, idx: np.ndarray, k: int, epoch: int):
        """One batch, in a background thread: ``(crops, event)``. On CUDA the thread decodes and
        crops on its own stream and ``event`` marks the end of that work; None on the CPU."""
        boxes, flips = self.crops(idx, k, epoch)
        if self.device.type != "cuda":
            imgs = decode_jpeg_batch(self.reader, idx, self.device, self.image_field)
            return resized_crops(imgs, boxes, self.size, flips, mean=self.mean, std=self.std), None
        stream = torch.cuda.Stream(self.device)
        with torch.cuda.stream(stream):
            imgs = decode_jpeg_batch(self.reader, idx, self.device, self.image_field)
            x = resized_crops(imgs, boxes, self.size, flips, mean=self.mean, std=self.std)
            event = torch.cuda.Event()
            event.record(stream)
        return x, event

    def _finish(self, work) -> torch.Tensor:
        x, event = work
        if event is not None:  # the consumer's stream waits for the thread's stream, without blocking the host
            current = torch.cuda.current_stream(self.device)
            current.wait_event(event)
            x.record_stream(current)
        return x

    def batches(self, first: int = 0):
        """:class:`Batch` ``first, first + 1, ...`` of the current epoch (resuming skips without decoding)."""
        order = self.indices().numpy()
        epoch, b = self.epoch, self.batch_size
        starts = list(range(0, len(order), b))
        if self.drop_last and len(order) % b:
            starts = starts[:-1]
        todo = list(range(first, len(starts)))
        pending: deque = deque()
        with ThreadPoolExecutor(self.threads) as pool:
            def submit(j: int) -> None:
                k = todo[j]
                idx = order[starts[k] : starts[k] + b]
                pending.append((idx, pool.submit(self._prepare, idx, k, epoch)))

            for j in range(min(self.prefetch, len(todo))):
                submit(j)
            for j in range(len(todo)):
                idx, fut = pending.popleft()
                x = self._finish(fut.result())
                if j + self.prefetch < len(todo):
                    submit(j + self.prefetch)
                labels = torch.from_numpy(self.labels[idx]).to(self.device, non_blocking=True)
                yield Batch(x, labels, torch.from_numpy(idx))

    def __iter__(self):
        """``(images, labels)`` of every batch of the current epoch."""
        return ((b.images, b.labels) for b in self.batches(0))


def center_sample(reader: BetonReader, name: str, n: int, size: int, crop_frac: float, device,
                  samples=None) -> torch.Tensor:
    """Centre crops (:func:`center_boxes`) of up to ``n`` images evenly spread over a file (or
    over its ``samples``)."""
    ids = np.arange(len(reader)) if samples is None else np.asarray(samples, np.int64)
    pick = ids[np.linspace(0, len(ids) - 1, min(n, len(ids))).astype(np.int64)]
    sizes = reader.image_sizes(name)
    out = []
    for s in range(0, len(pick), 512):
        idx = pick[s : s + 512]
        imgs = decode_jpeg_batch(reader, idx, device, name)
        out.append(resized_crops(imgs, center_boxes(sizes[idx], crop_frac), size))
    return torch.cat(out)
