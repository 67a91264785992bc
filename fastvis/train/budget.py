"""Time budgets: parsing ("90s", "10m", "3h", "1h30m") and fitting the schedule to them."""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | float | int) -> float:
    """Seconds in a duration: ``90s``, ``10m``, ``3h``, ``1h30m``, ``2.5h`` or a bare number of seconds."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", s):
            value = float(s)
        else:
            parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", s)
            if not parts or "".join(f"{a}{b}" for a, b in parts) != re.sub(r"\s+", "", s):
                raise ValueError(f"cannot read {text!r} as a duration (examples: 90s, 10m, 3h, 1h30m)")
            value = sum(float(a) * _UNITS[b] for a, b in parts)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"a duration must be positive, got {text!r}")
    return value


class Clock:
    """Seconds since ``start`` (defaults to now); ``offset`` adds time spent before a resume."""

    def __init__(self, start: float | None = None, offset: float = 0.0):
        self.start = time.perf_counter() if start is None else start
        self.offset = offset

    def __call__(self) -> float:
        return time.perf_counter() - self.start + self.offset


@dataclass
class Plan:
    total_steps: int
    steps_per_epoch: int
    eval_every: int  # epochs between evaluations
    est_seconds: float  # predicted end of the run (from the clock's zero)

    @property
    def epochs(self) -> float:
        return self.total_steps / self.steps_per_epoch


def fit_plan(budget: float, now: float, step_time: float, steps_per_epoch: int, eval_time: float,
             epoch_overhead: float, final_reserve: float, safety: float = 0.97, done_steps: int = 0,
             max_eval_share: float = 0.1) -> Plan:
    """The number of steps that ends training, evaluations and the final report inside ``budget``.

    ``now``: seconds already spent; ``step_time``: measured seconds per step after warm-up;
    ``eval_time``: seconds per evaluation; ``epoch_overhead``: per-epoch costs besides steps
    and evaluation (a checkpoint); ``final_reserve``: the final evaluation and the report.
    Evaluations are spaced so that they take at most ``max_eval_share`` of the training time.
    """
    epoch_time = steps_per_epoch * step_time
    eval_every = max(1, math.ceil(eval_time / max(max_eval_share * epoch_time, 1e-9)))
    per_epoch = epoch_time + epoch_overhead + eval_time / eval_every
    left = budget * safety - now - final_reserve
    epochs = max(0.0, left / per_epoch)
    total = done_steps + max(1, int(epochs * steps_per_epoch))
    est = now + (total - done_steps) * step_time + (epochs * (epoch_overhead + eval_time / eval_every)) + final_reserve
    return Plan(total_steps=total, steps_per_epoch=steps_per_epoch, eval_every=eval_every, est_seconds=est)


def lr_at(progress: float, peak: float, warmup: float = 0.05, final: float = 0.0) -> float:
    """Linear warm-up over the first ``warmup`` of training, then linear decay to ``final * peak``."""
    p = min(max(progress, 0.0), 1.0)
    if warmup > 0 and p < warmup:
        return peak * max(p / warmup, 0.02)
    return peak * (final + (1 - final) * (1 - p) / (1 - warmup))
