"""Knowledge distillation: L = (1 - a) CE(y, p_s) + a T^2 KL(p_t(T) || p_s(T))."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (B, K), mean over the batch."""
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


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
