"""Random-resized crops (the ImageNet recipe) and centre crops of images of any size, batched.

:func:`rrc_boxes` draws Inception-style boxes (area fraction ``scale``, aspect ``ratio``, ten
tries then a centre crop, as torchvision does), :func:`center_boxes` the evaluation crop, and
:func:`resized_crops` resamples every box of a batch to ``size x size`` (antialiased uint8
resampling box by box on the CPU, one ``roi_align`` call on CUDA), mirrored and optionally
normalised. :class:`fastvis.loader.JpegLoader` uses them right after decoding.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .base import module_form
from .generators import GeneratorLike, rng

__all__ = ["RandomResizedCrop", "center_boxes", "center_crop_resize", "random_resized_crop", "resized_crops",
           "rrc_boxes"]


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


RandomResizedCrop = module_form(random_resized_crop, "RandomResizedCrop")
