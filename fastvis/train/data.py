"""The training data behind one object, whatever loader delivers it.

:func:`build_train_data` picks the loader for a .beton file (``--loader``: resident when it
fits, streaming when it does not, jpeg for photos of differing sizes or another
``--image-size``, dali on request) and wraps it in :class:`TrainData`: the batches of an epoch,
the number of samples and classes, the image shape, the per-channel mean and std, and what the
loader already does to the pixels. :func:`load_val` holds the validation set on the device in
the view the model is trained on.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import FastvisError, InputError
from ..beton import BetonReader
from ..loader import Batch, BatchLoader, ResidentDataset, ResidentLoader, channel_mean_std, loader_class
from ..loader.jpeg import center_sample
from ..loader.order import holdout_split
from . import recipe
from .config import LOADER_CHOICES, TrainConfig
from .ddp import World

__all__ = ["TrainData", "align_classes", "build_train_data", "crop_size", "eval_sets", "load_val", "training_samples"]

SAMPLE = recipe.get("sample_images")  # kept for statistics and FastNet's whitening
HOLDOUT_SEED = 0  # the held-out part does not change with --seed: runs of different seeds compare on it


@dataclass
class TrainData:
    loader: BatchLoader
    kind: str  # the LOADERS name
    n: int  # training samples
    image_shape: tuple[int, int, int]  # (C, H, W) the model sees
    num_classes: int
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    steps_per_epoch: int  # global batches per epoch
    sample: torch.Tensor  # up to SAMPLE images (uint8, or [0, 1] float radiographs) on the device
    dataset: ResidentDataset | None = None  # the resident data itself (radiographs: masks, defect bank)
    holdout: ResidentDataset | None = None  # the held-out samples (--holdout), in the evaluation view

    @property
    def applies(self) -> frozenset[str]:
        """What the loader already did to the pixels (crop, flip, normalize)."""
        return self.loader.applies

    @property
    def per_rank(self) -> bool:
        return self.loader.per_rank

    @property
    def radiographs(self) -> bool:
        return self.dataset is not None and self.dataset.params is not None

    def batches(self, epoch: int, first: int = 0) -> Iterator[Batch]:
        """Batches ``first`` to the end of ``epoch`` (a resumed run starts inside an epoch)."""
        self.loader.set_epoch(epoch)
        for _, batch in zip(range(first, self.steps_per_epoch), self.loader.batches(first)):
            yield batch


def crop_size(sizes: np.ndarray, asked: int | None) -> int:
    """The training crop of the jpeg/dali loaders: ``--image-size``, else 224, or the median
    shorter side (a multiple of 8) of images smaller than that."""
    if asked:
        return int(asked)
    short = int(np.median(sizes.min(1)))
    size, step = recipe.get("crop_size")
    return size if short >= size else max(step, short // step * step)


def _choose(cfg: TrainConfig, reader: BetonReader) -> str:
    """The loader for this file: ``--loader``, or what ``auto`` means for it."""
    kind, path = cfg.data.loader, reader.path
    if kind not in LOADER_CHOICES:
        raise FastvisError(f"--loader must be one of {', '.join(LOADER_CHOICES)}, not {kind!r}")
    if "meta" in reader.names:  # radiographs
        if kind not in ("auto", "resident"):
            raise FastvisError(f"{path}: radiographs are trained with the resident loader (--loader resident)")
        return "resident"
    sizes = reader.image_sizes("image")
    uniform = bool((sizes == sizes[0]).all())
    stored = tuple(int(v) for v in sizes[0])
    size = cfg.data.image_size
    if kind == "auto" and (not uniform or (size and stored != (size, size))):
        return "jpeg"
    if kind in ("resident", "streaming") and not uniform:
        raise FastvisError(f"{path}: images differ in size; use --loader jpeg or dali (random-resized crops "
                           "of --image-size) or convert with --size")
    return kind


def training_samples(path: str | Path, holdout: float) -> int:
    """How many samples of ``path`` are trained on (less ``--holdout``)."""
    n = len(BetonReader(path))
    held = int(round(holdout * n)) if 0 < holdout < 1 else int(holdout)
    return max(0, n - held)


def build_train_data(cfg: TrainConfig, path: str | Path, world: World, device: torch.device) -> TrainData:
    """The training set of ``path`` behind the loader ``cfg`` asks for (or the one that suits),
    less the held-out samples of ``--holdout``."""
    reader = BetonReader(path, checked=cfg.data.checksums)
    if len(reader) == 0:
        raise InputError(f"{path}: the file holds no samples")
    kind = _choose(cfg, reader)
    train_ids = hold_ids = None
    if cfg.data.holdout:
        train_ids, hold_ids = holdout_split(reader.labels(), cfg.data.holdout, seed=HOLDOUT_SEED)
    if kind in ("auto", "resident"):
        try:
            return _resident(cfg, path, device, train_ids, hold_ids)
        except MemoryError:
            if kind == "resident" or "meta" in reader.names:
                raise
            kind = "streaming"
    data = _streamed(cfg, reader, kind, world, device, train_ids)
    if hold_ids is not None:
        data.holdout = load_val(path, data, cfg, device, samples=hold_ids)
    return data


def _resident(cfg: TrainConfig, path, device, train_ids, hold_ids) -> TrainData:
    ds = holdout = ResidentDataset.load(path, device, window=cfg.radiograph.window, checked=cfg.data.checksums)
    if hold_ids is not None:  # the same file, held once: its two parts as datasets of their own
        ds, holdout = ds.subset(train_ids), ds.subset(hold_ids)
    n = len(ds)
    pick = torch.arange(min(SAMPLE, n))
    sample = ds.batch(pick)[0] if ds.params is not None else ds.images[:SAMPLE]
    mean, std = ds.mean_std()
    # every rank reads the global batch (augmented identically, then sliced)
    loader = ResidentLoader(ds, cfg.optim.batch_size, seed=cfg.run.seed)
    if len(loader) == 0:
        raise FastvisError(f"{path}: {n} training samples make no whole batch of {cfg.optim.batch_size}; lower "
                           "--batch-size")
    num_classes = max(ds.num_classes, int(ds.labels.max()) + 1, int(holdout.labels.max()) + 1)
    return TrainData(loader, "resident", n, ds.image_shape, num_classes, ds.classes, mean, std,
                     max(1, n // cfg.optim.batch_size), sample, ds, holdout if hold_ids is not None else None)


def _streamed(cfg: TrainConfig, reader: BetonReader, kind: str, world: World, device, train_ids) -> TrainData:
    """Streaming, jpeg and dali: each rank reads its part of every epoch (of ``train_ids``)."""
    path, seed = reader.path, cfg.run.seed
    batch = cfg.optim.batch_size // world.size
    sizes = reader.image_sizes("image")
    stored = tuple(int(v) for v in sizes[0])
    if kind == "streaming":
        # page-local (quasi-random) order only for files written in random order (CIFAR, or
        # converted with --shuffle): class by class, its windows would hold few classes
        order = "quasi_random" if reader.info.get("shuffled") is not None else "random"
        loader = loader_class("streaming")(path, batch, order=order, seed=seed, rank=world.rank, world=world.size,
                                           device=device, samples=train_ids, checked=cfg.data.checksums)
        size, sample = stored, loader.sample(SAMPLE)
        mean, std = channel_mean_std(sample)
    else:
        size = (crop_size(sizes, cfg.data.image_size),) * 2
        pad = bool((sizes == sizes[0]).all()) and stored == size  # DALI keeps such images at their size
        crop = 1.0 if pad and kind == "dali" else recipe.get("center_crop")
        sample = center_sample(reader, "image", SAMPLE, size[0], crop, device, train_ids)
        mean, std = channel_mean_std(sample)
        aug = cfg.augment
        flip_p = 0.0 if aug.flip == "none" else 0.5
        scale = (cfg.data.rrc_scale, 1.0)
        policies = aug.randaugment or aug.autoaugment or aug.trivialaugment
        # the loader normalises as it crops, unless a uint8 policy has to come first
        norm = dict(mean=mean, std=std) if not policies else {}
        common = dict(flip_p=flip_p, scale=scale, seed=seed, rank=world.rank, world=world.size, device=device,
                      samples=train_ids, checked=cfg.data.checksums)
        if kind == "jpeg":
            loader = loader_class("jpeg")(path, batch, size[0], **common, **norm)
        else:
            if policies:
                raise FastvisError("--loader dali normalises in the pipeline: RandAugment/AutoAugment/"
                                   "TrivialAugment (uint8 policies) need --loader jpeg")
            try:
                loader = loader_class("dali")(path, batch, size[0], crop="pad" if pad else "rrc",
                                              padding=aug.padding, mean=mean, std=std, **common)
            except ImportError as exc:
                raise FastvisError(str(exc)) from None
    n = len(reader) if train_ids is None else len(train_ids)
    if len(loader) == 0:
        raise FastvisError(f"{path}: {n} samples make no whole batch of {batch} per process; lower --batch-size")
    labels = reader.labels()
    num_classes = max(int(reader.info.get("num_classes") or 0), int(labels.max()) + 1)
    return TrainData(loader, kind, n, (3, *size), num_classes, list(reader.info.get("classes") or []), mean, std,
                     max(1, n // cfg.optim.batch_size), sample)


def load_val(path: str | Path, data: TrainData, cfg: TrainConfig, device, samples=None) -> ResidentDataset:
    """The validation set (or the ``samples`` of a file) on the device, as the model sees it: RGB
    images of the training size (centre crops of photos, for the loaders that crop), radiographs
    windowed as the training set. Images trained on at their stored size (resident, streaming)
    are evaluated at it: a file of another size is held as it is (and refused by
    :func:`eval_sets`), not resized."""
    c, h, w = data.image_shape
    crops = c == 3 and h == w and data.kind not in ("resident", "streaming")
    return ResidentDataset.load(path, device, window=cfg.radiograph.window, size=h if crops else None,
                                samples=samples, checked=cfg.data.checksums)


def eval_sets(data: TrainData, val_path, cfg: TrainConfig, device) -> dict[str, ResidentDataset]:
    """The sets evaluated, by split: the holdout first when there is one (it is watched during
    training), then the test set of ``val_path``; refused when one has class ids the training
    set does not."""
    sets = {}
    if data.holdout is not None:
        sets["holdout"] = data.holdout
    if val_path is not None:
        test = sets["test"] = load_val(val_path, data, cfg, device)
        if test.image_shape != tuple(data.image_shape):
            shape = "x".join(map(str, test.image_shape))
            raise FastvisError(f"{val_path}: its images are {shape}, the training images "
                               f"{'x'.join(map(str, data.image_shape))}: convert both at the same size (--size)")
        align_classes(test, data.classes, val_path)
    for split, ds in sets.items():
        top = int(ds.labels.max()) if len(ds) else -1
        if top >= data.num_classes:
            raise FastvisError(f"the {split} set has class id {top}, the training set only {data.num_classes} "
                               "classes: they are not the same classes")
    return sets


def align_classes(ds: ResidentDataset, classes: list[str], path) -> None:
    """Give the samples of ``ds`` the training set's ids of their class names (a file may hold
    fewer classes, or list them in another order). Refused when a sample's class is not one of
    the training classes. Files without class names keep their ids."""
    if not classes or not ds.classes:
        return
    used = sorted(set(ds.labels.unique().tolist()))
    if used and used[-1] >= len(ds.classes):
        raise FastvisError(f"{path}: label {used[-1]} but only {len(ds.classes)} class names ({ds.classes})")
    unknown = [ds.classes[i] for i in used if ds.classes[i] not in classes]
    if unknown:
        near = {c: t for c in unknown for t in classes if c.strip().casefold() == t.strip().casefold()}
        hint = "; spelled differently: " + ", ".join(f"{c!r} vs {t!r}" for c, t in near.items()) if near else ""
        raise FastvisError(f"{path}: classes {unknown} are not among the training classes {classes}{hint}")
    if ds.classes == classes[: len(ds.classes)]:
        return
    mapping = torch.tensor([classes.index(c) if c in classes else -1 for c in ds.classes], device=ds.labels.device)
    ds.labels = mapping[ds.labels]
    ds.classes, ds.num_classes = list(classes), len(classes)
