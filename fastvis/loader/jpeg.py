"""JPEG (or differently sized) images decoded in batches and cropped on the device.

:func:`decode_jpeg_batch` hands the stored JPEG bytes of a batch to nvjpeg
(``torchvision.io.decode_jpeg(..., device="cuda")``, one call for the whole batch) on a CUDA
device, and to Pillow on the CPU. :func:`rrc_boxes` draws Inception-style boxes (area fraction
``scale``, aspect ``ratio``, ten tries then a centre crop, as torchvision does),
:func:`center_boxes` the evaluation crop, and :func:`resized_crops` resamples every box to
``size x size``. :class:`JpegLoader` puts them together behind background threads for
training on photos.
"""
from __future__ import annotations

import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..augment._random import GeneratorLike, rng
from ..beton import BetonReader
from ..beton.format import MODE_JPEG

__all__ = ["JpegLoader", "center_boxes", "center_crop_resize", "center_sample", "decode_jpeg_batch",
           "random_resized_crop", "resized_crops", "rrc_boxes"]


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


def rrc_boxes(sizes, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), generator: GeneratorLike = None) -> np.ndarray:
    """(B, 4) boxes ``(y0, x0, h, w)`` for images of ``sizes`` (B, 2) = (H, W)."""
    r = rng(generator)
    boxes = np.zeros((len(sizes), 4), np.int64)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for b, (H, W) in enumerate(sizes):
        area = H * W
        for _ in range(10):
            target = area * r.uniform(*scale)
            aspect = math.exp(r.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= W and 0 < h <= H:
                boxes[b] = (r.integers(0, H - h + 1), r.integers(0, W - w + 1), h, w)
                break
        else:  # centre crop at the nearest allowed aspect
            in_ratio = W / H
            if in_ratio < ratio[0]:
                w, h = W, int(round(W / ratio[0]))
            elif in_ratio > ratio[1]:
                h, w = H, int(round(H * ratio[1]))
            else:
                h, w = H, W
            boxes[b] = ((H - h) // 2, (W - w) // 2, h, w)
    return boxes


def center_boxes(sizes, crop_frac: float = 0.875) -> np.ndarray:
    """(B, 4) boxes ``(y0, x0, h, w)``: the centred square of side ``crop_frac`` x the shorter side
    (the usual evaluation crop: resize the shorter side to ``size / crop_frac``, crop ``size``)."""
    sizes = np.asarray(sizes, np.int64).reshape(-1, 2)
    side = np.maximum(1, np.round(sizes.min(1) * crop_frac)).astype(np.int64)
    return np.stack([(sizes[:, 0] - side) // 2, (sizes[:, 1] - side) // 2, side, side], 1)


def resized_crops(images, boxes: np.ndarray, size: int, flips=None, method: str = "auto", mean=None,
                  std=None) -> torch.Tensor:
    """Each ``boxes[b] = (y0, x0, h, w)`` of ``images[b]`` resampled to ``size x size`` (uint8), then
    mirrored where ``flips[b]``; with ``mean``/``std`` (in [0, 1] units) normalised to float32
    (channels-last memory), image by image while it is in cache on the CPU.

    ``method``: ``interpolate`` resamples box by box with antialiased bilinear interpolation on
    the uint8 pixels (torchvision's ``resized_crop``; the fast path on the CPU), ``roi_align``
    resamples all boxes in one ``torchvision.ops.roi_align`` call on an edge-padded float batch
    (bilinear, 2 x 2 samples averaged per output pixel; one launch on CUDA). ``auto``: the
    first on the CPU, the second on CUDA.
    """
    import torch.nn.functional as F

    imgs = list(images) if not isinstance(images, torch.Tensor) else list(images.unbind(0))
    if not imgs:
        raise ValueError("no images")
    dev = imgs[0].device
    if method == "auto":
        method = "roi_align" if dev.type == "cuda" else "interpolate"
    norm = mean is not None
    if norm:
        scale = 1 / (255 * torch.tensor(std, dtype=torch.float32, device=dev).view(3, 1, 1))
        shift = -255 * torch.tensor(mean, dtype=torch.float32, device=dev).view(3, 1, 1) * scale
    if method == "interpolate":
        out = torch.empty(len(imgs), 3, size, size, dtype=torch.float32 if norm else torch.uint8, device=dev,
                          memory_format=torch.channels_last)
        for b, (t, (y, x, h, w)) in enumerate(zip(imgs, boxes.tolist())):
            crop = t[None, :, y : y + h, x : x + w]
            if dev.type != "cpu":  # uint8 antialiased resampling is a CPU kernel
                crop = crop.float()
            r = F.interpolate(crop, (size, size), mode="bilinear", antialias=True, align_corners=False)[0]
            if r.dtype != torch.uint8:
                r = r.round_().clamp_(0, 255)
            if flips is not None and flips[b]:
                r = r.flip(-1)
            if norm:
                torch.addcmul(shift, r.float(), scale, out=out[b])
            else:
                out[b] = r
        return out
    elif method == "roi_align":
        from torchvision.ops import roi_align

        sizes = np.array([tuple(t.shape[-2:]) for t in imgs])
        H, W = sizes.max(0)
        batch = torch.empty(len(imgs), 3, int(H), int(W), dtype=torch.float32, device=dev)
        for b, t in enumerate(imgs):  # edge-padded: samples at a border do not depend on the batch
            h, w = t.shape[1:]
            batch[b, :, :h, :w] = t
            batch[b, :, h:, :w] = t[:, -1:, :]
            batch[b, :, :, w:] = batch[b, :, :, w - 1 : w]
        y0, x0, h, w = (torch.from_numpy(boxes[:, k]).to(torch.float32) for k in range(4))
        rois = torch.stack([torch.arange(len(imgs), dtype=torch.float32), x0, y0, x0 + w, y0 + h], 1).to(dev)
        out = roi_align(batch, rois, (size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True)
        out = out.round_().clamp_(0, 255)
    else:
        raise ValueError(f"method must be auto, interpolate or roi_align, not {method!r}")
    if flips is not None and np.any(flips):
        flip_t = torch.from_numpy(np.asarray(flips, bool)).to(dev).view(-1, 1, 1, 1)
        out = torch.where(flip_t, out.flip(-1), out)
    out = out.contiguous(memory_format=torch.channels_last)
    return torch.addcmul(shift, out, scale) if norm else out.to(torch.uint8)


def random_resized_crop(images, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_p: float = 0.5,
                        generator: GeneratorLike = None, boxes: np.ndarray | None = None,
                        method: str = "auto") -> torch.Tensor:
    """``images``: a list of (3, H, W) uint8 tensors (sizes may differ) or a (B, 3, H, W) batch,
    on one device. Returns (B, 3, size, size) uint8 there, each a random box (:func:`rrc_boxes`)
    resampled (:func:`resized_crops`), then mirrored with probability ``flip_p``."""
    imgs = list(images) if not isinstance(images, torch.Tensor) else list(images.unbind(0))
    if not imgs:
        raise ValueError("no images")
    r = rng(generator)
    if boxes is None:
        boxes = rrc_boxes(np.array([tuple(t.shape[-2:]) for t in imgs]), scale, ratio, r)
    flips = r.random(len(imgs)) < flip_p
    return resized_crops(imgs, boxes, size, flips, method)


def center_crop_resize(images, size: int, crop_frac: float = 0.875, method: str = "auto") -> torch.Tensor:
    """The evaluation view: the centred square of ``crop_frac`` x the shorter side, resampled to
    ``size x size`` (uint8)."""
    imgs = list(images) if not isinstance(images, torch.Tensor) else list(images.unbind(0))
    boxes = center_boxes([tuple(t.shape[-2:]) for t in imgs], crop_frac)
    return resized_crops(imgs, boxes, size, None, method)


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
    """

    def __init__(self, path, batch_size: int, size: int, train: bool = True, scale=(0.08, 1.0),
                 ratio=(3 / 4, 4 / 3), flip_p: float = 0.5, crop_frac: float = 0.875, seed: int = 0,
                 rank: int = 0, world: int = 1, drop_last: bool = True, threads: int | None = None,
                 prefetch: int = 3, device="cpu", image_field: str = "image", label_field: str = "label",
                 mean=None, std=None):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world}")
        self.reader = BetonReader(path)
        self.sizes = self.reader.image_sizes(image_field)  # TypeError unless an RGB field
        self.image_field, self.size, self.train = image_field, int(size), train
        self.scale, self.ratio, self.flip_p, self.crop_frac = scale, ratio, flip_p, crop_frac
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.drop_last, self.mean, self.std = drop_last, mean, std
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.prefetch = max(1, prefetch)
        self.device = torch.device(device)
        self.labels = self.reader.column(label_field).astype(np.int64)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self, epoch: int | None = None) -> torch.Tensor:
        """This rank's sample order for an epoch (shuffled when training, file order otherwise)."""
        from .resident import epoch_order, shard_indices

        epoch = self.epoch if epoch is None else epoch
        n = len(self.reader)
        order = epoch_order(n, self.seed, epoch) if self.train else torch.arange(n)
        return shard_indices(order, self.rank, self.world) if self.world > 1 else order

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
        """Batches ``first, first + 1, ...`` of the current epoch (resuming skips without decoding)."""
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
                yield x, torch.from_numpy(self.labels[idx]).to(self.device, non_blocking=True)

    def __iter__(self):
        return self.batches(0)


def center_sample(reader: BetonReader, name: str, n: int, size: int, crop_frac: float, device) -> torch.Tensor:
    """Centre crops (:func:`center_boxes`) of up to ``n`` images evenly spread over a file."""
    pick = np.linspace(0, len(reader) - 1, min(n, len(reader))).astype(np.int64)
    sizes = reader.image_sizes(name)
    out = []
    for s in range(0, len(pick), 512):
        idx = pick[s : s + 512]
        imgs = decode_jpeg_batch(reader, idx, device, name)
        out.append(resized_crops(imgs, center_boxes(sizes[idx], crop_frac), size))
    return torch.cat(out)
