"""Random crop with padding, horizontal flip, alternating flip and random translate, on batches.

All run through one fused kernel (``fastvis.kernels.geometric.crop_flip``): a single pass over
the output, with no padded copy of the batch.
"""
from __future__ import annotations

import torch

from .. import FastvisError
from ..kernels.geometric import crop_flip
from .base import AugmentedBatch, PlanContext, StageFn, module_form, on_images
from .generators import GeneratorLike, cpu_tensor, rng

__all__ = ["AlternatingFlip", "RandomCrop", "RandomFlip", "RandomTranslate", "alternating_flip", "hflip",
           "random_crop", "random_crop_flip", "random_translate"]

_MODES = ("zero", "reflect")


def _check(images, padding_mode="zero"):
    if images.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(images.shape)}")
    if padding_mode not in _MODES:
        raise ValueError(f"padding_mode must be one of {_MODES}, got {padding_mode!r}")


def _apply(images, oy, ox, flip, pad, mode, size=None):
    dev = images.device
    return crop_flip(images, oy.to(dev, non_blocking=True), ox.to(dev, non_blocking=True),
                     flip.to(dev, non_blocking=True), pad, mode == "reflect", size)


def random_crop_flip(images: torch.Tensor, padding: int = 4, padding_mode: str = "reflect", flip_p: float = 0.5,
                     size: tuple[int, int] | None = None, generator: GeneratorLike = None) -> torch.Tensor:
    """Pad by ``padding``, crop ``size`` (default: the input size) at a random place per sample,
    and flip each sample horizontally with probability ``flip_p``: the CIFAR recipe, fused."""
    _check(images, padding_mode)
    r = rng(generator)
    b, _, h, w = images.shape
    ho, wo = size or (h, w)
    if ho > h + 2 * padding or wo > w + 2 * padding:
        raise ValueError(f"crop {ho}x{wo} is larger than the padded image {h + 2 * padding}x{w + 2 * padding}")
    oy = cpu_tensor(r.integers(0, h + 2 * padding - ho + 1, b))
    ox = cpu_tensor(r.integers(0, w + 2 * padding - wo + 1, b))
    flip = cpu_tensor(r.random(b) < flip_p)
    return _apply(images, oy, ox, flip, padding, padding_mode, (ho, wo))


def random_crop(images: torch.Tensor, padding: int = 4, padding_mode: str = "zero",
                size: tuple[int, int] | None = None, generator: GeneratorLike = None) -> torch.Tensor:
    """Random crop of each sample from its padded image (zero or reflect padding)."""
    return random_crop_flip(images, padding, padding_mode, 0.0, size, generator)


def hflip(images: torch.Tensor, p: float = 0.5, generator: GeneratorLike = None) -> torch.Tensor:
    """Flip each sample horizontally with probability ``p``."""
    _check(images)
    b = images.shape[0]
    zero = torch.zeros(b, dtype=torch.int64)
    return _apply(images, zero, zero, cpu_tensor(rng(generator).random(b) < p), 0, "zero")


def random_translate(images: torch.Tensor, max_shift: int = 2, generator: GeneratorLike = None) -> torch.Tensor:
    """Shift each sample by up to ``max_shift`` pixels in each direction; vacated pixels are zero."""
    return random_crop(images, padding=max_shift, padding_mode="zero", generator=generator)


def alternating_flip(images: torch.Tensor, indices: torch.Tensor, epoch: int, seed: int = 0) -> torch.Tensor:
    """Flip the sample with dataset index ``i`` on every other epoch, starting from a random
    phase per sample (fixed by ``seed``): over any two epochs each image is seen both ways,
    which beats independent random flips on short CIFAR schedules."""
    _check(images)
    idx = indices.to("cpu", torch.int64)
    phase = ((idx * 2654435761 + seed * 40503 + 12345) >> 13) & 1  # multiplicative hash, one bit
    flip = (phase ^ (epoch & 1)).to(torch.bool)
    zero = torch.zeros(images.shape[0], dtype=torch.int64)
    return _apply(images, zero, zero, flip, 0, "zero")


RandomCrop = module_form(random_crop, "RandomCrop")
RandomCropFlip = module_form(random_crop_flip, "RandomCropFlip")
RandomFlip = module_form(hflip, "RandomFlip")
RandomTranslate = module_form(random_translate, "RandomTranslate")
AlternatingFlip = module_form(alternating_flip, "AlternatingFlip", inputs=("images", "indices"))


# -- stages of fastvis-train's plan (see fastvis.augment.registry) ---------------------------------
def crop_flip_stage(ctx: PlanContext) -> StageFn | None:
    """``--crop`` (reflect padding of ``--padding``) and ``--flip random`` in one pass; none when
    the loader already crops."""
    crop, flip = ctx.option("crop"), ctx.option("flip")
    if not (crop or flip == "random") or "crop" in ctx.applied:
        return None
    pad, flip_p = (ctx.option("padding") if crop else 0), (0.5 if flip == "random" else 0.0)
    if pad >= min(ctx.image_size):
        raise FastvisError(f"--padding {pad}: reflect padding must be smaller than the "
                           f"{ctx.image_size[0]}x{ctx.image_size[1]} training images")
    return on_images(lambda x, s: random_crop_flip(x, padding=pad, padding_mode="reflect", flip_p=flip_p,
                                                   generator=s))


def alternating_flip_stage(ctx: PlanContext) -> StageFn | None:
    """``--flip alternating``: each sample flipped by its index and the epoch."""
    if ctx.option("flip") != "alternating":
        return None
    seed = ctx.seed

    def alternate(v: AugmentedBatch, _seed: int) -> AugmentedBatch:
        v.images = alternating_flip(v.images, v.indices, v.epoch, seed)
        return v

    return alternate
