"""The whole dataset held on the device as uint8, batches gathered by index (small datasets).

Memory: ``N * C * H * W`` bytes for the images plus ``8 * N`` for the labels (CIFAR-10/100:
150 MB + 0.4 MB for the 50,000 training images). ``ResidentDataset.load`` checks it against
the free memory of the device before copying.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from .. import InputError
from ..beton import BetonReader
from .base import Batch
from .order import as_samples, epoch_order, shard_indices

__all__ = ["ResidentDataset", "ResidentLoader", "channel_mean_std"]


def channel_mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std, in [0, 1] units, of a (N, C, H, W) uint8 (or [0, 1] float) batch."""
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    return tuple(x.mean((0, 2, 3)).tolist()), tuple(x.std((0, 2, 3)).tolist())


def _check_fits(path, need: int, device: torch.device) -> None:
    """``need`` bytes of images must fit in 80% of a CUDA device's free memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if need > 0.8 * free:
            raise MemoryError(f"{path}: {need / 1e9:.1f} GB of images do not fit in {free / 1e9:.1f} GB free "
                              f"on {device}")


def _labels(reader: BetonReader, label_field: str, device: torch.device,
            ids: np.ndarray) -> tuple[torch.Tensor, int, list[str]]:
    """(labels of samples ``ids`` on the device, number of classes, class names) of a file."""
    every = reader.labels(label_field)
    labels = every[ids]
    k = int(reader.info.get("num_classes") or (every.max() + 1))
    return torch.from_numpy(labels).to(device), k, list(reader.info.get("classes") or [])


@dataclass
class ResidentDataset:
    """RGB images as uint8; radiographs (an ``N x N`` array ``image`` field with ``meta``, from
    ``fastvis-convert DICOM_DIR --size N``) as their stored integers (2 bytes a pixel for 16-bit
    data), turned into float [0, 1] batch by batch on the device (:func:`fastvis.augment.to_unit`:
    rescale, window or min-max, MONOCHROME1 inverted) with ``params`` per sample."""

    images: torch.Tensor  # (N, C, H, W) on the device: uint8 (RGB) or stored integers (radiographs)
    labels: torch.Tensor  # (N,) int64 on the device
    num_classes: int
    classes: list[str]
    path: str = ""
    params: torch.Tensor | None = None  # (N, 5) to_unit parameters (radiographs)
    unsigned16: bool = False  # images hold uint16 bits in int16
    masks: torch.Tensor | None = None  # (N, H, W) uint8 defect masks, when the file has them

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu", image_field: str = "image",
             label_field: str = "label", window: str = "auto", size: int | None = None,
             crop_frac: float = 0.875, samples=None, checked: bool = True) -> "ResidentDataset":
        """``size``: hold ``size x size`` centre crops (:func:`fastvis.loader.center_boxes`, the
        evaluation view) of files whose images differ in size or from ``size``, decoded in
        batches (nvjpeg on CUDA); otherwise the images as stored. ``samples``: the sample ids to
        hold, in that order (default: all). ``checked``: every sample held is first checked
        against the CRC-32 written with the file, labels included (a damaged one raises
        :class:`fastvis.beton.BetonError` naming it; about 0.2 s for CIFAR's 50,000 on a CPU)."""
        reader = BetonReader(path, checked=checked)
        if len(reader) == 0:
            raise InputError(f"{path}: the file holds no samples")
        ids = np.arange(len(reader)) if samples is None else as_samples(samples, len(reader)).numpy()
        if checked:  # images and labels alike, before anything is held
            reader.check(ids)
        n = len(ids)
        device = torch.device(device)
        if "meta" in reader.names:  # radiographs (fastvis-convert of a DICOM folder)
            return cls._load_radiographs(reader, device, image_field, label_field, window, ids)
        sizes = reader.image_sizes(image_field)[ids]
        uniform = bool((sizes == sizes[0]).all())
        if size is not None and not (uniform and tuple(sizes[0]) == (size, size)):
            return cls._load_crops(reader, device, image_field, label_field, int(size), crop_frac, ids)
        if not uniform:
            raise InputError(f"{path}: images differ in size; convert with --size to hold them on the device")
        h, w = (int(v) for v in sizes[0])
        _check_fits(path, n * h * w * 3, device)
        images = reader.read_batch(image_field, ids)  # (N, H, W, 3) uint8
        t = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        return cls(t.to(device), *_labels(reader, label_field, device, ids), str(path))

    @classmethod
    def _load_crops(cls, reader: BetonReader, device, image_field, label_field, size: int, crop_frac: float, ids):
        from .jpeg import JpegLoader

        _check_fits(reader.path, len(ids) * size * size * 3, device)
        loader = JpegLoader(reader.path, 256, size, train=False, crop_frac=crop_frac, drop_last=False, device=device,
                            image_field=image_field, label_field=label_field, samples=ids, checked=False)
        images = torch.cat([x for x, _ in loader])
        return cls(images, *_labels(reader, label_field, device, ids), str(reader.path))

    @classmethod
    def _load_radiographs(cls, reader: BetonReader, device, image_field, label_field, window, ids):
        from ..augment.intensity import window_params
        from ..beton import NDArrayField

        path = reader.path
        field = reader.fields[image_field]
        if not isinstance(field, NDArrayField) or len(field.shape) != 2:
            raise InputError(f"{path}: radiographs must be converted with --size N to be trained on "
                             "(the image field holds variable-size buffers)")
        h, w = field.shape
        _check_fits(path, len(ids) * h * w * field.dtype.itemsize, device)
        raw = reader.read_batch(image_field, ids)
        unsigned16 = raw.dtype == np.uint16
        if unsigned16:
            raw = raw.view(np.int16)
        elif raw.dtype not in (np.uint8, np.int8, np.int16):
            raise InputError(f"{path}: image dtype {raw.dtype} is not 8 or 16 bits")
        params = window_params(reader.read_batch("meta", ids), window)
        masks = None
        if "mask" in reader.names:
            masks = torch.from_numpy(reader.read_batch("mask", ids)).to(device)
        images = torch.from_numpy(np.ascontiguousarray(raw))[:, None].to(device)
        return cls(images, *_labels(reader, label_field, device, ids), str(path), params, unsigned16, masks)

    def subset(self, ids) -> "ResidentDataset":
        """The samples ``ids`` (positions in this dataset), as a dataset of their own (copies)."""
        idx = torch.as_tensor(np.asarray(ids, dtype=np.int64))
        on = idx.to(self.images.device)
        return ResidentDataset(self.images.index_select(0, on), self.labels.index_select(0, on), self.num_classes,
                               self.classes, self.path, None if self.params is None else self.params[idx],
                               self.unsigned16, None if self.masks is None else self.masks.index_select(0, on))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[2:])  # type: ignore[return-value]

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (uint8, or float [0, 1] for radiographs) and labels of ``indices``."""
        idx = indices.to(self.images.device, non_blocking=True)
        x = self.images.index_select(0, idx)
        if self.params is not None:
            from ..augment.intensity import to_unit

            x = to_unit(x, self.params[indices.cpu()], self.unsigned16)
        return x, self.labels.index_select(0, idx)

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the images in [0, 1] (from up to 10,000 samples)."""
        pick = torch.arange(0, len(self), max(1, len(self) // 10_000))
        return channel_mean_std(self.batch(pick)[0] if self.params is not None else self.images[pick])


class ResidentLoader:
    """Batches of a :class:`ResidentDataset` gathered by index on its device, in the order of
    :func:`epoch_order` (a :class:`fastvis.loader.BatchLoader`; nothing ``applies``d). With
    ``world > 1`` each rank reads its own part (``per_rank``); the trainer instead gives every
    rank the global batch (``world=1``) and slices it after augmentation."""

    applies = frozenset()

    def __init__(self, dataset: ResidentDataset, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1,
                 drop_last: bool = True):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world}")
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world, self.drop_last = rank, world, drop_last
        self.per_rank = world > 1
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self, epoch: int | None = None) -> torch.Tensor:
        order = epoch_order(len(self.dataset), self.seed, self.epoch if epoch is None else epoch)
        return shard_indices(order, self.rank, self.world)

    def __len__(self) -> int:
        n = -(-len(self.dataset) // self.world)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self, first: int = 0):
        order, b = self.indices(), self.batch_size
        for k in range(first, len(self)):
            idx = order[k * b : (k + 1) * b]
            yield Batch(*self.dataset.batch(idx), idx)

    def __iter__(self):
        return ((b.images, b.labels) for b in self.batches(0))
