"""Cutout (DeVries & Taylor, 2017) and Random Erasing (Zhong et al., 2020) on batches."""
from __future__ import annotations

import math

import numpy as np
import torch

from .base import PlanContext, StageFn, module_form, on_images
from .generators import GeneratorLike, cpu_tensor, device_seed, rng

__all__ = ["Cutout", "RandomErasing", "cutout", "erase", "random_erasing", "random_erasing_params"]


def _box_mask(boxes: torch.Tensor, h: int, w: int, device) -> torch.Tensor:
    """(B, 1, H, W) bool mask of the half-open boxes (y0, y1, x0, x1)."""
    boxes = boxes.to(device, non_blocking=True)
    ys = torch.arange(h, device=device)
    xs = torch.arange(w, device=device)
    rows = (ys >= boxes[:, 0:1]) & (ys < boxes[:, 1:2])
    cols = (xs >= boxes[:, 2:3]) & (xs < boxes[:, 3:4])
    return (rows[:, :, None] & cols[:, None, :]).unsqueeze(1)


def erase(images: torch.Tensor, boxes: torch.Tensor, value=0, generator: GeneratorLike = None) -> torch.Tensor:
    """Fill each sample's box with ``value``: a number, or ``"random"`` (per-pixel noise:
    uniform 0..255 for uint8, standard normal for float images)."""
    b, c, h, w = images.shape
    mask = _box_mask(boxes, h, w, images.device)
    if isinstance(value, str):
        if value != "random":
            raise ValueError(f"value must be a number or 'random', got {value!r}")
        g = torch.Generator(device=images.device)
        g.manual_seed(device_seed(rng(generator)))
        if images.dtype == torch.uint8:
            fill = torch.randint(0, 256, images.shape, generator=g, device=images.device, dtype=torch.uint8)
        else:
            fill = torch.randn(images.shape, generator=g, device=images.device, dtype=images.dtype)
        return torch.where(mask, fill, images)
    return images.masked_fill(mask, value)


def cutout(images: torch.Tensor, size: int = 8, p: float = 1.0, value=0, generator: GeneratorLike = None):
    """Erase a ``size`` x ``size`` square centred at a uniform point (clipped at the border)."""
    r = rng(generator)
    b, _, h, w = images.shape
    cy, cx = r.integers(0, h, b), r.integers(0, w, b)
    half = size // 2
    boxes = np.stack([np.clip(cy - half, 0, h), np.clip(cy - half + size, 0, h),
                      np.clip(cx - half, 0, w), np.clip(cx - half + size, 0, w)], 1)
    boxes[r.random(b) >= p] = 0
    return erase(images, cpu_tensor(boxes), value, r)


def random_erasing_params(batch: int, height: int, width: int, p: float = 0.5, scale=(0.02, 0.33),
                          ratio=(0.3, 3.3), generator: GeneratorLike = None, attempts: int = 10) -> torch.Tensor:
    """Boxes as the paper samples them: area fraction ~ U(scale), log aspect ~ U(log ratio),
    retried up to ``attempts`` times until the box fits; samples not erased get empty boxes."""
    r = rng(generator)
    area = r.uniform(scale[0], scale[1], (batch, attempts)) * height * width
    aspect = np.exp(r.uniform(math.log(ratio[0]), math.log(ratio[1]), (batch, attempts)))
    eh = np.round(np.sqrt(area * aspect)).astype(np.int64)
    ew = np.round(np.sqrt(area / aspect)).astype(np.int64)
    fits = (eh < height) & (ew < width) & (eh > 0) & (ew > 0)
    k = fits.argmax(1)
    rows = np.arange(batch)
    bh, bw = eh[rows, k], ew[rows, k]
    y0 = np.floor(r.random(batch) * (height - bh + 1)).astype(np.int64)
    x0 = np.floor(r.random(batch) * (width - bw + 1)).astype(np.int64)
    boxes = np.stack([y0, y0 + bh, x0, x0 + bw], 1)
    boxes[~(fits.any(1) & (r.random(batch) < p))] = 0
    return cpu_tensor(boxes)


def random_erasing(images: torch.Tensor, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0,
                   generator: GeneratorLike = None) -> torch.Tensor:
    r = rng(generator)
    b, _, h, w = images.shape
    return erase(images, random_erasing_params(b, h, w, p, scale, ratio, r), value, r)


Cutout = module_form(cutout, "Cutout")
RandomErasing = module_form(random_erasing, "RandomErasing")


def cutout_stage(ctx: PlanContext) -> StageFn | None:
    """``--cutout SIZE``."""
    size = ctx.option("cutout")
    return on_images(lambda x, s: cutout(x, size, generator=s)) if size else None


def random_erasing_stage(ctx: PlanContext) -> StageFn | None:
    """``--erasing P``."""
    p = ctx.option("erasing")
    return on_images(lambda x, s: random_erasing(x, p=p, generator=s)) if p else None
