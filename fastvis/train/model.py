"""The model of a run and what goes with it: the default choice by device and budget, its
initialisation from the data (FastNet's whitening), FLOPs, memory format and the optimiser."""
from __future__ import annotations

import torch

from ..models import FastNet, create_model
from .config import TrainConfig

__all__ = ["DEFAULT_LR", "build_model", "count_flops", "make_optimizer", "pick_model"]

DEFAULT_LR = {"fastnet": 0.2, "fastnet_s": 0.2}  # peak learning rate at batch 512 (others: 0.1)


def pick_model(cfg: TrainConfig, device: torch.device) -> str:
    """``--model``, or the default for the device and the budget."""
    if cfg.data.model:
        return cfg.data.model
    limit = cfg.schedule.budget or 3600 * 3
    if device.type != "cuda":
        return "fastnet_s" if limit <= 3600 else "fastnet"
    if limit <= 600:
        return "fastnet"
    return "resnet18" if limit <= 3600 else "wrn28_10"


def count_flops(model: torch.nn.Module, shape: tuple[int, ...], device) -> int:
    """Forward FLOPs of one image (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    was = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape, device=device))
    model.train(was)
    return int(counter.get_total_flops())


def build_model(name: str, cfg: TrainConfig, num_classes: int, image_shape, device, whiten_sample=None):
    """The model on ``device`` (channels-last if asked), FastNet's whitening set from
    ``whiten_sample()`` (normalised images); returns ``(model, parameters, FLOPs per image)``."""
    model = create_model(name, num_classes, in_channels=image_shape[0], drop_path_rate=cfg.optim.drop_path)
    if isinstance(model, FastNet) and whiten_sample is not None:
        model.to(device).init_whitening(whiten_sample().float())
    params = sum(p.numel() for p in model.parameters())
    model = model.to(device)
    flops = count_flops(model, image_shape, device)
    if cfg.speed.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, params, flops


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, peak_lr: float) -> torch.optim.Optimizer:
    """SGD (Nesterov by default) with weight decay on weights only, not on biases and norms."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    o = cfg.optim
    return torch.optim.SGD([{"params": decay, "weight_decay": o.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=peak_lr, momentum=o.momentum, nesterov=o.nesterov)


def peak_lr(cfg: TrainConfig, model_name: str) -> float:
    """``--lr``, or the model's default scaled linearly with the batch size."""
    if cfg.optim.lr is not None:
        return cfg.optim.lr
    return DEFAULT_LR.get(model_name, 0.1) * cfg.optim.batch_size / 512
