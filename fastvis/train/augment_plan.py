"""The ordered batch transforms of a run, built once from the config.

:func:`build_plan` reads the augmentation options and the training data (what its loader
already does, whether it holds radiographs) and returns an :class:`AugmentPlan`: a list of
:class:`Stage` s, each a transform of :mod:`fastvis.augment` with its own seed stream
(``key``). Applied to a batch at step ``s``, stage ``k`` draws from the seed
``seed * 1_000_003 + s * 97 + key``, so a run replays exactly after a resume and the same
global batch gets the same augmentation on every rank.

Which stages there are, in which order, with which seed stream, is the transform registry's
(:data:`fastvis.augment.registry.TRANSFORMS`, each entry's ``training``); each transform's module
builds its own stage from the run's options. Adding an augmentation to the trainer touches its
module, its registry entry, its contract settings and its option, not this file.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .. import FastvisError
from ..augment.base import AugmentedBatch, PlanContext
from ..augment.registry import training_order
from ..loader import Batch
from .config import TrainConfig, flag_of
from .data import TrainData
from .ddp import World

__all__ = ["AugmentPlan", "Stage", "AugmentedBatch", "build_plan"]


@dataclass
class Stage:
    name: str
    key: int | None  # seed stream; None for deterministic stages
    apply: Callable[[AugmentedBatch, int], AugmentedBatch]


@dataclass
class AugmentPlan:
    stages: list[Stage]
    seed: int
    world: World
    per_rank: bool  # the loader gave this rank its own batch (else: slice the global batch at the end)
    stats: dict = field(default_factory=dict)  # counters the stages keep (defect pastes)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def seed_of(self, step: int, key: int) -> int:
        return (self.seed * 1_000_003 + step * 97 + key) % (2**62)  # not tuning: seed mixing

    def __call__(self, batch: Batch, step: int, epoch: int, progress: float = 1.0):
        """``(images, labels, soft targets or None)`` of this rank for training step ``step``, at
        ``progress`` of the run or phase."""
        stream = step * 1009 + self.world.rank if self.per_rank else step  # not tuning: each rank its own stream
        v = AugmentedBatch(batch.images, batch.labels, None, batch.indices, epoch, progress)
        for stage in self.stages:
            v = stage.apply(v, self.seed_of(stream, stage.key) if stage.key is not None else 0)
        if self.world.distributed and not self.per_rank:
            b = v.images.shape[0] // self.world.size
            part = slice(self.world.rank * b, (self.world.rank + 1) * b)
            v.images, v.labels = v.images[part], v.labels[part]
            v.targets = v.targets[part] if v.targets is not None else None
        return v.images, v.labels, v.targets


def build_plan(cfg: TrainConfig, data: TrainData, world: World, log=print) -> AugmentPlan:
    """The stages the run's options turn on, in the registry's order, each with its seed stream."""
    ctx = PlanContext(option=cfg.get, seed=cfg.run.seed, num_classes=data.num_classes,
                      image_size=tuple(data.image_shape[1:]), mean=tuple(data.mean), std=tuple(data.std),
                      channels_last=cfg.speed.channels_last, radiographs=data.radiographs,
                      applied=frozenset(data.applies), dataset=data.dataset, log=log)
    stages: list[Stage] = []
    for name, use in training_order():
        apply = use.stage(ctx)
        if apply is None:
            continue
        given = f"{flag_of(use.options[0])} {cfg.get(use.options[0])}" if use.options else name
        if "rgb" in use.needs and data.radiographs:
            raise FastvisError(f"{given}: {name} works on RGB uint8 images, not radiographs")
        if "resident" in use.needs and data.dataset is None:
            raise FastvisError(f"{given}: {name} needs the resident loader (it works by sample index), not the "
                               f"{data.kind} loader")
        stages.append(Stage(name, use.key, apply))
    return AugmentPlan(stages, cfg.run.seed, world, data.per_rank, ctx.stats)
