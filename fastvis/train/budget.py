"""Time budgets: parsing ("90s", "10m", "3h", "1h30m"), the clock, the learning-rate curve, and the
controller that ends a run inside its budget."""
from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable

from .. import InputError
from . import recipe

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}  # not tuning: seconds per unit


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


def lr_at(progress: float, peak: float, warmup: float, final: float = 0.0) -> float:
    """Linear warm-up over the first ``warmup`` of training, then linear decay to ``final * peak``."""
    p = min(max(progress, 0.0), 1.0)
    if warmup > 0 and p < warmup:
        return peak * max(p / warmup, recipe.get("warmup_start"))
    return peak * (final + (1 - final) * (1 - p) / (1 - warmup))


class BudgetController:
    """Keeps a run inside its budget, whatever its speed does, by measuring progress in time.

    Training runs from :meth:`begin` to a deadline: the budget, less a 1% margin and the time
    reserved for the end (the final evaluations, a checkpoint and the report). Progress, which
    drives the learning-rate schedule, is the elapsed fraction of that span, so warm-up and decay
    always complete at the deadline: a machine that slows down trains fewer steps, one that
    speeds up trains more. The reserve is re-estimated after every evaluation and scaled by how
    much slower the steps have become since the evaluation was timed. Every rank takes rank 0's
    progress, so all change the learning rate and stop together.
    """

    MARGIN = recipe.get("budget_margin")  # of the budget, kept free
    REPORT = recipe.get("report_seconds")  # for the report, the curve and the summary
    MAX_EVAL_SHARE = recipe.get("max_eval_share")  # intermediate evaluations take at most this share of the time

    def __init__(self, budget: float, clock: Clock, world, device, final_evals: float = 1.0,
                 ckpt_time: float = 0.0):
        self.budget, self.clock, self.world, self.device = budget, clock, world, device
        self.final_evals = final_evals  # full evaluations at the end (TTA doubles one)
        self.ckpt_time = ckpt_time
        self.step_time = 0.0  # seconds per training step, smoothed
        self.steps = 0
        self._start_step_time = 0.0
        self.eval_time = 0.0  # seconds per full evaluation
        self._eval_step_time = 0.0  # the step time when eval_time was measured
        self.start: float | None = None
        self.end: float | None = None  # a fixed end instead of the deadline
        self.start_progress = 0.0
        self.last = 0.0
        self.on_speed: Callable[[float], None] | None = None  # told once: a step's seconds over the first steps
        self._first_steps: list[float] = []

    # -- measurements --------------------------------------------------------------------------
    def observe_step(self, seconds: float) -> None:
        self.steps += 1
        keep = recipe.get("step_time_memory")
        self.step_time = seconds if not self.step_time else keep * self.step_time + (1 - keep) * seconds
        if self.steps == 10:  # the speed at the start: the reference of the report's time
            self._start_step_time = self.step_time
            self._eval_step_time = self._eval_step_time or self.step_time  # and of the first evaluation
        if self.on_speed is not None:  # waiting for the first steps' speed
            skip, timed = recipe.get("replan_steps")
            if self.steps > skip:
                self._first_steps.append(seconds)
            if len(self._first_steps) >= timed:
                tell, self.on_speed = self.on_speed, None
                tell(statistics.median(self._first_steps))

    def observe_eval(self, seconds: float, fraction: float = 1.0) -> None:
        """An evaluation of ``fraction`` of the evaluation set took ``seconds``."""
        self.eval_time = seconds / max(fraction, 1e-9)
        self._eval_step_time = self.step_time

    def observe_checkpoint(self, seconds: float) -> None:
        self.ckpt_time = max(self.ckpt_time * recipe.get("checkpoint_estimate_decay"), seconds)

    # -- the plan ------------------------------------------------------------------------------
    def slowdown(self, since: str = "eval") -> float:
        """How much slower steps run now than when the evaluation was timed (``eval``), or than
        at the start (``start``); at least 1."""
        ref = self._eval_step_time if since == "eval" else self._start_step_time
        if not (self.step_time and ref):
            return 1.0
        return max(1.0, self.step_time / ref)

    def reserve(self) -> float:
        """The end: final evaluations, a checkpoint (measured) and the report, at today's speed."""
        return (self.final_evals * self.eval_time * self.slowdown() + self.ckpt_time
                + self.REPORT * self.slowdown("start"))

    def deadline(self) -> float:
        """When training must stop (seconds on the clock)."""
        return self.budget * (1 - self.MARGIN) - self.reserve()

    def begin(self, progress: float = 0.0, seconds: float | None = None) -> None:
        """Training starts now (or resumes at ``progress``) and runs to the deadline, or for
        ``seconds`` (a share of the budget: one task of a class-incremental run)."""
        self.start, self.start_progress, self.last = self.clock(), progress, progress
        self.end = None if seconds is None else self.start + seconds

    def progress(self) -> float:
        """The elapsed fraction of the training span, never decreasing; >= 1 means stop."""
        from . import ddp

        span = max((self.deadline() if self.end is None else self.end) - self.start, 1e-9)
        p = self.start_progress + (1 - self.start_progress) * (self.clock() - self.start) / span
        p = ddp.broadcast_float(self.world, max(p, self.last), self.device)
        self.last = p
        return p

    def eval_every(self, epoch_seconds: float) -> int:
        """Epochs between evaluations so that they take at most MAX_EVAL_SHARE of the time."""
        return max(1, math.ceil(self.eval_time / max(self.MAX_EVAL_SHARE * epoch_seconds, 1e-9)))

    def room_for_eval(self) -> bool:
        """Whether an intermediate evaluation still fits before the deadline (with a step to spare)."""
        return self.clock() + self.eval_time * self.slowdown() + self.step_time < self.deadline()

    def seconds_left(self) -> float:
        """Training seconds left until the deadline (or the end of this share of the budget)."""
        return max(0.0, (self.deadline() if self.end is None else self.end) - self.clock())

    def steps_left(self) -> int:
        return int(self.seconds_left() / self.step_time) if self.step_time else 0
