"""What the methods do differently: the loss of a batch, weight aligning, and the features the
memory and the nearest-mean classifier are built from.

Outputs are class positions in the class order: before task ``t`` the model has seen
``before`` classes, after it ``seen``; only the first ``seen`` outputs take part.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .. import FastvisError

__all__ = ["DISTIL_METHODS", "MEMORY_METHODS", "METHODS", "features", "frozen", "head", "incremental_loss",
           "weight_align"]

METHODS = ("finetune", "joint", "replay", "icarl", "lwf", "wa")
MEMORY_METHODS = ("replay", "icarl", "wa")
DISTIL_METHODS = ("icarl", "lwf", "wa")


def head(model: torch.nn.Module) -> torch.nn.Linear:
    """The classifier: the model's last linear layer."""
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linear:
        raise FastvisError("class-incremental training needs a model whose last layer is linear")
    return linear[-1]


def incremental_loss(method: str, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
                     old_logits: torch.Tensor | None, before: int, label_smoothing: float,
                     temperature: float) -> torch.Tensor:
    """Cross-entropy over the classes seen (``logits`` has ``seen`` columns; soft ``targets``
    after CutMix/mixup), plus for the distilling methods the soft cross-entropy between the old
    model's outputs on the old classes and the new model's, at ``temperature``: added for
    icarl and lwf, weighted by the share of old classes (and the new-class loss by the rest)
    for wa."""
    seen, eps = logits.shape[1], label_smoothing
    if targets is not None:
        soft = targets[:, :seen] * (1 - eps) + eps / seen
        ce = -(soft * F.log_softmax(logits, 1)).sum(1).mean()
    else:
        ce = F.cross_entropy(logits, labels, label_smoothing=eps)
    if old_logits is None or method not in DISTIL_METHODS or before == 0:
        return ce
    t = temperature
    kd = -(F.softmax(old_logits[:, :before] / t, 1) * F.log_softmax(logits[:, :before] / t, 1)).sum(1).mean()
    if method == "wa":
        share = before / seen
        return (1 - share) * ce + share * kd
    return ce + kd


@torch.no_grad()
def weight_align(model: torch.nn.Module, before: int, seen: int) -> float:
    """Weight aligning (Zhao et al. 2020): scale the new classes' output weights so that their
    mean norm equals the old classes'. Returns the factor."""
    w = head(model).weight.data
    gamma = w[:before].norm(dim=1).mean() / w[before:seen].norm(dim=1).mean()
    w[before:seen] *= gamma
    return float(gamma)


@torch.no_grad()
def features(model: torch.nn.Module, x: torch.Tensor, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """(L2-normalised inputs of the classifier, logits) of normalised images, in eval mode."""
    model.eval()
    captured = []
    hook = head(model).register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    try:
        with autocast():
            logits = model(x).float()
    finally:
        hook.remove()
    return F.normalize(captured[0].float(), dim=1), logits


def frozen(model: torch.nn.Module, state: dict | None = None) -> torch.nn.Module:
    """A copy of ``model`` (with ``state`` loaded when given) in eval mode, without gradients:
    the previous task's model that the distilling methods learn from."""
    old = copy.deepcopy(model).eval()
    if state is not None:
        old.load_state_dict(state)
    for p in old.parameters():
        p.requires_grad_(False)
    return old
