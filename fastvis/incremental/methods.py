"""What the methods do differently: the loss of a batch, weight aligning, class-balanced
fine-tuning, and the features the memory and the nearest-mean classifier are built from.

Outputs are class positions in the class order: before task ``t`` the model has seen
``before`` classes, after it ``seen``; only the first ``seen`` outputs take part.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .. import FastvisError
from ..loader import Batch
from ..loader.order import epoch_order
from ..train import recipe
from ..train.loss import smoothed, soft_cross_entropy
from ..train.model import make_optimizer
from .bias import apply_bias
from .names import DISTIL_METHODS, MEMORY_METHODS, METHODS

__all__ = ["DISTIL_METHODS", "MEMORY_METHODS", "METHODS", "balanced_finetune", "features", "frozen", "head",
           "incremental_loss", "view_features", "weight_align"]



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
    for wa and bic."""
    seen, eps = logits.shape[1], label_smoothing
    if targets is not None:
        ce = soft_cross_entropy(logits, smoothed(targets[:, :seen], eps))
    else:
        ce = F.cross_entropy(logits, labels, label_smoothing=eps)
    if old_logits is None or method not in DISTIL_METHODS or before == 0:
        return ce
    t = temperature
    kd = soft_cross_entropy(logits[:, :before] / t, F.softmax(old_logits[:, :before] / t, 1))
    if method in ("wa", "bic"):
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


def view_features(model: torch.nn.Module, views, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and logits averaged over weighted views ((weight, images), as
    ``fastvis.train.evaluation.tta_views`` gives them)."""
    feats = logits = 0
    for w, view in views:
        f, z = features(model, view, autocast)
        feats, logits = feats + w * f, logits + w * z
    return F.normalize(feats, dim=1), logits


def frozen(model: torch.nn.Module, state: dict | None = None) -> torch.nn.Module:
    """A copy of ``model`` (with ``state`` loaded when given) in eval mode, without gradients:
    the previous task's model that the distilling methods learn from."""
    old = copy.deepcopy(model).eval()
    if state is not None:
        old.load_state_dict(state)
    for p in old.parameters():
        p.requires_grad_(False)
    return old


def balanced_finetune(trainer, t: int) -> None:
    """Fine-tune the model of ``trainer`` (an IncrementalTrainer at the end of task ``t``) on its
    memory alone, where every class seen has its equal share of exemplars, at
    ``incremental_balanced_lr`` of the peak rates (the SGD groups' and Muon's alike) decaying linearly
    to zero: the bias towards the new classes that the task's imbalanced data left is trained out."""
    idx = trainer.memory.indices().to(trainer.device)
    b = trainer.global_batch(min(trainer.task_batch, len(idx)))
    per_epoch = max(1, len(idx) // b)
    steps = max(1, int(round(trainer.cfg.incremental.balanced_epochs * per_epoch)))
    optimizer = make_optimizer(trainer.raw_model, trainer.cfg, trainer.peak_lr,
                               scale=recipe.get("incremental_balanced_lr"))
    trainer.model.train()
    for k in range(steps):
        epoch, j = divmod(k, per_epoch)
        if j == 0:  # each epoch its own order
            key = (t + 1) * 1_000_003 + epoch  # not tuning: seed mixing
            order = idx[epoch_order(len(idx), trainer.cfg.run.seed, key).to(idx.device)]
        pick = order[j * b:(j + 1) * b]
        optimizer.set_lr(1 - k / steps, 0.0)
        x, y, targets = trainer.plan(Batch(trainer.data.dataset.batch(pick)[0], trainer.train_pos[pick], pick),
                                     trainer.state.step + k, trainer.state.epoch)
        with trainer.autocast():
            logits = trainer.model(x)
        z = apply_bias(logits.float()[:, :trainer.seen], trainer.bias_layers)  # bic's corrections, as in training
        loss = incremental_loss("replay", z, y, targets, None, 0,
                                trainer.cfg.optim.label_smoothing, trainer.cfg.incremental.cl_temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if trainer.ema is not None:
            trainer.ema.update(trainer.raw_model)
    if not torch.isfinite(loss):
        raise FastvisError(f"class-balanced fine-tuning after task {t + 1}: the loss became {float(loss)}")
    trainer.recorder.log(f"class-balanced fine-tuning: {steps} steps on the {len(idx)} exemplars")
