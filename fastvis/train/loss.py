"""The training loss: cross-entropy on class ids or soft targets (after CutMix/mixup), label
smoothing, and knowledge distillation ``L = (1 - a) CE(y, p_s) + a T^2 KL(p_t(T) || p_s(T))``
from a teacher checkpoint (any registered model; a run's own checkpoint gives
self-distillation)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import FastvisError
from ..models import create_model
from . import checkpoint

__all__ = ["Criterion", "kd_loss", "load_teacher", "sample_losses", "smoothed", "soft_cross_entropy"]


def smoothed(targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Targets (B, K) with ``label_smoothing`` of their mass spread evenly over the K classes."""
    return targets * (1 - label_smoothing) + label_smoothing / targets.shape[1]


def soft_sample_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each sample against soft targets (B, K)."""
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(1)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (B, K), mean over the batch."""
    return soft_sample_losses(logits, targets).mean()


def sample_losses(logits: torch.Tensor, labels: torch.Tensor, targets, label_smoothing: float) -> torch.Tensor:
    """Cross-entropy of each sample (the criterion's loss without the teacher, before its mean),
    against the soft targets of mixed batches when there are, with label smoothing."""
    if targets is None:
        return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing, reduction="none")
    return soft_sample_losses(logits, smoothed(targets, label_smoothing))


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor, alpha: float,
            temperature: float) -> torch.Tensor:
    """Hinton et al. (2015): the hard (or soft, after mixing) target term plus the teacher term,
    the latter scaled by T^2 so that its gradients keep their size as T changes."""
    t = temperature
    hard = soft_cross_entropy(student, targets)
    p_teacher = F.softmax(teacher.float() / t, dim=1)
    log_student = F.log_softmax(student.float() / t, dim=1)
    kl = F.kl_div(log_student, p_teacher, reduction="batchmean")
    return (1 - alpha) * hard + alpha * t * t * kl


def load_teacher(path: str, num_classes: int, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """A frozen model from a checkpoint (its EMA weights where it has them)."""
    state = checkpoint.load(path, map_location="cpu")
    teacher = create_model(state["model_name"], state["num_classes"], in_channels=state.get("in_channels", 3))
    ema = state.get("ema")
    try:
        teacher.load_state_dict(ema["model"] if isinstance(ema, dict) and "model" in ema else state["model"])
    except (RuntimeError, TypeError, KeyError) as exc:
        raise FastvisError(f"{path}: not a fastvis checkpoint (its weights do not fit a {state['model_name']} of "
                           f"{state['num_classes']} classes: {checkpoint.mismatch(exc)})") from None
    teacher = teacher.to(device).eval()
    if channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    for p in teacher.parameters():
        p.requires_grad_(False)
    if state["num_classes"] != num_classes:
        raise FastvisError(f"teacher {path} has {state['num_classes']} classes, the data {num_classes}")
    return teacher


class Criterion:
    """``criterion(logits, labels, targets, images)``: the loss of one batch. ``targets`` are the
    soft targets of mixed batches (None otherwise); ``images`` feed the teacher."""

    def __init__(self, num_classes: int, label_smoothing: float = 0.0, teacher: torch.nn.Module | None = None,
                 kd_alpha: float = 0.0, kd_temperature: float = 1.0, autocast=None):
        self.num_classes, self.label_smoothing = num_classes, label_smoothing
        self.teacher, self.kd_alpha, self.kd_temperature = teacher, kd_alpha, kd_temperature
        self.autocast = autocast

    def __call__(self, logits, labels, targets, images) -> torch.Tensor:
        eps = self.label_smoothing
        if self.teacher is None and targets is None:
            return F.cross_entropy(logits.float(), labels, label_smoothing=eps)
        if targets is None:
            targets = F.one_hot(labels, self.num_classes).float()
        if eps:
            targets = smoothed(targets, eps)
        if self.teacher is None:
            return soft_cross_entropy(logits, targets)
        with torch.no_grad(), self.autocast():
            teacher_logits = self.teacher(images)
        return kd_loss(logits, teacher_logits, targets, self.kd_alpha, self.kd_temperature)
