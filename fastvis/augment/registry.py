"""Every batch transform by name: its function, its module form, the dtypes it takes and what
it gives back. The trainer's augmentation plan and the shared contract tests
(``tests/augment/test_contract.py``) run over this table."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .base import BatchTransform
from .defects import DefectPaste, defect_paste
from .erasing import Cutout, RandomErasing, cutout, random_erasing
from .geometric import (
    AlternatingFlip,
    RandomCrop,
    RandomCropFlip,
    RandomFlip,
    RandomTranslate,
    alternating_flip,
    hflip,
    random_crop,
    random_crop_flip,
    random_translate,
)
from .intensity import ToUnit, to_unit
from .mix import CutMix, Mixup, RandomMix, cutmix, mix, mixup
from .normalize import Normalize, normalize
from .policies import AutoAugment, RandAugment, TrivialAugment, autoaugment, randaugment, trivialaugment
from .resized_crop import RandomResizedCrop, random_resized_crop

__all__ = ["TRANSFORMS", "TransformSpec"]


@dataclass(frozen=True)
class TransformSpec:
    function: Callable
    module: type[BatchTransform]
    dtypes: tuple[str, ...] = ("uint8", "float32")  # input dtypes it takes (float: values in [0, 1])
    output: str = "same"  # the output dtype: "same" as the input, or a fixed one
    keeps_shape: bool = True  # (B, C, H, W) in, the same out
    mixes_labels: bool = False  # also returns soft targets (B, K)


TRANSFORMS: dict[str, TransformSpec] = {
    "random_crop_flip": TransformSpec(random_crop_flip, RandomCropFlip),
    "random_crop": TransformSpec(random_crop, RandomCrop),
    "hflip": TransformSpec(hflip, RandomFlip),
    "random_translate": TransformSpec(random_translate, RandomTranslate),
    "alternating_flip": TransformSpec(alternating_flip, AlternatingFlip),
    "random_resized_crop": TransformSpec(random_resized_crop, RandomResizedCrop, dtypes=("uint8",), keeps_shape=False),
    "randaugment": TransformSpec(randaugment, RandAugment),
    "trivialaugment": TransformSpec(trivialaugment, TrivialAugment),
    "autoaugment": TransformSpec(autoaugment, AutoAugment),
    "normalize": TransformSpec(normalize, Normalize, output="float32"),
    "to_unit": TransformSpec(to_unit, ToUnit, dtypes=("int16", "uint8"), output="float32"),
    "cutout": TransformSpec(cutout, Cutout),
    "random_erasing": TransformSpec(random_erasing, RandomErasing),
    "cutmix": TransformSpec(cutmix, CutMix, mixes_labels=True),
    "mixup": TransformSpec(mixup, Mixup, mixes_labels=True),
    "mix": TransformSpec(mix, RandomMix, mixes_labels=True),
    "defect_paste": TransformSpec(defect_paste, DefectPaste, dtypes=("float32",)),
}
