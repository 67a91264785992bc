"""Mixup and CutMix on whole batches, with exact soft targets.

Labels go in as class ids ``(B,)`` or soft targets ``(B, K)`` and come out as float32 soft
targets ``(B, K)``. For CutMix the partner's weight is the number of pasted pixels divided by
``H * W``, after the box is clipped to the image (not the sampled lambda); for mixup it is
``1 - lam``. The pixel work runs in the numba kernels of ``fastvis.kernels.mix``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..kernels import mix as mix_kernels
from .base import AugmentedBatch, PlanContext, StageFn, module_form
from .generators import GeneratorLike, cpu_tensor, rng

__all__ = ["CutMix", "Mixup", "MixParams", "RandomMix", "apply_cutmix", "apply_mixup", "cutmix", "cutmix_params", "mix",
           "mixup", "mixup_params", "soft_targets"]


@dataclass
class MixParams:
    """What a mix transform drew for one batch (all on the CPU)."""

    perm: torch.Tensor  # (B,) partner of each sample
    lam: torch.Tensor  # (B,) float64 weight of each sample itself
    boxes: torch.Tensor | None = None  # (B, 4) int64 y0, y1, x0, x1 (CutMix)


def _check_ids(labels: torch.Tensor, num_classes: int) -> None:
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"class ids must be an integer tensor, got {labels.dtype}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"class ids must lie in [0, {num_classes})")


def soft_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class ids (B,) -> one-hot float32 (B, K); soft targets (B, K) -> float32, checked."""
    if labels.dim() == 1:
        _check_ids(labels, num_classes)
        out = torch.zeros(labels.shape[0], num_classes, dtype=torch.float32, device=labels.device)
        return out.scatter_(1, labels.long().view(-1, 1), 1.0)
    if labels.dim() == 2 and labels.shape[1] == num_classes:
        return labels.to(torch.float32)
    raise ValueError(f"labels must be (B,) class ids or (B, {num_classes}) soft targets, got {tuple(labels.shape)}")


def _beta(r: np.random.Generator, alpha: float, n: int) -> np.ndarray:
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    return r.random(n) if alpha == 1.0 else r.beta(alpha, alpha, n)  # Beta(1, 1) is uniform


def cutmix_params(batch: int, height: int, width: int, alpha: float = 1.0, p: float = 1.0,
                  generator: GeneratorLike = None) -> MixParams:
    """Partners, boxes (one per sample, clipped) and the exact weight each sample keeps."""
    r = rng(generator)
    perm = r.permutation(batch)
    lam = _beta(r, alpha, batch)
    lam[r.random(batch) >= p] = 1.0  # samples left alone: empty box
    cy, cx = r.integers(0, height, batch), r.integers(0, width, batch)
    boxes, exact = mix_kernels.cutmix_boxes(lam, cy, cx, height, width)
    return MixParams(perm=cpu_tensor(perm), lam=cpu_tensor(exact), boxes=cpu_tensor(boxes))


def mixup_params(batch: int, alpha: float = 1.0, p: float = 1.0, generator: GeneratorLike = None) -> MixParams:
    r = rng(generator)
    perm = r.permutation(batch)
    lam = _beta(r, alpha, batch).astype(np.float32).astype(np.float64)  # the weight the kernel uses
    lam[r.random(batch) >= p] = 1.0
    return MixParams(perm=cpu_tensor(perm), lam=cpu_tensor(lam))


def mixed_targets(labels: torch.Tensor, num_classes: int, params: MixParams) -> torch.Tensor:
    """``lam * t_i + (1 - lam) * t_perm(i)`` for class ids or soft targets ``t``."""
    if labels.dim() == 1 and not labels.is_cuda:
        _check_ids(labels, num_classes)
        y = labels.numpy().astype(np.int64, copy=False)
        return torch.from_numpy(mix_kernels.mix_onehot(y, params.perm.numpy(), params.lam.numpy(), num_classes))
    targets = soft_targets(labels, num_classes)
    lam = params.lam.to(device=targets.device, dtype=torch.float32).view(-1, 1)
    perm = params.perm.to(targets.device)
    return lam * targets + (1.0 - lam) * targets[perm]


def apply_cutmix(images: torch.Tensor, labels: torch.Tensor, num_classes: int, params: MixParams):
    targets = mixed_targets(labels, num_classes, params)
    dev = images.device
    perm, boxes = params.perm.to(dev, non_blocking=True), params.boxes.to(dev, non_blocking=True)
    out = mix_kernels.cutmix_paste(images, perm, boxes)
    return out, targets


def apply_mixup(images: torch.Tensor, labels: torch.Tensor, num_classes: int, params: MixParams):
    targets = mixed_targets(labels, num_classes, params)
    dev = images.device
    lam = params.lam.to(torch.float32).to(dev, non_blocking=True)
    out = mix_kernels.mixup_blend(images, params.perm.to(dev, non_blocking=True), lam)
    return out, targets


def _check(images: torch.Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(images.shape)}")


def cutmix(images: torch.Tensor, labels: torch.Tensor, num_classes: int, alpha: float = 1.0, p: float = 1.0,
           generator: GeneratorLike = None):
    """CutMix (Yun et al., 2019) with a box per sample: returns ``(images, soft_targets)``."""
    _check(images)
    b, _, h, w = images.shape
    return apply_cutmix(images, labels, num_classes, cutmix_params(b, h, w, alpha, p, generator))


def mixup(images: torch.Tensor, labels: torch.Tensor, num_classes: int, alpha: float = 1.0, p: float = 1.0,
          generator: GeneratorLike = None):
    """mixup (Zhang et al., 2018) with a lambda per sample: returns ``(images, soft_targets)``.

    uint8 images are blended in float32 and rounded (half up) back to uint8; mixing float
    images (after normalisation) avoids the rounding."""
    _check(images)
    return apply_mixup(images, labels, num_classes, mixup_params(images.shape[0], alpha, p, generator))


def mix(images: torch.Tensor, labels: torch.Tensor, num_classes: int, mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0, switch_prob: float = 0.5, p: float = 1.0, generator: GeneratorLike = None):
    """Per batch, CutMix with probability ``switch_prob``, else mixup."""
    r = rng(generator)
    if r.random() < switch_prob:
        return cutmix(images, labels, num_classes, cutmix_alpha, p, r)
    return mixup(images, labels, num_classes, mixup_alpha, p, r)


CutMix = module_form(cutmix, "CutMix", inputs=("images", "labels"))
Mixup = module_form(mixup, "Mixup", inputs=("images", "labels"))
RandomMix = module_form(mix, "RandomMix", inputs=("images", "labels"))


def mix_stage(ctx: PlanContext) -> StageFn | None:
    """``--cutmix ALPHA`` and/or ``--mixup ALPHA`` (both: one or the other per batch), each sample
    mixed with probability ``--mix-prob``; the soft targets join the batch."""
    cut, up, p, k = ctx.option("cutmix"), ctx.option("mixup"), ctx.option("mix_prob"), ctx.num_classes
    if not (cut or up):
        return None

    def apply(v: AugmentedBatch, seed: int) -> AugmentedBatch:
        if cut and up:
            v.images, v.targets = mix(v.images, v.labels, k, up, cut, 0.5, p, generator=seed)
        elif cut:
            v.images, v.targets = cutmix(v.images, v.labels, k, cut, p, generator=seed)
        else:
            v.images, v.targets = mixup(v.images, v.labels, k, up, p, generator=seed)
        return v

    return apply
