"""Exponential moving average of a model's weights (buffers copied)."""
from __future__ import annotations

import copy

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))  # short runs: warm up the average
        ema_p = [p for p in self.model.parameters()]
        cur_p = [p.detach() for p in model.parameters()]
        torch._foreach_mul_(ema_p, d)
        torch._foreach_add_(ema_p, cur_p, alpha=1 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = state["updates"]
        self.decay = state["decay"]


class Lookahead:
    """Every ``every`` steps, pull the weights (and BatchNorm statistics) towards their running
    average and go on training from there (lookahead, as in the CIFAR-10 speed-run records):
    ``avg = decay * avg + (1 - decay) * w; w = avg``, with ``decay = base**every * progress**3``,
    so that early training is left alone and the end is averaged more and more. :meth:`finish`
    puts the average into the model once training is over."""

    def __init__(self, model: torch.nn.Module, every: int, base: float):
        self.every, self.base = every, base
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def decay(self, progress: float) -> float:
        return self.base ** self.every * min(max(progress, 0.0), 1.0) ** 3

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int, progress: float) -> None:
        """After optimizer step number ``step`` (counted from 1)."""
        if step % self.every == 0:
            self._pull(model, self.decay(progress))

    @torch.no_grad()
    def finish(self, model: torch.nn.Module) -> None:
        self._pull(model, 1.0)

    def _pull(self, model: torch.nn.Module, decay: float) -> None:
        state = model.state_dict()
        for k, avg in self.average.items():
            avg.lerp_(state[k].detach(), 1 - decay)
            state[k].copy_(avg)

    def state_dict(self) -> dict:
        return {"average": self.average, "every": self.every, "base": self.base}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state["average"].items():
            self.average[k].copy_(v)
        self.every, self.base = state["every"], state["base"]
