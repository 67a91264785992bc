"""What a run has done so far (:class:`TrainState`), and the checkpoint that saves it with the
weights, the optimiser, the EMA and the random state, so that a resumed run continues to the
result an uninterrupted run would have reached."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

__all__ = ["TrainState", "restore", "snapshot"]


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0  # completed epochs of the phase
    phase: int = 0  # an ordinary run has one; a class-incremental run one per task
    phase_step: int = 0  # steps of the phase
    total_steps: int | None = None  # --epochs runs; None for budgeted runs (they stop on time)
    progress: float = 0.0  # of the learning-rate schedule: steps done of total_steps, or time used of the budget
    eval_every: int = 1  # epochs between evaluations
    train_seconds: float = 0.0
    best_top1: float = 0.0
    best: float | None = None  # of --metric on the watched split
    best_epoch: float | None = None
    history: list[dict] = field(default_factory=list)  # one row per evaluation (metrics.jsonl)


def snapshot(state: TrainState, model: torch.nn.Module, optimizer, ema, lookahead=None, **facts) -> dict:
    """The checkpoint: the state's fields at the top level, then weights and ``facts`` (model
    name, classes, config, normalisation)."""
    return {**asdict(state), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "lookahead": lookahead.state_dict() if lookahead is not None else None,
            "rng": torch.get_rng_state(), **facts}


def restore(checkpoint: dict, state: TrainState, model: torch.nn.Module, optimizer, ema, lookahead=None) -> None:
    """Load a checkpoint written by :func:`snapshot` into a run built the same way."""
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if ema is not None and checkpoint.get("ema"):
        ema.load_state_dict(checkpoint["ema"])
    if lookahead is not None and checkpoint.get("lookahead"):
        lookahead.load_state_dict(checkpoint["lookahead"])
    for f in fields(state):
        if f.name in checkpoint:
            setattr(state, f.name, checkpoint[f.name])
    torch.set_rng_state(checkpoint["rng"].cpu())
