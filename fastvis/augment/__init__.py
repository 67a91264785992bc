"""Batch augmentation on the device: every transform takes a whole (B, C, H, W) batch (uint8 or
float, CPU or CUDA), draws its random parameters from an explicit generator or seed, and
comes as a function and as a module (:func:`fastvis.augment.base.module_form`). The
registry :data:`TRANSFORMS` lists them all."""
from .base import AugmentedBatch, BatchTransform, PlanContext, module_form
from .defects import (
    DefectBank,
    DefectPaste,
    DefectPasteParams,
    defect_paste,
    defect_paste_params,
    placed_patch,
    tight_mask,
    valid_map,
)
from .erasing import Cutout, RandomErasing, cutout, erase, random_erasing, random_erasing_params
from .generators import GeneratorLike, as_generator, rng
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
from .intensity import ToUnit, to_unit, window_params
from .mix import (
    CutMix,
    MixParams,
    Mixup,
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
from .poisson import BlendStats, poisson_blend, poisson_blend_batch, poisson_blend_reference
from .policies import AutoAugment, RandAugment, TrivialAugment, apply_ops, autoaugment, randaugment, trivialaugment
from .registry import TRANSFORMS, TrainingUse, TransformSpec, training_order
from .resize import Resize, mean_area, progressive_side, resize
from .resized_crop import (
    RandomResizedCrop,
    center_boxes,
    center_crop_resize,
    random_resized_crop,
    resized_crops,
    rrc_boxes,
)

__all__ = [
    "AlternatingFlip", "AugmentedBatch", "AutoAugment", "BatchTransform", "BlendStats", "CIFAR100_MEAN", "CIFAR100_STD",
    "CIFAR10_MEAN", "CIFAR10_STD", "CutMix", "Cutout", "DefectBank", "DefectPaste", "DefectPasteParams",
    "GeneratorLike", "MixParams", "Mixup", "Normalize", "PlanContext", "RandAugment", "RandomCrop", "RandomCropFlip",
    "RandomErasing", "RandomFlip", "RandomMix", "RandomResizedCrop", "RandomTranslate", "Resize", "TRANSFORMS",
    "ToUnit", "TrainingUse", "TransformSpec", "TrivialAugment", "alternating_flip", "apply_cutmix", "apply_mixup",
    "apply_ops", "as_generator", "autoaugment", "center_boxes", "center_crop_resize", "cutmix", "cutmix_params",
    "cutout", "defect_paste", "defect_paste_params", "erase", "hflip", "mean_area", "mix", "mixup", "mixup_params",
    "module_form", "normalize", "placed_patch", "poisson_blend", "poisson_blend_batch", "poisson_blend_reference",
    "progressive_side", "randaugment", "random_crop", "random_crop_flip", "random_erasing", "random_erasing_params",
    "random_resized_crop", "random_translate", "resize", "resized_crops", "rng", "rrc_boxes", "soft_targets",
    "tight_mask", "to_unit", "training_order", "trivialaugment", "valid_map", "window_params",
]
