"""What a finished run reports: its hyper-parameters as resolved and its summary.json."""
from __future__ import annotations

import torch

from . import recipe
from .metrics import FALSE_ALARM_RATE

__all__ = ["FINAL_KEYS", "run_hyper", "run_summary"]


def run_hyper(trainer) -> dict:
    """The report's hyper-parameters: the options as resolved for the run of ``trainer``."""
    h = trainer.cfg.hyper()
    h.update(model=trainer.model_name, amp="bf16" if trainer.amp else "off", processes=trainer.world.size)
    h["peak_lr"] = trainer.peak_lr
    del h["lr"]
    if not trainer.cfg.network.teacher:
        del h["kd_alpha"], h["kd_temperature"]
    if not trainer.data.radiographs:
        for k in ("window", "defect_paste", "defect_class"):
            del h[k]
    if trainer.data.kind not in ("jpeg", "dali"):
        del h["image_size"], h["rrc_scale"]
    return h


def run_summary(trainer, final: dict, images_per_second: float) -> dict:
    """summary.json of the run of ``trainer`` whose last evaluation gave ``final``."""
    st, data = trainer.state, trainer.data
    finals = [r for r in st.history if r.get("final")]
    split = finals[-1]["split"]  # the test split when there is one
    device = torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda" else "cpu"
    return {
        "model": trainer.model_name, "dataset": trainer.dataset_name, "image_size": list(data.image_shape),
        "params": trainer.params, "flops": trainer.flops, "epochs": st.step / trainer.steps_per_epoch, "steps": st.step,
        "batch_size": trainer.cfg.optim.batch_size, "train_seconds": st.train_seconds,
        "total_seconds": trainer.clock(), "top1": final["top1"], "top5": final["top5"], "best_top1": st.best_top1,
        "val_loss": final["val_loss"], "tta": trainer.cfg.eval.tta, "ema": trainer.ema is not None,
        "amp": "bf16" if trainer.amp else "off", "amp_reason": trainer.amp_reason, "model_reason": trainer.model_reason,
        "device": device + (f" x{trainer.world.size}" if trainer.world.distributed else ""),
        "budget_seconds": trainer.cfg.schedule.budget, "images_per_second": images_per_second,
        "split": split, "splits": {k: len(v) for k, v in trainer.eval_sets.items()},
        "num_classes": data.num_classes, "train_samples": data.n, "val_samples": len(trainer.eval_sets[split]),
        "loader": data.kind, "first_step_loss": trainer.first_loss,
        "defect_pastes": trainer.plan.stats.get("defect_pastes"),
        "synthetic_share": trainer.plan.stats.get("defect_pastes", 0) / max(1, st.step * trainer.cfg.optim.batch_size)
        if trainer.plan.stats.get("defect_pastes") is not None else None,
        "hyper": run_hyper(trainer), "recipe": recipe.fingerprint(), "classes": data.classes,
        "balanced_accuracy": final["balanced_accuracy"], "auc": final.get("auc"),
        "recall_at_fpr": final.get("recall_at_fpr"),
        "false_alarm_rate": FALSE_ALARM_RATE if trainer.positive is not None else None,
        "positive_class": trainer.positive, "metric": trainer.cfg.eval.metric, "best": st.best,
        "best_epoch": st.best_epoch,
        "final": {r["split"]: {k: r[k] for k in FINAL_KEYS if k in r} for r in finals},
    }


FINAL_KEYS = ("top1", "top5", "val_loss", "balanced_accuracy", "auc", "recall_at_fpr", "per_class", "confusion")
