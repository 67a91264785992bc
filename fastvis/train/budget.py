"""Time budgets: parsing ("90s", "10m", "3h", "1h30m") and fitting the schedule to them."""
from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import InputError

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
                raise InputError(f"cannot read {text!r} as a duration (examples: 90s, 10m, 3h, 1h30m)")
            value = sum(float(a) * _UNITS[b] for a, b in parts)
    if not value > 0 or not math.isfinite(value):
        raise InputError(f"a duration must be positive, got {text!r}")
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


class BudgetController:
    """Keeps a run inside its budget: :meth:`probe` times the first steps and an evaluation,
    :meth:`plan` fits the step count (re-fitted, only downwards, after every epoch), and
    :meth:`out_of_time` stops training early when the clock says so. Every rank takes rank 0's
    numbers, so all stop together. Writes ``total_steps`` and ``eval_every`` into ``state``."""

    def __init__(self, budget: float, clock: Clock, state, steps_per_epoch: int, tta: bool, world, device,
                 sync=lambda: None):
        self.budget, self.clock, self.state = budget, clock, state
        self.steps_per_epoch, self.tta = steps_per_epoch, tta
        self.world, self.device, self.sync = world, device, sync
        self.step_time = self.eval_time = 0.0
        self.reserve = 3.0  # seconds kept for the final evaluation and the report

    def probe(self, step: Callable[[], object], steps: int, evaluate: Callable[[int], object],
              eval_limit: int, val_samples: int) -> None:
        """Run ``steps`` training steps, timing those after warm-up, and time a partial evaluation."""
        times = []
        for _ in range(steps):
            self.sync()
            t = time.perf_counter()
            step()
            self.sync()
            times.append(time.perf_counter() - t)
        warm = times[min(4, len(times) - 1):]
        self.step_time = statistics.median(warm)
        evaluate(eval_limit)  # warm-up of the evaluation path
        self.sync()
        t = time.perf_counter()
        evaluate(eval_limit)
        self.sync()
        self.eval_time = (time.perf_counter() - t) * val_samples / eval_limit

    def plan(self, ckpt_time: float) -> None:
        from . import ddp

        self.reserve = self.eval_time * (2 if self.tta else 1) + 3.0 + ckpt_time
        p = fit_plan(self.budget, self.clock(), self.step_time, self.steps_per_epoch, self.eval_time, ckpt_time,
                     self.reserve, done_steps=self.state.step)
        total = ddp.broadcast_int(self.world, p.total_steps, self.device)
        if self.state.total_steps is None or total < self.state.total_steps:
            self.state.total_steps = total
        self.state.eval_every = p.eval_every

    def observe_epoch(self, seconds: float, steps: int) -> None:
        """Blend an epoch's measured seconds per step into the estimate."""
        if steps:
            per = seconds / steps
            self.step_time = 0.8 * self.step_time + 0.2 * per if self.step_time else per

    def out_of_time(self) -> bool:
        from . import ddp

        late = self.clock() + self.reserve > self.budget * 0.995
        return bool(ddp.broadcast_int(self.world, int(late), self.device))  # every rank stops together
