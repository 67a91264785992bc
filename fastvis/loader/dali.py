"""A DALI pipeline fed from a .beton (``fastvis-train --loader dali``).

An external source hands DALI the samples of each batch straight from the memory-mapped file
(the compressed bytes of JPEG images, the pixels of raw ones); DALI decodes (nvjpeg through its
``mixed`` decoder on a GPU, libjpeg-turbo on the CPU), crops, mirrors and normalises, and the
batch comes back as a torch tensor on the device. Crops:

- ``rrc``: random-resized crops to ``size x size`` (area fraction ``scale``, aspect ``ratio``),
  the ImageNet recipe, for JPEG or differently sized images;
- ``pad``: a random ``H x W`` window of the image padded by ``padding`` zeros on each side, the
  CIFAR recipe, for images that share one size.

The sample order of epoch ``e`` is ``epoch_order(n, seed, e)`` (sharded by rank with
``world > 1``); DALI's own random draws follow its pipeline seed, fixed by ``(seed, rank)`` and
the batch the pipeline starts at. Without a GPU the pipeline runs on the CPU
(``device_id=None``). Needs the ``dali`` extra (``pip install 'fastvis[dali]'``).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ..beton import BetonReader
from ..beton.format import MODE_JPEG
from .base import Batch
from .order import as_samples, epoch_order, shard_indices

__all__ = ["DaliLoader"]


def _dali():
    try:
        from nvidia.dali import fn, pipeline_def, types
    except ImportError:
        raise ImportError("the DALI loader needs NVIDIA DALI: pip install 'fastvis[dali]'") from None
    return fn, pipeline_def, types


class DaliLoader:
    """Training batches ``(images, labels)`` of a .beton through a DALI pipeline.

    ``images``: (B, 3, size, size) float32, normalised by ``mean``/``std`` (in [0, 1] units), or
    uint8 when ``mean`` is None; ``labels``: (B,) int64; both on ``device``. Batches are whole
    (the last partial batch of an epoch is dropped). Call ``set_epoch(e)`` before each epoch.
    ``checked``: each sample is checked against the CRC-32 written with the file the first time
    it is read.
    A :class:`fastvis.loader.BatchLoader`: it ``applies`` crop, flip (and normalize with
    ``mean``/``std``), ``per_rank``.
    """

    per_rank = True

    def __init__(self, path, batch_size: int, size: int | None = None, crop: str = "rrc", padding: int = 4,
                 scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_p: float = 0.5, mean=None, std=None, seed: int = 0,
                 rank: int = 0, world: int = 1, threads: int | None = None, prefetch: int = 2, device="cpu",
                 image_field: str = "image", label_field: str = "label", samples=None, checked: bool = True):
        _dali()
        if crop not in ("rrc", "pad"):
            raise ValueError(f"crop must be rrc or pad, not {crop!r}")
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world}")
        self.reader = BetonReader(path, checked=checked)
        self.sizes = self.reader.image_sizes(image_field)  # TypeError unless an RGB field
        self.uniform = bool(len(self.sizes)) and bool((self.sizes == self.sizes[0]).all())
        if crop == "pad" and not self.uniform:
            raise ValueError(f"{path}: images differ in size; the padded crop needs one size (use crop='rrc')")
        if size is None:
            if not self.uniform or self.sizes[0][0] != self.sizes[0][1]:
                raise ValueError(f"{path}: give the crop size (images are not all square of one size)")
            size = int(self.sizes[0][0])
        if crop == "pad" and tuple(self.sizes[0]) != (size, size):
            raise ValueError(f"{path}: the padded crop keeps the image size {tuple(self.sizes[0])}, not {size}")
        modes = self.reader.image_modes(image_field)
        self.jpeg = bool((modes == MODE_JPEG).all())
        if not self.jpeg and (modes == MODE_JPEG).any():
            raise ValueError(f"{path}: field {image_field!r} mixes JPEG and raw images")
        self.labels = self.reader.labels(label_field)
        self.samples = as_samples(samples, len(self.reader))  # None: every sample of the file
        self.image_field, self.size, self.crop, self.padding = image_field, int(size), crop, padding
        self.scale, self.ratio, self.flip_p = scale, ratio, flip_p
        self.applies = frozenset({"crop", "flip"} | ({"normalize"} if mean is not None else set()))
        self.mean = None if mean is None else [255 * float(m) for m in mean]
        self.std = None if std is None else [255 * float(s) for s in std]
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.prefetch = max(1, prefetch)
        self.device = torch.device(device)
        self.epoch = 0
        self._pipe = None
        self._next = None  # (epoch, batch) the running pipeline yields next
        self._orders: dict[int, np.ndarray] = {}

    # -- order ------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self, epoch: int | None = None) -> torch.Tensor:
        epoch = self.epoch if epoch is None else epoch
        ids = self.samples
        order = epoch_order(len(self.reader) if ids is None else len(ids), self.seed, epoch)
        return shard_indices(order if ids is None else ids[order], self.rank, self.world)

    def __len__(self) -> int:
        return len(self.indices(0)) // self.batch_size

    def _batch_indices(self, epoch: int, k: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: self.indices(epoch).numpy()}  # keep one epoch's order
        return self._orders[epoch][k * self.batch_size : (k + 1) * self.batch_size]

    # -- pipeline ---------------------------------------------------------------------------------
    def _build(self, epoch: int, first: int):
        fn, pipeline_def, types = _dali()
        gpu = self.device.type == "cuda"
        steps = len(self)
        position = [epoch, first]

        def source():
            e, k = position
            idx = self._batch_indices(e, k)
            position[:] = [e + 1, 0] if k + 1 >= steps else [e, k + 1]
            labels = self.labels[idx]
            if self.jpeg:
                return [self.reader.payload(int(i), self.image_field) for i in idx], labels
            if self.uniform:
                return self.reader.read_batch(self.image_field, idx, threads=1), labels
            return [self.reader.get(int(i), self.image_field) for i in idx], labels

        seed = int(np.random.default_rng([self.seed, self.rank, epoch, first]).integers(2**31))

        @pipeline_def(batch_size=self.batch_size, num_threads=self.threads, seed=seed,
                      device_id=(self.device.index or 0) if gpu else None, prefetch_queue_depth=self.prefetch)
        def pipeline():
            images, labels = fn.external_source(source=source, num_outputs=2, batch=True,
                                                dtype=[types.UINT8, types.INT64])
            if self.jpeg and self.crop == "rrc":
                images = fn.decoders.image_random_crop(
                    images, device="mixed" if gpu else "cpu", output_type=types.RGB, random_area=list(self.scale),
                    random_aspect_ratio=list(self.ratio), num_attempts=10)
            elif self.jpeg:
                images = fn.decoders.image(images, device="mixed" if gpu else "cpu", output_type=types.RGB)
            elif gpu:
                images = images.gpu()
            if self.crop == "rrc":
                if self.jpeg:
                    images = fn.resize(images, resize_x=self.size, resize_y=self.size, antialias=True)
                else:
                    images = fn.random_resized_crop(images, size=[self.size, self.size], random_area=list(self.scale),
                                                    random_aspect_ratio=list(self.ratio), num_attempts=10)
            else:
                p = self.padding
                start = fn.random.uniform(values=list(range(-p, p + 1)), shape=[2], dtype=types.INT32)
                images = fn.slice(images, start=start, shape=[self.size, self.size], axis_names="HW",
                                  out_of_bounds_policy="pad", fill_values=0)
            mirror = fn.random.coin_flip(probability=self.flip_p)
            kwargs = dict(dtype=types.FLOAT, mean=self.mean, std=self.std) if self.mean is not None else \
                dict(dtype=types.UINT8)
            images = fn.crop_mirror_normalize(images, mirror=mirror, output_layout="CHW", **kwargs)
            return images, labels

        pipe = pipeline()
        pipe.build()
        return pipe

    def _to_torch(self, tensor_list, dtype: torch.dtype) -> torch.Tensor:
        from nvidia.dali.backend import TensorListGPU
        from nvidia.dali.plugin.pytorch import feed_ndarray

        t = tensor_list.as_tensor()
        on_gpu = isinstance(tensor_list, TensorListGPU)  # labels stay on the CPU side of the pipeline
        out = torch.empty(tuple(t.shape()), dtype=dtype, device=self.device if on_gpu else "cpu")
        feed_ndarray(t, out, cuda_stream=torch.cuda.current_stream(self.device) if on_gpu else None)
        return out.to(self.device, non_blocking=True)

    def batches(self, first: int = 0):
        """:class:`Batch` ``first, first + 1, ...`` of the current epoch."""
        epoch, steps = self.epoch, len(self)
        if self._pipe is None or self._next != (epoch, first):
            self._pipe = self._build(epoch, first)  # a new start: (re)build where it begins
            self._next = (epoch, first)
        dtype = torch.float32 if self.mean is not None else torch.uint8
        for k in range(first, steps):
            try:
                images, labels = self._pipe.run()
            except RuntimeError:
                self._pipe = None
                self._name_bad_sample(epoch, range(k, min(steps, k + self.prefetch + 1)))
                raise
            self._next = (epoch + 1, 0) if k + 1 >= steps else (epoch, k + 1)
            idx = torch.from_numpy(self._batch_indices(epoch, k))
            yield Batch(self._to_torch(images, dtype), self._to_torch(labels, torch.int64), idx)

    def __iter__(self):
        """``(images, labels)`` of every batch of the current epoch."""
        return ((b.images, b.labels) for b in self.batches(0))

    def _name_bad_sample(self, epoch: int, batches) -> None:
        """After DALI failed on a batch: decode the samples it may have held, so that a damaged
        one raises ``BetonError`` naming the file and the sample."""
        for k in batches:
            for i in self._batch_indices(epoch, k):
                self.reader.get(int(i), self.image_field)
