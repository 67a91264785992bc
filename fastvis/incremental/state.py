"""What a class-incremental checkpoint holds, so that a killed run resumes, in the task and the
epoch where it was, to the result of an uninterrupted one: the progress counters and the
accuracy matrix so far, the model, the optimiser (inside a task), the previous task's model,
the exemplar memory, the nearest-mean classes' means, the random state and the configuration."""
from __future__ import annotations

import torch

from .. import FastvisError
from ..train.model import make_optimizer
from .methods import frozen

__all__ = ["restore", "snapshot"]


def snapshot(tr) -> dict:
    """The checkpoint of an :class:`~fastvis.incremental.runner.IncrementalTrainer`."""
    return {**tr.st, "model": tr.model.state_dict(),
            "optimizer": tr.optimizer.state_dict() if tr.optimizer is not None else None,
            "old_model": tr.old_model.state_dict() if tr.old_model is not None else None,
            "means": tr.means.cpu() if tr.means is not None else None,
            "memory": tr.memory.state_dict(), "rng": torch.get_rng_state(), "config": tr.cfg.as_dict(),
            "model_name": tr.model_name, "num_classes": tr.data.num_classes,
            "in_channels": int(tr.data.image_shape[0]), "class_order": tr.order,
            "mean": tr.data.mean, "std": tr.data.std, "incremental": True}


def restore(tr, saved: dict, path) -> None:
    """Load ``saved`` (from :func:`snapshot`) into a trainer set up the same way."""
    if not saved.get("incremental"):
        raise FastvisError(f"{path}: not a class-incremental run's checkpoint")
    if saved["model_name"] != tr.model_name or saved["class_order"] != tr.order:
        raise FastvisError(f"{path}: a run of another model or class order")
    tr.model.load_state_dict(saved["model"])
    for k in tr.st:
        if k in saved:
            tr.st[k] = saved[k]
    tr.old_model = frozen(tr.model, saved["old_model"]) if saved["old_model"] is not None else None
    tr.means = saved["means"].to(tr.device) if saved["means"] is not None else None
    tr.memory.load_state_dict(saved["memory"], tr.device)
    if saved["optimizer"] is not None:
        tr.optimizer = make_optimizer(tr.model, tr.cfg, tr.peak_lr)
        tr.optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"].cpu())
