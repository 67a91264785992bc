"""Test-time augmentation: the views of a batch an evaluation averages, and their weighted logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import recipe

__all__ = ["tta_logits", "tta_views"]


def tta_views(tta: bool, shift: int, x: torch.Tensor | None = None) -> list:
    """Test-time augmentation: ``[(weight, view of x)]``. None: the image; flip: it and its
    mirror; with ``shift`` pixels, half the weight moves to the two views shifted up-left and
    down-right (reflected at the border), each with its mirror. ``x=None`` lists the weights."""
    if not tta:
        return [(1.0, x)]
    views = [x, None if x is None else x.flip(3)]
    if not shift:
        return [(0.5, v) for v in views]
    if x is not None:
        h, w = x.shape[2:]
        padded = F.pad(x, (shift,) * 4, mode="reflect")
        for dy, dx in ((0, 0), (2 * shift, 2 * shift)):
            moved = padded[:, :, dy:dy + h, dx:dx + w]
            views += [moved, moved.flip(3)]
    else:
        views += [None] * 4
    shifted = recipe.get("tta_shift_weight")
    return [((1 - shifted) / 2, v) for v in views[:2]] + [(shifted / 4, v) for v in views[2:]]


def tta_logits(model: torch.nn.Module, x: torch.Tensor, tta: bool, shift: int) -> torch.Tensor:
    """The model's float logits of normalised images ``x``, averaged over the TTA views."""
    return sum(w * model(view).float() for w, view in tta_views(tta, shift, x))
