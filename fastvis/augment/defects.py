"""Defect synthesis: Poisson-blend real defect patches into normal images, relabelled as defects.

A :class:`DefectBank` holds patches cut from defect samples around their masks (the mask's
bounding box plus a margin), as float images in [0, 1]. :func:`defect_paste` picks, with
probability ``p``, samples of the normal class(es), blends a random patch (randomly mirrored)
into each at a random place where it fits, and turns their label into the defect class. The
parameters are drawn apart from their application (:func:`defect_paste_params`), from an
explicit generator or seed.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .base import module_form
from .generators import GeneratorLike, rng
from .poisson import mask_box, poisson_blend_batch

__all__ = ["DefectBank", "DefectPaste", "DefectPasteParams", "defect_paste", "defect_paste_params"]


@dataclass
class DefectBank:
    patches: list[torch.Tensor]  # (C, h, w) float in [0, 1]
    masks: list[torch.Tensor]  # (h, w) bool, never touching the patch border

    def __len__(self) -> int:
        return len(self.patches)

    @classmethod
    def from_samples(cls, images: torch.Tensor, masks: torch.Tensor, margin: int = 3) -> "DefectBank":
        """Cut one patch per sample with a nonempty mask. ``images`` (N, C, H, W) float,
        ``masks`` (N, H, W) (nonzero: defect)."""
        patches, out_masks = [], []
        H, W = images.shape[-2:]
        for k in range(images.shape[0]):
            m = masks[k] != 0
            box = mask_box(m)
            if box is None:
                continue
            y0, y1 = max(0, box[0] - margin), min(H, box[1] + margin)
            x0, x1 = max(0, box[2] - margin), min(W, box[3] + margin)
            pm = m[y0:y1, x0:x1].clone()
            pm[0], pm[-1], pm[:, 0], pm[:, -1] = False, False, False, False  # keep the boundary ring
            if y1 - y0 < 3 or x1 - x0 < 3 or not bool(pm.any()):
                continue
            patches.append(images[k, :, y0:y1, x0:x1].float().clone())
            out_masks.append(pm)
        return cls(patches, out_masks)


@dataclass
class DefectPasteParams:
    index: torch.Tensor  # (P,) samples that receive a patch
    which: torch.Tensor  # (P,) bank patch for each
    offsets: torch.Tensor  # (P, 2) top-left corner (y, x)
    flip: torch.Tensor  # (P,) mirror the patch left-right


def defect_paste_params(labels: torch.Tensor, bank: DefectBank, image_hw: tuple[int, int], normal: Sequence[int],
                        p: float, generator: GeneratorLike = None) -> DefectPasteParams:
    r = rng(generator)
    y = labels.cpu().numpy()
    H, W = image_hw
    chosen = np.isin(y, list(normal)) & (r.random(len(y)) < p)
    index, which, offsets = [], [], []
    fits = [k for k in range(len(bank)) if bank.patches[k].shape[1] <= H and bank.patches[k].shape[2] <= W]
    for i in np.nonzero(chosen)[0] if fits else []:
        k = fits[int(r.integers(len(fits)))]
        h, w = bank.patches[k].shape[1:]
        index.append(int(i))
        which.append(k)
        offsets.append((int(r.integers(H - h + 1)), int(r.integers(W - w + 1))))
    flip = r.random(len(index)) < 0.5
    return DefectPasteParams(torch.tensor(index, dtype=torch.int64), torch.tensor(which, dtype=torch.int64),
                             torch.tensor(offsets, dtype=torch.int64).reshape(-1, 2), torch.from_numpy(flip))


def defect_paste(images: torch.Tensor, labels: torch.Tensor, bank: DefectBank, defect_class: int,
                 normal: Sequence[int], p: float = 0.5, generator: GeneratorLike = None,
                 params: DefectPasteParams | None = None) -> tuple[torch.Tensor, torch.Tensor, DefectPasteParams]:
    """Returns new ``(images, labels, params)``; ``images`` float (B, C, H, W) in [0, 1]."""
    if params is None:
        params = defect_paste_params(labels, bank, tuple(images.shape[-2:]), normal, p, generator)
    if len(params.index) == 0:
        return images, labels, params
    dev = images.device
    patches, masks = [], []
    for k, f in zip(params.which.tolist(), params.flip.tolist()):
        pt, m = bank.patches[k].to(dev), bank.masks[k].to(dev)
        patches.append(pt.flip(-1) if f else pt)
        masks.append(m.flip(-1) if f else m)
    out = poisson_blend_batch(images, patches, masks, params.offsets, params.index, clip=(0.0, 1.0))
    labels = labels.clone()
    labels[params.index.to(labels.device)] = defect_class
    return out, labels, params


DefectPaste = module_form(defect_paste, "DefectPaste", inputs=("images", "labels"))
