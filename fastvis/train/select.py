"""Training on the harder part of each batch (``--hard-fraction F``).

A small proxy network (the recipe's ``hard_proxy``, a FastNet of widths 32/64/64) sees every
batch after augmentation and ranks its samples by their loss; the model trains on the ``F`` of
the batch the proxy finds hardest, at the learning rate of the batch it trains on (the recipe's
rate scaled to ``F`` of the batch, as for any batch). The proxy learns alongside on the same
schedule: on one step in ``hard_proxy_every`` it trains on its own hardest ``F``, on the others it
only ranks (a forward pass). The proxy costs a few percent of a step of a large model, so a step
costs about ``F`` of a step on the whole batch, and the samples the model already gets right cost
nothing. The proxy and its optimiser are saved in the run's checkpoint (an exact resume).
"""
from __future__ import annotations

import torch

from . import ddp, recipe
from .config import TrainConfig
from .loss import sample_losses
from .model import build_model, make_optimizer, trained_batch

__all__ = ["HardSelector", "hard_selector"]


def hard_selector(trainer) -> "HardSelector | None":
    """The selector of a run being set up (:class:`fastvis.train.loop.Trainer`), or None
    without ``--hard-fraction``."""
    cfg, data = trainer.cfg, trainer.data
    if cfg.optim.hard_fraction >= 1:
        return None
    return HardSelector(cfg, cfg.optim.hard_fraction, data.num_classes, data.image_shape, trainer.device,
                        trainer.world, lambda: trainer.normalize(trainer.whitening_images()), trainer.autocast)


class HardSelector:
    """``selector(x, y, targets, step, factor, whiten)``: the hardest ``fraction`` of the batch
    (images, labels, soft targets), as the proxy ranks them; ``factor`` and ``whiten`` are the
    schedule's, for the proxy's own learning rate."""

    def __init__(self, cfg: TrainConfig, fraction: float, num_classes: int, image_shape, device, world,
                 whiten_sample, autocast):
        self.fraction, self.autocast = fraction, autocast
        self.every = recipe.get("hard_proxy_every")
        self.label_smoothing = cfg.optim.label_smoothing
        self.name = name = recipe.get("hard_proxy")
        optimizer = recipe.optimizer(name, int(image_shape[0]))
        own = cfg.replace(optimizer=optimizer, lr=None, muon_lr=None, norm_lr_scale=None, head_lr_scale=None)
        self.raw_model, self.params, self.flops = build_model(name, own, num_classes, image_shape, device,
                                                              whiten_sample)
        batch = trained_batch(cfg.optim.batch_size // world.size, fraction) * world.size
        self.optimizer = make_optimizer(self.raw_model, own, recipe.peak_lr(name, optimizer, batch))
        self.model = ddp.wrap(self.raw_model, world, device)  # every rank's proxy takes the same steps
        self.channels_last = cfg.speed.channels_last

    def __call__(self, x: torch.Tensor, y: torch.Tensor, targets, step: int, factor: float, whiten: float):
        k = trained_batch(len(x), self.fraction)
        learn = step % self.every == 0
        self.model.train()
        with torch.set_grad_enabled(learn), self.autocast():
            logits = self.model(x)
        losses = sample_losses(logits, y, targets, self.label_smoothing)
        hardest = losses.detach().topk(k).indices
        if learn:
            self.optimizer.set_lr(factor, whiten)
            self.optimizer.zero_grad(set_to_none=True)
            losses[hardest].mean().backward()
            self.optimizer.step()
        picked = x.index_select(0, hardest)
        if self.channels_last:
            picked = picked.contiguous(memory_format=torch.channels_last)
        return picked, y.index_select(0, hardest), None if targets is None else targets.index_select(0, hardest)

    def state_dict(self) -> dict:
        return {"model": self.raw_model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
