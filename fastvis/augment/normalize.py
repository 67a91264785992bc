"""uint8 batches to normalised float, channels-last."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import PlanContext, StageFn, module_form, on_images

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD", "Normalize", "normalize"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float], dtype: torch.dtype = torch.float32,
              channels_last: bool = True) -> torch.Tensor:
    """``(x / 255 - mean) / std`` for uint8 input (``(x - mean) / std`` for float input in
    [0, 1]), as ``dtype``, in channels-last memory order unless told otherwise."""
    c = images.shape[1]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean and std need {c} values, got {len(mean)} and {len(std)}")
    unit = 255.0 if images.dtype == torch.uint8 else 1.0
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, c, 1, 1) * unit
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, c, 1, 1) * unit
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    src = images.contiguous(memory_format=fmt).to(torch.float32)  # the layout change on the small dtype
    out = torch.addcmul(-m / s, src, 1.0 / s)  # one fused pass: x / s - m / s
    if dtype != torch.float32:
        out = out.to(dtype)
    return out if out.is_contiguous(memory_format=fmt) else out.contiguous(memory_format=fmt)


Normalize = module_form(normalize, "Normalize")


def normalize_stage(ctx: PlanContext) -> StageFn | None:
    """Every run's: the data's mean and std, in the run's memory format (none when the loader
    already normalises)."""
    if "normalize" in ctx.applied:
        return None
    mean, std, last = ctx.mean, ctx.std, ctx.channels_last
    return on_images(lambda x, s: normalize(x, mean, std, channels_last=last))
