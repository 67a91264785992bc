"""The model of a run and what goes with it: the default choice (:mod:`.speed`, from the
recipe's ladders), the precision, its initialisation from the data (FastNet's whitening), FLOPs,
memory format and the optimiser (:mod:`.optim`, its defaults from :mod:`.recipe`)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from .. import FastvisError
from ..augment.resize import mean_area, parse_ramp, progressive_shape
from ..models import FastNet, create_model
from . import ddp, recipe
from .config import TrainConfig
from .optim import Optimizer
from .speed import Speed, choose_model, measure_speed

__all__ = ["build_model", "choose_amp", "choose_lr", "count_flops", "make_optimizer", "peak_lr", "pick_model",
           "planned_epochs", "replan_rate", "run_precision", "step_cost", "train_seconds", "trained_batch"]


def pick_model(cfg: TrainConfig, device: torch.device, image_shape, num_classes: int, train_samples: int,
               seconds: float | None, log=print) -> tuple[str, Speed | None, str]:
    """``(model, its measured speed or None, why)``: ``--model``; with a budget, the largest model
    of the device's ladder that gets the epochs it needs in ``seconds`` at the speed measured
    here (:mod:`.recipe`); with ``--epochs``, a default by device."""
    if cfg.network.model:
        return cfg.network.model, None, "--model"
    if seconds is None:
        return recipe.get("epochs_model")[device.type if device.type == "cuda" else "cpu"], None, \
            "--epochs without --model"
    return choose_model(image_shape, num_classes, train_samples, seconds, device, cfg.speed.channels_last,
                        amp=run_precision(cfg.speed.amp, device)[0], log=log)


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
    low = cfg.augment.progressive_resize
    if low < 1:  # the smallest batches the run will train on: refused here rather than at their first step
        side, width = progressive_shape(0.0, (int(image_shape[1]), int(image_shape[2])), low, (1.0, 1.0))
        try:
            count_flops(model, (image_shape[0], side, width), device)
        except RuntimeError as e:
            raise FastvisError(f"--progressive-resize {low:g}: {name} cannot take the run's smallest images, "
                               f"{side} px high ({str(e).splitlines()[0]}); give a larger F") from None
    if cfg.speed.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, params, flops


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, peak_lr: float, scale: float = 1.0) -> Optimizer:
    """``--optimizer`` (SGD, or Muon for the filters) with weight decay on weights only, not on
    biases and norms; what the options leave open comes from the recipe; ``scale`` multiplies
    every peak rate (``peak_lr`` of the SGD groups and Muon's)."""
    o = cfg.optim
    norm = o.norm_lr_scale if o.norm_lr_scale is not None else recipe.get("norm_lr_scale")[o.optimizer]
    head = o.head_lr_scale if o.head_lr_scale is not None else recipe.get("head_lr_scale")[o.optimizer]
    muon = o.muon_lr if o.muon_lr is not None else recipe.get("muon_lr")
    return Optimizer(model, o.optimizer, scale * peak_lr, o.momentum, o.nesterov, o.weight_decay,
                     norm_lr_scale=norm, head_lr_scale=head, muon_lr=scale * muon,
                     muon_momentum=recipe.get("muon_momentum"), ns_steps=recipe.get("muon_ns_steps"),
                     ns_dtype=recipe.muon_ns_dtype(next(model.parameters()).device.type))


def peak_lr(cfg: TrainConfig, model_name: str, epochs: float | None = None) -> float:
    """``--lr``, or the recipe's for the model, the optimiser and a run of ``epochs``, scaled
    linearly with the batch size."""
    if cfg.optim.lr is not None:
        return cfg.optim.lr
    return recipe.peak_lr(model_name, cfg.optim.optimizer, trained_batch(cfg.optim.batch_size, cfg.optim.hard_fraction),
                          epochs)


def trained_batch(batch: int, fraction: float) -> int:
    """How many samples of a batch of ``batch`` a step trains on (``--hard-fraction``)."""
    return max(1, min(batch, int(round(fraction * batch))))


def step_cost(cfg: TrainConfig, model: torch.nn.Module, image_shape, num_classes: int) -> float:
    """The cost of a step as a share of one on the whole batch at the whole size: 1; with
    ``--hard-fraction F`` about F plus the proxy's ranking (a forward pass, about a third of a
    training step, of a model with its share of the FLOPs) and its training on one step in
    ``hard_proxy_every``; with ``--progressive-resize`` times the run's mean share of the pixels."""
    a = cfg.augment
    area = mean_area(int(image_shape[1]), a.progressive_resize, parse_ramp(a.progressive_ramp))
    f = cfg.optim.hard_fraction
    if f >= 1:
        return area
    proxy = create_model(recipe.get("hard_proxy"), num_classes, in_channels=image_shape[0])
    own = count_flops(model, image_shape, next(model.parameters()).device)
    ratio = count_flops(proxy, image_shape, "cpu") / max(1, own)
    return area * (f + ratio * (1 + 2 * f / recipe.get("hard_proxy_every")) / 3)


def planned_epochs(cfg: TrainConfig, model: torch.nn.Module, speed, data, device, seconds: float | None,
                   log=print) -> float | None:
    """The epochs a run plans (the learning rate depends on them): ``--epochs``, or what
    ``seconds`` of training give at the speed measured for the model (timed here, in the run's
    precision, when ``--model`` named it); None when nothing reads them (``--lr`` given, or an
    optimiser whose rate does not vary)."""
    if cfg.schedule.epochs is not None:
        return float(cfg.schedule.epochs)
    if cfg.optim.lr is not None or cfg.optim.optimizer != "muon" or seconds is None:
        return None
    if speed is None:
        speed = measure_speed(model, data.image_shape, data.num_classes, device, cfg.speed.channels_last,
                              amp=run_precision(cfg.speed.amp, device)[0])
    epochs = speed.images_per_second * max(seconds, 0.0) / max(data.n, 1) / step_cost(cfg, model, data.image_shape,
                                                                                       data.num_classes)
    log(f"recipe: {epochs:.1f} epochs planned at {speed.images_per_second:,.0f} images/s")
    return epochs


def train_seconds(cfg: TrainConfig, clock) -> float | None:
    """The training time the budget leaves, less its share for evaluations and the end."""
    budget = cfg.schedule.budget
    return recipe.get("budget_model_share") * budget - clock() if budget else None


def choose_lr(cfg: TrainConfig, model_name: str, model: torch.nn.Module, speed, data, device, seconds, world,
              log=print) -> tuple[float | None, float, TrainConfig]:
    """``(planned epochs, peak lr, cfg)``; a budgeted run's rate is a timed choice, written into its
    configuration so that a resume keeps it. Every rank takes rank 0's epochs."""
    epochs = planned_epochs(cfg, model, speed, data, device, seconds, log)
    if world.distributed and epochs is not None:
        epochs = ddp.broadcast_float(world, epochs, device)
    lr = peak_lr(cfg, model_name, epochs)
    if cfg.optim.lr is None and cfg.schedule.epochs is None:
        cfg = cfg.replace(lr=lr)
    return epochs, lr, cfg


def replan_rate(trainer) -> Callable[[float], None]:
    """What a budgeted run whose rate is the plan's does once its own steps are timed: the epochs
    planned again at that speed (the start-up probe times a copy of the model for a few steps,
    without the loader, and a machine busy for those seconds misleads it), and the SGD groups'
    peak rate for them, set while the rate still warms up and written into the configuration so
    that a resume keeps it. The model stays the probe's choice. Every rank takes rank 0's epochs."""
    t = trainer

    def replan(step_seconds: float) -> None:
        per_epoch = t.steps_per_epoch
        left = max(train_seconds(t.cfg, t.clock), 0.0) / max(step_seconds, 1e-9) / per_epoch
        epochs = ddp.broadcast_float(t.world, t.state.step / per_epoch + left, t.device)
        lr = peak_lr(t.cfg.replace(lr=None), t.model_name, epochs)
        speed = t.cfg.optim.batch_size / step_seconds
        t.recorder.log(f"recipe: {epochs:.1f} epochs at the run's own speed ({speed:,.0f} images/s; the probe's "
                       f"plan: {t.planned_epochs:.1f}): peak lr {t.peak_lr:.3g} -> {lr:.3g}")
        t.planned_epochs, t.peak_lr, t.optimizer.peak, t.cfg = epochs, lr, lr, t.cfg.replace(lr=lr)
        if t.world.main:
            t.cfg.save(t.recorder.out / "config.json")
    return replan


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN computes bf16 natively on this CPU (AVX-512 cores, AVX512-BF16, AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def run_precision(asked: bool | None, device: torch.device) -> tuple[bool | None, str]:
    """The precision a run trains in, and why, where it is settled before any timing: bf16
    autocast (True) for ``--amp`` and on CUDA, fp32 (False) for ``--no-amp`` and on a CPU without
    native bf16; None where a probe of both decides (:func:`choose_amp`)."""
    if asked is not None:
        return asked, "--amp" if asked else "--no-amp"
    if device.type == "cuda":
        return True, "CUDA"
    if not cpu_has_fast_bf16():
        return False, f"this CPU ({torch.backends.cpu.get_cpu_capability()}) has no native bf16"
    return None, "to be probed"


def choose_amp(asked: bool | None, device: torch.device, model: torch.nn.Module, image_shape, num_classes: int,
               channels_last: bool, speed: Speed | None = None) -> tuple[bool, str, Speed | None]:
    """bf16 autocast or not, why, and the model's speed in that precision where it is known:
    ``--amp/--no-amp`` when given; on CUDA, on; on a CPU, on only where it computes bf16 natively
    and a short probe (a few training steps of a copy of the model each way; ``speed`` when the
    recipe already timed them) shows it faster. The speed is returned for the run's plan, which
    would otherwise time the model again."""
    amp, why = run_precision(asked, device)
    if amp is not None:
        return amp, why, speed
    if speed is None or speed.ratio is None:
        speed = measure_speed(model, image_shape, num_classes, device, channels_last, amp=None)
    return bool(speed.amp), f"probe: bf16 steps {speed.ratio:.2f}x the speed of fp32", speed
