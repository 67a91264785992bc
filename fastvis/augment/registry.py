"""Every batch transform by name: its function, its module form, the dtypes it takes and what
it gives back, and, for those fastvis-train applies, how (:class:`TrainingUse`: the options it
reads, its stage builder, its place in the order, its seed stream, what it needs). The trainer's
augmentation plan (:func:`fastvis.train.augment_plan.build_plan`) and the shared contract tests
(``tests/augment/test_contract.py``) run over this table.

Adding an augmentation: its function, module form and stage builder in its module; its entry
here; its line of settings in the contract tests; its option in :mod:`fastvis.train.config`."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .base import BatchTransform, PlanContext, StageFn
from .defects import DefectPaste, defect_paste, defect_paste_stage
from .erasing import Cutout, RandomErasing, cutout, cutout_stage, random_erasing, random_erasing_stage
from .geometric import (
    AlternatingFlip,
    RandomCrop,
    RandomCropFlip,
    RandomFlip,
    RandomTranslate,
    alternating_flip,
    alternating_flip_stage,
    crop_flip_stage,
    hflip,
    random_crop,
    random_crop_flip,
    random_translate,
)
from .intensity import ToUnit, to_unit
from .mix import CutMix, Mixup, RandomMix, cutmix, mix, mix_stage, mixup
from .normalize import Normalize, normalize, normalize_stage
from .policies import (
    AutoAugment,
    RandAugment,
    TrivialAugment,
    autoaugment,
    autoaugment_stage,
    randaugment,
    randaugment_stage,
    trivialaugment,
    trivialaugment_stage,
)
from .resize import Resize, progressive_resize_stage, resize
from .resized_crop import RandomResizedCrop, random_resized_crop

__all__ = ["TRANSFORMS", "TrainingUse", "TransformSpec", "training_order"]


@dataclass(frozen=True)
class TrainingUse:
    """How fastvis-train applies a transform to every training batch."""

    order: int  # its place among a batch's stages, smallest first (uint8-only ones before normalize)
    options: tuple[str, ...]  # the training options its stage reads (fastvis.train.config)
    stage: Callable[[PlanContext], StageFn | None]  # its stage for a run, None when the options leave it off
    key: int | None = None  # its seed stream, fixed for good (a resumed run replays its draws); None: draws nothing
    #: "rgb": uint8 RGB images, not radiographs; "resident": the resident loader (sample indices);
    #: "masks": radiographs with defect masks (the stage itself says what is missing)
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransformSpec:
    function: Callable
    module: type[BatchTransform]
    dtypes: tuple[str, ...] = ("uint8", "float32")  # input dtypes it takes (float: values in [0, 1])
    output: str = "same"  # the output dtype: "same" as the input, or a fixed one
    keeps_shape: bool = True  # (B, C, H, W) in, the same out
    mixes_labels: bool = False  # also returns soft targets (B, K)
    training: TrainingUse | None = None  # how fastvis-train applies it (None: a library transform only)


TRANSFORMS: dict[str, TransformSpec] = {
    "random_crop_flip": TransformSpec(random_crop_flip, RandomCropFlip, training=TrainingUse(
        20, ("crop", "padding", "flip"), crop_flip_stage, key=1)),
    "random_crop": TransformSpec(random_crop, RandomCrop),
    "hflip": TransformSpec(hflip, RandomFlip),
    "random_translate": TransformSpec(random_translate, RandomTranslate),
    "alternating_flip": TransformSpec(alternating_flip, AlternatingFlip, training=TrainingUse(
        30, ("flip",), alternating_flip_stage, needs=("resident",))),
    "random_resized_crop": TransformSpec(random_resized_crop, RandomResizedCrop, dtypes=("uint8",), keeps_shape=False),
    "randaugment": TransformSpec(randaugment, RandAugment, training=TrainingUse(
        40, ("randaugment",), randaugment_stage, key=2, needs=("rgb",))),
    "trivialaugment": TransformSpec(trivialaugment, TrivialAugment, training=TrainingUse(
        60, ("trivialaugment",), trivialaugment_stage, key=4, needs=("rgb",))),
    "autoaugment": TransformSpec(autoaugment, AutoAugment, training=TrainingUse(
        50, ("autoaugment",), autoaugment_stage, key=3, needs=("rgb",))),
    "normalize": TransformSpec(normalize, Normalize, output="float32", training=TrainingUse(
        70, (), normalize_stage)),
    "to_unit": TransformSpec(to_unit, ToUnit, dtypes=("int16", "uint8"), output="float32"),
    "cutout": TransformSpec(cutout, Cutout, training=TrainingUse(80, ("cutout",), cutout_stage, key=5)),
    "random_erasing": TransformSpec(random_erasing, RandomErasing, training=TrainingUse(
        90, ("erasing",), random_erasing_stage, key=6)),
    "cutmix": TransformSpec(cutmix, CutMix, mixes_labels=True),
    "mixup": TransformSpec(mixup, Mixup, mixes_labels=True),
    "mix": TransformSpec(mix, RandomMix, mixes_labels=True, training=TrainingUse(
        100, ("cutmix", "mixup", "mix_prob"), mix_stage, key=7)),
    "defect_paste": TransformSpec(defect_paste, DefectPaste, dtypes=("float32",), training=TrainingUse(
        10, ("defect_paste", "defect_class"), defect_paste_stage, key=8, needs=("masks",))),
    "resize": TransformSpec(resize, Resize, dtypes=("float32",), keeps_shape=False, training=TrainingUse(
        110, ("progressive_resize", "progressive_ramp"), progressive_resize_stage)),
}


def training_order() -> list[tuple[str, TrainingUse]]:
    """The transforms fastvis-train may apply, in the order it applies them."""
    return sorted(((n, s.training) for n, s in TRANSFORMS.items() if s.training), key=lambda t: t[1].order)
