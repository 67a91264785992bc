"""Batch augmentation on the device: every transform takes a whole (B, C, H, W) batch (uint8 or
float, CPU or CUDA), draws its random parameters from an explicit generator or seed, and
comes as a function and as a module."""
from .defects import DefectBank, DefectPaste, DefectPasteParams, defect_paste, defect_paste_params
from .erasing import Cutout, RandomErasing, cutout, erase, random_erasing, random_erasing_params
from .geometric import (
    AlternatingFlip,
    RandomCrop,
    RandomFlip,
    RandomTranslate,
    alternating_flip,
    hflip,
    random_crop,
    random_crop_flip,
    random_translate,
)
from .mix import (
    CutMix,
    Mixup,
    MixParams,
    RandomMix,
    apply_cutmix,
    apply_mixup,
    cutmix,
    cutmix_params,
    mix,
    mixup,
    mixup_params,
    soft_targets,
)
from .normalize import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, Normalize, normalize
from .intensity import ToUnit, to_unit, window_params
from .poisson import BlendStats, poisson_blend, poisson_blend_batch, poisson_blend_reference
from .policies import AutoAugment, RandAugment, TrivialAugment, apply_ops, autoaugment, randaugment, trivialaugment

__all__ = [
    "AlternatingFlip", "AutoAugment", "CIFAR100_MEAN", "CIFAR100_STD", "CIFAR10_MEAN", "CIFAR10_STD", "CutMix",
    "Cutout", "MixParams", "Mixup", "Normalize", "RandAugment", "RandomCrop", "RandomErasing", "RandomFlip",
    "RandomMix", "RandomTranslate", "TrivialAugment", "alternating_flip", "apply_cutmix", "apply_mixup", "apply_ops", "autoaugment", "cutmix",
    "cutmix_params", "cutout", "erase", "hflip", "mix", "mixup", "mixup_params", "normalize", "randaugment",
    "random_crop", "random_crop_flip", "random_erasing", "random_erasing_params", "random_translate",
    "soft_targets", "trivialaugment",
    "BlendStats", "DefectBank", "DefectPaste", "DefectPasteParams", "ToUnit", "defect_paste", "defect_paste_params",
    "poisson_blend", "poisson_blend_batch", "poisson_blend_reference", "to_unit", "window_params",
]
