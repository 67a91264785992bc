"""How fast this device trains a model, and the default model for a budget from that speed.

When ``--model`` is not given, :func:`choose_model` times a few training steps of each candidate
of the recipe's ladder (:mod:`.recipe`; a fresh copy, on random images of the data's shape, in
the precision the run will train in, or both where that is still open), turns the images per
second into the epochs the budget allows, and takes the largest candidate that still gets the
epochs it needs to beat the next smaller one in the same time.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from ..models import create_model
from . import recipe

__all__ = ["Speed", "choose_model", "measure_speed"]


@dataclass
class Speed:
    images_per_second: float  # training, in the precision ``amp`` says
    amp: bool  # whether the speed is bf16 autocast's (the faster of the two when both were timed)
    ratio: float | None = None  # bf16 speed over fp32 speed (None: one precision timed)


def _step_seconds(model, x, y, amp: bool, repeats: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)  # not tuning: timed, not trained
    times = []
    for k in range(repeats + 1):  # the first one warms up
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        t = time.perf_counter()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        if k:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure_speed(model: torch.nn.Module, image_shape, num_classes: int, device: torch.device, channels_last: bool,
                  amp: bool | None, batch: int | None = None, repeats: int = 2) -> Speed:
    """Training images per second of ``model`` (left unchanged: a copy is timed) under bf16
    autocast (``amp`` True) or in fp32 (False): the precision the run trains in, for a step under
    bf16 can take half the time of one in fp32. ``amp`` None times both: bf16 counts when it is
    at least the recipe's ``bf16_min_gain`` faster, fp32 otherwise."""
    import copy

    batch = batch or recipe.get("speed_probe_batch")[device.type == "cuda"]
    probe = copy.deepcopy(model).to(device).train()
    x = torch.randn(batch, *image_shape, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), device=device)
    if amp is not None:
        return Speed(batch / _step_seconds(probe, x, y, amp, repeats), amp)
    fp32 = _step_seconds(probe, x, y, False, repeats)
    bf16 = _step_seconds(probe, x, y, True, repeats)
    ratio = fp32 / bf16
    take_bf16 = ratio >= recipe.get("bf16_min_gain")
    return Speed(batch / (bf16 if take_bf16 else fp32), take_bf16, ratio)


def choose_model(image_shape, num_classes: int, train_samples: int, seconds: float, device: torch.device,
                 channels_last: bool, amp: bool | None, log=print) -> tuple[str, Speed, str]:
    """``(model, its speed, why)`` for ``seconds`` of training on ``train_samples`` images.
    Candidates are timed from the smallest up, in the precision ``amp`` (:func:`measure_speed`),
    and timing stops at the first that is too slow or that needs more training images than there
    are (a net measured only on large sets)."""
    ladder = recipe.get("ladder_cuda" if device.type == "cuda" else "ladder_cpu")
    chosen, reason = None, ""
    for name, min_epochs, min_images in reversed(ladder):
        if train_samples < min_images:  # measured only on larger sets: the rungs below keep smaller ones
            log(f"recipe: {name} not timed: {train_samples:,} training images, fewer than its {min_images:,}")
            break
        model = create_model(name, num_classes, in_channels=image_shape[0])
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        speed = measure_speed(model, image_shape, num_classes, device, channels_last, amp)
        epochs = speed.images_per_second * seconds / max(train_samples, 1)
        log(f"recipe: {name} trains {speed.images_per_second:,.0f} images/s here: {epochs:.1f} epochs "
            f"in {seconds:.0f}s (needs {min_epochs:g})")
        if epochs < min_epochs:
            break
        chosen, reason = (name, speed), f"{epochs:.1f} epochs at {speed.images_per_second:,.0f} images/s"
    if chosen is None:  # even the smallest: it is the ladder's floor
        chosen, reason = (ladder[-1][0], speed), "the smallest candidate"
    return chosen[0], chosen[1], reason
