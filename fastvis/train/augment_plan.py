"""The ordered batch transforms of a run, built once from the config.

:func:`build_plan` reads the augmentation options and the training data (what its loader
already does, whether it holds radiographs) and returns an :class:`AugmentPlan`: a list of
:class:`Stage` s, each a transform of :mod:`fastvis.augment` with its own seed stream
(``key``). Applied to a batch at step ``s``, stage ``k`` draws from the seed
``seed * 1_000_003 + s * 97 + key``, so a run replays exactly after a resume and the same
global batch gets the same augmentation on every rank.

Adding an augmentation to the trainer: one ``Stage`` in :func:`build_plan` (in its place in
the order, with an unused ``key``) and its option in :mod:`fastvis.train.config`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .. import FastvisError
from .. import augment as aug_ops
from ..loader import Batch
from .config import TrainConfig
from .data import TrainData
from .ddp import World

__all__ = ["AugmentPlan", "Stage", "AugmentedBatch", "build_plan"]


@dataclass
class AugmentedBatch:
    """What flows through the plan: images, class ids, soft targets once mixed, dataset indices."""

    images: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor | None = None
    indices: torch.Tensor | None = None
    epoch: int = 0


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

    def __call__(self, batch: Batch, step: int, epoch: int):
        """``(images, labels, soft targets or None)`` of this rank for training step ``step``."""
        stream = step * 1009 + self.world.rank if self.per_rank else step  # not tuning: each rank its own stream
        v = AugmentedBatch(batch.images, batch.labels, None, batch.indices, epoch)
        for stage in self.stages:
            v = stage.apply(v, self.seed_of(stream, stage.key) if stage.key is not None else 0)
        if self.world.distributed and not self.per_rank:
            b = v.images.shape[0] // self.world.size
            part = slice(self.world.rank * b, (self.world.rank + 1) * b)
            v.images, v.labels = v.images[part], v.labels[part]
            v.targets = v.targets[part] if v.targets is not None else None
        return v.images, v.labels, v.targets


def _defect_stage(cfg: TrainConfig, data: TrainData, stats: dict, log) -> Stage:
    """Poisson-blend defect patches (cut around the masks of the defect class) into normal images."""
    ds = data.dataset
    if ds is None or ds.masks is None:
        raise FastvisError("--defect-paste needs radiographs converted with masks (fastvis-convert DIR OUT "
                           "--size N --labels CSV with a mask column)")
    classes = ds.classes or [str(k) for k in range(data.num_classes)]
    name = cfg.radiograph.defect_class if cfg.radiograph.defect_class is not None else "defect"
    if name in classes:
        defect = classes.index(name)
    elif str(name).isdigit() and int(name) < data.num_classes:
        defect = int(name)
    else:
        raise FastvisError(f"--defect-class {name!r} is not one of the classes {classes}")
    if "normal" in classes and classes.index("normal") != defect:
        normal = [classes.index("normal")]
    else:
        normal = [k for k in range(data.num_classes) if k != defect]
    pick = ((ds.labels == defect) & (ds.masks.flatten(1).amax(1) > 0)).nonzero().flatten().cpu()
    if len(pick) == 0:
        raise FastvisError(f"--defect-paste: no training sample of class {classes[defect]!r} has a mask")
    bank = aug_ops.DefectBank.from_samples(ds.batch(pick)[0], ds.masks[pick.to(ds.masks.device)])
    boxes = f" ({bank.from_boxes} box labels narrowed to what stands out in them)" if bank.from_boxes else ""
    log(f"defect bank: {len(bank)} patches from {len(pick)} masked {classes[defect]!r} samples{boxes}; pasting "
        f"brings each batch to {100 * cfg.radiograph.defect_paste:g}% {classes[defect]!r} samples")
    stats["defect_pastes"] = 0
    p = cfg.radiograph.defect_paste

    def paste(v: AugmentedBatch, seed: int) -> AugmentedBatch:
        v.images, v.labels, params = aug_ops.defect_paste(v.images, v.labels, bank, defect, normal, p, generator=seed)
        stats["defect_pastes"] += len(params.index)
        return v

    return Stage("defect_paste", 8, paste)


def _on_images(fn: Callable[..., torch.Tensor]) -> Callable[[AugmentedBatch, int], AugmentedBatch]:
    """A stage from a transform of the images alone: ``fn(images, seed)``."""
    def apply(v: AugmentedBatch, seed: int) -> AugmentedBatch:
        v.images = fn(v.images, seed)
        return v

    return apply


def build_plan(cfg: TrainConfig, data: TrainData, world: World, log=print) -> AugmentPlan:
    aug, stats = cfg.augment, {}
    policies = aug.randaugment or aug.autoaugment or aug.trivialaugment
    if data.radiographs and policies:
        raise FastvisError("RandAugment/AutoAugment/TrivialAugment work on RGB uint8 images, not radiographs")
    stages: list[Stage] = []
    if cfg.radiograph.defect_paste > 0:
        stages.append(_defect_stage(cfg, data, stats, log))
    if (aug.crop or aug.flip == "random") and "crop" not in data.applies:
        pad, flip_p = (aug.padding if aug.crop else 0), (0.5 if aug.flip == "random" else 0.0)
        stages.append(Stage("random_crop_flip", 1, _on_images(lambda x, s: aug_ops.random_crop_flip(
            x, padding=pad, padding_mode="reflect", flip_p=flip_p, generator=s))))
    if aug.flip == "alternating":
        def alternate(v: AugmentedBatch, _seed: int) -> AugmentedBatch:
            v.images = aug_ops.alternating_flip(v.images, v.indices, v.epoch, cfg.run.seed)
            return v

        stages.append(Stage("alternating_flip", None, alternate))
    if aug.randaugment:
        try:
            n, m = (int(v) for v in aug.randaugment.split(","))
        except ValueError:
            raise FastvisError(f"--randaugment takes N,M (e.g. 2,9), not {aug.randaugment!r}") from None
        stages.append(Stage("randaugment", 2, _on_images(lambda x, s: aug_ops.randaugment(x, n, m, generator=s))))
    if aug.autoaugment:
        stages.append(Stage("autoaugment", 3, _on_images(lambda x, s: aug_ops.autoaugment(x, generator=s))))
    if aug.trivialaugment:
        stages.append(Stage("trivialaugment", 4, _on_images(lambda x, s: aug_ops.trivialaugment(x, generator=s))))
    if "normalize" not in data.applies:
        mean, std, last = data.mean, data.std, cfg.speed.channels_last
        stages.append(Stage("normalize", None, _on_images(lambda x, s: aug_ops.normalize(x, mean, std,
                                                                                       channels_last=last))))
    if aug.cutout:
        stages.append(Stage("cutout", 5, _on_images(lambda x, s: aug_ops.cutout(x, aug.cutout, generator=s))))
    if aug.erasing:
        stages.append(Stage("random_erasing", 6, _on_images(lambda x, s: aug_ops.random_erasing(x, p=aug.erasing,
                                                                                               generator=s))))
    if aug.cutmix or aug.mixup:
        k = data.num_classes

        def mix(v: AugmentedBatch, seed: int) -> AugmentedBatch:
            if aug.cutmix and aug.mixup:
                v.images, v.targets = aug_ops.mix(v.images, v.labels, k, aug.mixup, aug.cutmix, 0.5, aug.mix_prob,
                                                  generator=seed)
            elif aug.cutmix:
                v.images, v.targets = aug_ops.cutmix(v.images, v.labels, k, aug.cutmix, aug.mix_prob, generator=seed)
            else:
                v.images, v.targets = aug_ops.mixup(v.images, v.labels, k, aug.mixup, aug.mix_prob, generator=seed)
            return v

        stages.append(Stage("cutmix/mixup", 7, mix))
    return AugmentPlan(stages, cfg.run.seed, world, data.per_rank, stats)
