"""Resizing a float batch, and progressive resizing: smaller images for the first part of a run,
the whole size by its end (the schedule of the fast ImageNet recipes, which train at a lower
resolution for most epochs and ramp up to the full one towards the end).

:func:`resize` resamples a batch to a given size (bilinear, antialiased when it shrinks, so a
smaller batch looks like a lower-resolution photograph rather than a subsampled one).
:func:`progressive_side` is the side a run trains at for its progress: ``low`` of the whole side
until the ramp starts, growing linearly to the whole side by its end, in steps of an eighth of
the whole side, so that a run sees a handful of shapes (a compiled model or a tuned convolution
meets each once). :func:`mean_area` is the share of the whole size's pixels a run handles on
average, what a budget plans epochs by."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import PlanContext, StageFn, module_form

__all__ = ["Resize", "mean_area", "parse_ramp", "progressive_resize_stage", "progressive_shape", "progressive_side",
           "resize"]


def resize(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """``images`` (float, ``(B, C, H, W)``) resampled to ``size`` (a side, or ``(height, width)``),
    in the memory format it came in; the batch itself when it already has that size."""
    h, w = (size, size) if isinstance(size, int) else size
    if h < 1 or w < 1:
        raise ValueError(f"resize to {h}x{w}: both sides must be at least 1")
    if tuple(images.shape[-2:]) == (h, w):
        return images
    shrink = h < images.shape[-2] or w < images.shape[-1]
    out = F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)
    last = images.dim() == 4 and images.shape[1] > 1 and images.is_contiguous(memory_format=torch.channels_last)
    return out.contiguous(memory_format=torch.channels_last) if last else out.contiguous()


Resize = module_form(resize, "Resize")


def parse_ramp(text: str) -> tuple[float, float]:
    """``"START,END"`` (shares of the run, 0 <= START <= END <= 1) as two floats."""
    try:
        start, end = (float(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"{text!r}: expected START,END, two shares of the run, e.g. 0.5,0.85") from None
    if not 0 <= start <= end <= 1:
        raise ValueError(f"{text!r}: START,END need 0 <= START <= END <= 1")
    return start, end


def progressive_side(progress: float, full: int, low: float, ramp: tuple[float, float]) -> int:
    """The side to train at, at ``progress`` (0 to 1) of a run: ``low`` (a share of ``full``)
    until ``ramp[0]``, then growing linearly to ``full`` at ``ramp[1]``; a multiple of an eighth
    of ``full`` (rounded down, at least one eighth) until it reaches ``full``."""
    start, end = ramp
    if low >= 1:
        return full
    t = 1.0 if progress >= end else 0.0 if progress <= start else (progress - start) / (end - start)
    step = max(1, full // 8)  # not tuning: a handful of shapes per run
    side = full * (low + t * (1 - low))
    return full if side >= full else max(step, int(side // step) * step)


def progressive_shape(progress: float, full: tuple[int, int], low: float, ramp: tuple[float, float]
                      ) -> tuple[int, int]:
    """``(height, width)`` to train at: the height's :func:`progressive_side`, the width keeping
    the images' aspect."""
    h, w = full
    side = progressive_side(progress, h, low, ramp)
    return side, max(1, round(w * side / h))


def mean_area(full: int, low: float, ramp: tuple[float, float], points: int = 1000) -> float:
    """The share of the whole size's pixels an image has on average over a run (1 when off)."""
    sides = [progressive_side((k + 0.5) / points, full, low, ramp) for k in range(points)]
    return sum((s / full) ** 2 for s in sides) / points


def progressive_resize_stage(ctx: PlanContext) -> StageFn | None:
    """``--progressive-resize F``: the batch resampled to the side of the run's progress (the
    height's; the width keeps the images' aspect), after every other stage."""
    low = ctx.option("progressive_resize")
    if low >= 1:
        return None
    ramp = parse_ramp(ctx.option("progressive_ramp"))
    full = tuple(ctx.image_size)

    def apply(v, _seed):
        v.images = resize(v.images, progressive_shape(v.progress, full, low, ramp))  # the batch itself when whole
        return v

    return apply
