"""Bias correction (BiC, Wu et al. 2019) for ``--cl-method bic``.

Trained on many new samples and few exemplars, the classifier favours the new classes. BiC holds
out a small balanced validation set at each task after the first (the same number of samples of
every class seen: the last exemplars of each old class in herding order, and as many samples of
each new class), trains the task on the rest (with WA's weighted distillation), and then fits two
numbers on the held-out samples' logits, with the network fixed: the new classes' logits become
``alpha * z + beta``. Each task's correction stays and applies to its classes from then on, in
evaluation, in the old model's outputs that the next task distils and in the outputs the later
tasks train (frozen there): a network trained on its raw outputs would drift away from a
correction fitted to an earlier state of it (measured: the classes of tasks 4-9 of a B0-10 run fell
to 0-2% with corrections of -1.8 to -3.0 kept on untrained-for outputs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..train import recipe

__all__ = ["apply_bias", "fit_bias", "validation_split"]


def validation_split(memory, class_idx: list[torch.Tensor], before: int, seen: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(new samples to train on, exemplars to train on, held-out samples) of the task that adds
    classes ``before`` to ``seen``: ``bic_holdout`` of each old class's exemplars (at least one),
    the same count of each new class's samples."""
    per_class = min(len(memory.by_class[c]) for c in range(before))
    v = max(1, round(recipe.get("bic_holdout") * per_class))
    kept = torch.cat([memory.by_class[c][:len(memory.by_class[c]) - v] for c in range(before)])
    held = [memory.by_class[c][-v:] for c in range(before)]
    new = []
    for p in range(before, seen):
        idx = class_idx[p]
        held.append(idx[-v:])
        new.append(idx[:-v])
    device = class_idx[before].device
    return torch.cat(new), kept.to(device), torch.cat(held).to(device)


def apply_bias(logits: torch.Tensor, layers: list[tuple[int, int, float, float]]) -> torch.Tensor:
    """``logits`` with each correction ``(lo, hi, alpha, beta)`` applied to its columns."""
    if not layers:
        return logits
    out = logits.clone()
    for lo, hi, alpha, beta in layers:
        if lo < out.shape[1]:
            out[:, lo:hi] = alpha * out[:, lo:hi] + beta
    return out


def fit_bias(logits: torch.Tensor, labels: torch.Tensor, lo: int, hi: int) -> tuple[float, float]:
    """The ``alpha, beta`` for columns ``lo:hi`` of ``logits`` (held-out samples, classes seen so
    far, earlier corrections applied) that minimise the cross-entropy on ``labels``."""
    logits, labels = logits.detach().float(), labels.detach()
    params = torch.tensor([1.0, 0.0], device=logits.device, requires_grad=True)
    opt = torch.optim.Adam([params], lr=recipe.get("bic_lr"))
    for _ in range(recipe.get("bic_steps")):
        z = torch.cat([logits[:, :lo], params[0] * logits[:, lo:hi] + params[1], logits[:, hi:]], 1)
        loss = F.cross_entropy(z, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    alpha, beta = params.detach().tolist()
    return alpha, beta
