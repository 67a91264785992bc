"""The time-budgeted trainer.

Data lives on the device as uint8 (``ResidentDataset``); every step gathers a global batch,
augments it there (crop, flip, policies, erasing, CutMix/mixup), normalises to channels-last
float, and trains with SGD (Nesterov) under a warm-up/linear-decay schedule driven by progress.
A training set that does not fit is streamed (``StreamingLoader``); photos of differing sizes
come as random-resized crops from ``JpegLoader`` or ``DaliLoader``, each rank reading its part.
With a budget, the step count is fitted after measuring a few steps and an evaluation, and
re-fitted (only downwards) every epoch, so that training, evaluations and the report end
inside the budget.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import FastvisError
from .. import augment as A
from ..beton import BetonReader
from ..loader import JpegLoader, ResidentDataset, StreamingLoader, epoch_order
from ..loader.jpeg import center_sample
from ..loader.resident import channel_mean_std
from ..models import FastNet, create_model
from . import budget as B
from . import checkpoint as ckpt
from . import ddp
from .distill import kd_loss, soft_cross_entropy
from .ema import EMA
from .report import write_curve, write_report


class TrainingDiverged(FastvisError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    data: str = "cifar100"
    val: str | None = None
    model: str | None = None  # None: chosen by device and budget
    budget: float | None = None  # seconds
    epochs: float | None = None
    batch_size: int = 512
    lr: float | None = None  # None: by model
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    warmup: float = 0.05
    device: str = "auto"
    out: str = "runs/latest"
    seed: int = 0
    resume: str | None = None
    compile: bool = False
    amp: bool | None = None  # None: bf16 on CUDA, off on CPU
    channels_last: bool = True
    crop: bool = True
    padding: int = 4
    flip: str = "random"  # random | alternating | none
    randaugment: str | None = None  # "N,M"
    autoaugment: bool = False
    trivialaugment: bool = False
    erasing: float = 0.0
    cutout: int = 0
    cutmix: float = 0.0  # alpha; 0 is off
    mixup: float = 0.0  # alpha; 0 is off
    mix_prob: float = 1.0
    label_smoothing: float = 0.1
    drop_path: float = 0.0
    ema: float = 0.0  # decay; 0 is off
    tta: bool = False
    teacher: str | None = None
    kd_alpha: float = 0.5
    kd_temperature: float = 4.0
    wandb: bool = False
    wandb_mode: str = "offline"
    wandb_project: str = "fastvis"
    eval_batch_size: int = 1024
    loader: str = "auto"  # auto | resident | streaming | jpeg | dali (training set; the validation set is resident)
    image_size: int | None = None  # random-resized crops of this size (jpeg/dali loaders); default: see crop_size
    rrc_scale: float = 0.08  # smallest area fraction of a random-resized crop
    window: str = "auto"  # radiographs: auto | window | minmax (see fastvis.augment.window_params)
    defect_paste: float = 0.0  # radiographs: probability of Poisson-blending a defect into a normal image
    defect_class: str | None = None  # class name or index; default: the class named "defect"
    cache: str | None = None
    verify: bool = True
    progress: bool = True
    halt_after_epoch: int | None = None  # testing: exit as if killed right after that checkpoint
    started: float | None = field(default=None, repr=False)  # perf_counter at process start


DEFAULT_LR = {"fastnet": 0.2, "fastnet_s": 0.2}
LOADERS = ("auto", "resident", "streaming", "jpeg", "dali")


def crop_size(sizes: np.ndarray, asked: int | None) -> int:
    """The training crop of the jpeg/dali loaders: ``--image-size``, else 224, or the median
    shorter side (a multiple of 8) of images smaller than that."""
    if asked:
        return int(asked)
    short = int(np.median(sizes.min(1)))
    return 224 if short >= 224 else max(8, short // 8 * 8)


def pick_model(cfg: TrainConfig, device: torch.device) -> str:
    if cfg.model:
        return cfg.model
    limit = cfg.budget or 3600 * 3
    if device.type != "cuda":
        return "fastnet_s" if limit <= 3600 else "fastnet"
    if limit <= 600:
        return "fastnet"
    return "resnet18" if limit <= 3600 else "wrn28_10"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FastvisError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def count_flops(model: torch.nn.Module, shape: tuple[int, ...], device) -> int:
    """Forward FLOPs of one image (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    was = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape, device=device))
    model.train(was)
    return int(counter.get_total_flops())


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.clock = B.Clock(cfg.started)
        self.device = pick_device(cfg.device)
        self.world = ddp.setup(self.device.type)
        if self.world.distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", self.world.local_rank)
        if cfg.batch_size % self.world.world:
            raise FastvisError(f"--batch-size {cfg.batch_size} must be a multiple of the {self.world.world} processes")
        self.out = Path(cfg.out)
        self.amp = (self.device.type == "cuda") if cfg.amp is None else cfg.amp
        self.history: list[dict] = []
        self.wandb = None

    # -- setup ------------------------------------------------------------------------------
    def log(self, text: str) -> None:
        if self.world.main and self.cfg.progress:
            print(text, flush=True)

    def setup(self) -> None:
        cfg = self.cfg
        from .data import resolve

        if self.world.main:
            train_path, val_path, self.dataset_name = resolve(cfg.data, cfg.val, cfg.cache, cfg.progress, cfg.verify)
        if self.world.distributed:
            torch.distributed.barrier()
            if not self.world.main:
                train_path, val_path, self.dataset_name = resolve(cfg.data, cfg.val, cfg.cache, False, cfg.verify)
        self._load_train(train_path)
        square = self.image_shape[1] == self.image_shape[2]
        self.val = ResidentDataset.load(val_path, self.device, window=cfg.window,
                                        size=self.image_shape[1] if square and self.image_shape[0] == 3 else None)
        self.radiographs = self.train is not None and self.train.params is not None
        if self.radiographs and (cfg.randaugment or cfg.autoaugment or cfg.trivialaugment):
            raise FastvisError("RandAugment/AutoAugment/TrivialAugment work on RGB uint8 images, not radiographs")
        self.bank = self._defect_bank() if cfg.defect_paste > 0 else None
        self.pasted = 0
        torch.manual_seed(cfg.seed)
        self.model_name = pick_model(cfg, self.device)
        c = self.image_shape[0]
        model = create_model(self.model_name, self.num_classes, in_channels=c, drop_path_rate=cfg.drop_path)
        if isinstance(model, FastNet):
            model.to(self.device).init_whitening(self.norm(self._first_images(5000)).float())
        self.params = sum(p.numel() for p in model.parameters())
        model = model.to(self.device)
        self.flops = count_flops(model, self.image_shape, self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.raw_model = model
        decay, no_decay = [], []
        for n, p in model.named_parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        self.peak_lr = cfg.lr if cfg.lr is not None else DEFAULT_LR.get(self.model_name, 0.1) * cfg.batch_size / 512
        self.opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                                    {"params": no_decay, "weight_decay": 0.0}],
                                   lr=self.peak_lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
        self.ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
        if self.world.distributed:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.world.local_rank] if self.device.type == "cuda" else None)
        self.model = torch.compile(model) if cfg.compile else model
        self.teacher = self._load_teacher(cfg.teacher) if cfg.teacher else None
        self.steps_per_epoch = max(1, self.n_train // cfg.batch_size)
        self.step = 0
        self.epoch = 0
        self.train_seconds = 0.0
        self.best_top1 = 0.0
        self.total_steps: int | None = None
        self.eval_every = 1
        if cfg.epochs is not None:
            self.total_steps = max(1, int(round(cfg.epochs * self.steps_per_epoch)))
        if cfg.resume:
            self._resume(cfg.resume)
        if self.world.main:
            self.out.mkdir(parents=True, exist_ok=True)
            if cfg.wandb:
                self._init_wandb()

    def _load_train(self, path) -> None:
        """The training set: resident on the device when it fits (or is asked for), else streamed;
        photos (JPEG or differently sized images, or ``--image-size`` other than the stored size)
        through the jpeg loader, or the DALI pipeline with ``--loader dali``."""
        cfg = self.cfg
        mode = cfg.loader
        if mode not in LOADERS:
            raise FastvisError(f"--loader must be one of {', '.join(LOADERS)}, not {mode!r}")
        reader = BetonReader(path)
        radiographs = "meta" in reader.names
        self.stream, self.stream_kind, self.loader_norm = None, None, False
        if radiographs and mode not in ("auto", "resident"):
            raise FastvisError(f"{path}: radiographs are trained with the resident loader (--loader resident)")
        if not radiographs:
            sizes = reader.image_sizes("image")
            uniform = bool((sizes == sizes[0]).all())
            stored = tuple(int(v) for v in sizes[0])
            if mode == "auto" and (not uniform or (cfg.image_size and stored != (cfg.image_size,) * 2)):
                mode = "jpeg"
            if mode in ("resident", "streaming") and not uniform:
                raise FastvisError(f"{path}: images differ in size; use --loader jpeg or dali (random-resized crops "
                                   "of --image-size) or convert with --size")
        if mode in ("auto", "resident"):
            try:
                self.train = ResidentDataset.load(path, self.device, window=cfg.window)
            except MemoryError:
                if mode == "resident" or radiographs:
                    raise
                mode = "streaming"
            else:
                self.n_train = len(self.train)
                self.image_shape = tuple(self.train.images.shape[1:])
                self.num_classes = max(self.train.num_classes, int(self.train.labels.max()) + 1)
                self.mean, self.std = self.train.mean_std()
                return
        if cfg.flip == "alternating":
            raise FastvisError("--flip alternating needs the resident loader (it flips by sample index)")
        self.train, self.stream_kind = None, mode
        b, rank, world = cfg.batch_size // self.world.world, self.world.rank, self.world.world
        if mode == "streaming":
            # page-local (quasi-random) order only for files written in random order (CIFAR, or
            # converted with --shuffle): class by class, its windows would hold few classes
            shuffled = reader.info.get("shuffled") is not None
            self.stream = StreamingLoader(path, b, order="quasi_random" if shuffled else "random", seed=cfg.seed,
                                          rank=rank, world=world, device=self.device)
            size = stored
            sample = self.stream.sample(5000)
            mean, std = channel_mean_std(sample)
        else:
            size = (crop_size(sizes, cfg.image_size),) * 2
            pad = uniform and stored == size  # DALI keeps such images at their size: the padded crop
            sample = center_sample(reader, "image", 5000, size[0], 1.0 if pad and mode == "dali" else 0.875,
                                   self.device)
            mean, std = channel_mean_std(sample)
            flip_p = 0.0 if cfg.flip == "none" else 0.5
            scale = (cfg.rrc_scale, 1.0)
            policies = cfg.randaugment or cfg.autoaugment or cfg.trivialaugment
            self.loader_norm = not policies  # normalised by the loader (uint8 policies come first otherwise)
            if mode == "jpeg":
                self.stream = JpegLoader(path, b, size[0], scale=scale, flip_p=flip_p, seed=cfg.seed, rank=rank,
                                         world=world, device=self.device, mean=mean if self.loader_norm else None,
                                         std=std if self.loader_norm else None)
            else:
                from ..loader.dali import DaliLoader

                if policies:
                    raise FastvisError("--loader dali normalises in the pipeline: RandAugment/AutoAugment/"
                                       "TrivialAugment (uint8 policies) need --loader jpeg")
                try:
                    self.stream = DaliLoader(path, b, size[0], crop="pad" if pad else "rrc", padding=cfg.padding,
                                             scale=scale, flip_p=flip_p, mean=mean, std=std, seed=cfg.seed,
                                             rank=rank, world=world, device=self.device)
                except ImportError as exc:
                    raise FastvisError(str(exc)) from None
        if len(self.stream) == 0:
            raise FastvisError(f"{path}: {len(reader)} samples make no whole batch of {b} per process; "
                               "lower --batch-size")
        labels = reader.column("label")
        self.n_train = len(reader)
        self.image_shape = (3, *size)
        self.num_classes = max(int(reader.info.get("num_classes") or 0), int(labels.max()) + 1)
        self.mean, self.std = mean, std
        self._sample = sample  # statistics and FastNet's whitening

    def _defect_bank(self):
        """Defect patches cut from the training samples of the defect class that have masks."""
        cfg, tr = self.cfg, self.train
        if tr is None or tr.masks is None:
            raise FastvisError("--defect-paste needs radiographs converted with masks (fastvis-convert DIR OUT "
                               "--size N --labels CSV with a mask column)")
        classes = tr.classes or [str(k) for k in range(self.num_classes)]
        name = cfg.defect_class if cfg.defect_class is not None else "defect"
        if name in classes:
            self.defect_class = classes.index(name)
        elif str(name).isdigit() and int(name) < self.num_classes:
            self.defect_class = int(name)
        else:
            raise FastvisError(f"--defect-class {name!r} is not one of the classes {classes}")
        self.normal_classes = [classes.index("normal")] if "normal" in classes and self.defect_class != \
            classes.index("normal") else [k for k in range(self.num_classes) if k != self.defect_class]
        pick = ((tr.labels == self.defect_class) & (tr.masks.flatten(1).amax(1) > 0)).nonzero().flatten().cpu()
        if len(pick) == 0:
            raise FastvisError(f"--defect-paste: no training sample of class {classes[self.defect_class]!r} has a mask")
        images, _ = tr.batch(pick)
        bank = A.DefectBank.from_samples(images, tr.masks[pick.to(tr.masks.device)])
        self.log(f"defect bank: {len(bank)} patches from {len(pick)} masked {classes[self.defect_class]!r} samples")
        return bank

    def _first_images(self, n: int) -> torch.Tensor:
        if self.stream is None:
            if self.train.params is not None:
                return self.train.batch(torch.arange(min(n, len(self.train))))[0]
            return self.train.images[:n]
        return self._sample[:n]

    def _epoch_batches(self, order, first: int):
        """What each step of this epoch trains on: index slices (resident) or loaded batches."""
        b = self.cfg.batch_size
        if self.stream is None:
            for k in range(first, self.steps_per_epoch):
                yield order[k * b : (k + 1) * b]
            return
        self.stream.set_epoch(self.epoch)
        if self.stream_kind in ("jpeg", "dali"):  # these start at batch `first` without reading the others
            for k, batch in zip(range(first, self.steps_per_epoch), self.stream.batches(first)):
                yield batch
            return
        for k, batch in enumerate(self.stream):
            if k >= self.steps_per_epoch:
                return
            if k >= first:
                yield batch

    def norm(self, images: torch.Tensor) -> torch.Tensor:
        return A.normalize(images, self.mean, self.std, channels_last=self.cfg.channels_last)

    def _load_teacher(self, path: str):
        state = ckpt.load(path, map_location="cpu")
        t = create_model(state["model_name"], state["num_classes"], in_channels=state.get("in_channels", 3))
        t.load_state_dict(state["ema"]["model"] if state.get("ema") else state["model"])
        t = t.to(self.device).eval()
        if self.cfg.channels_last:
            t = t.to(memory_format=torch.channels_last)
        for p in t.parameters():
            p.requires_grad_(False)
        if state["num_classes"] != self.num_classes:
            raise FastvisError(f"teacher {path} has {state['num_classes']} classes, the data {self.num_classes}")
        return t

    def _init_wandb(self) -> None:
        try:
            import wandb
        except ImportError:
            raise FastvisError("--wandb needs wandb installed (pip install 'fastvis[wandb]')") from None
        self.wandb = wandb.init(project=self.cfg.wandb_project, mode=self.cfg.wandb_mode, dir=str(self.out),
                                config={**self.hyper(), "params": self.params, "flops": self.flops})

    # -- one step -----------------------------------------------------------------------------
    def _aug_seed(self, step: int, k: int) -> int:
        return (self.cfg.seed * 1_000_003 + step * 97 + k) % (2**62)

    def make_batch(self, source, step: int, epoch: int):
        """Resident data: gather the global batch, augment it on the device, keep this rank's
        slice. Streamed data: each rank augments the batch it read (seeded by step and rank)."""
        if self.stream is not None:
            return self._augment(*source, None, step * 1009 + self.world.rank, epoch, sliced=True)
        x, y = self.train.batch(source)
        return self._augment(x, y, source, step, epoch, sliced=False)

    def _augment(self, x, y, indices, step: int, epoch: int, sliced: bool):
        cfg = self.cfg
        if self.bank is not None:
            x, y, params = A.defect_paste(x, y, self.bank, self.defect_class, self.normal_classes, cfg.defect_paste,
                                          generator=self._aug_seed(step, 8))
            self.pasted += len(params.index)
        cropped = self.stream_kind in ("jpeg", "dali")  # the loader cropped and mirrored
        if (cfg.crop or cfg.flip == "random") and not cropped:
            x = A.random_crop_flip(x, padding=cfg.padding if cfg.crop else 0, padding_mode="reflect",
                                   flip_p=0.5 if cfg.flip == "random" else 0.0, generator=self._aug_seed(step, 1))
        if cfg.flip == "alternating":
            x = A.alternating_flip(x, indices, epoch, cfg.seed)
        if cfg.randaugment:
            n, m = (int(v) for v in cfg.randaugment.split(","))
            x = A.randaugment(x, n, m, generator=self._aug_seed(step, 2))
        if cfg.autoaugment:
            x = A.autoaugment(x, generator=self._aug_seed(step, 3))
        if cfg.trivialaugment:
            x = A.trivialaugment(x, generator=self._aug_seed(step, 4))
        if not self.loader_norm:  # the jpeg/dali loaders normalise as they crop
            x = self.norm(x)
        if cfg.cutout:
            x = A.cutout(x, cfg.cutout, generator=self._aug_seed(step, 5))
        if cfg.erasing:
            x = A.random_erasing(x, p=cfg.erasing, generator=self._aug_seed(step, 6))
        targets = None
        if cfg.cutmix and cfg.mixup:
            x, targets = A.mix(x, y, self.num_classes, cfg.mixup, cfg.cutmix, 0.5, cfg.mix_prob,
                               generator=self._aug_seed(step, 7))
        elif cfg.cutmix:
            x, targets = A.cutmix(x, y, self.num_classes, cfg.cutmix, cfg.mix_prob, generator=self._aug_seed(step, 7))
        elif cfg.mixup:
            x, targets = A.mixup(x, y, self.num_classes, cfg.mixup, cfg.mix_prob, generator=self._aug_seed(step, 7))
        if self.world.distributed and not sliced:
            b = x.shape[0] // self.world.world
            sl = slice(self.world.rank * b, (self.world.rank + 1) * b)
            x, y = x[sl], y[sl]
            targets = targets[sl] if targets is not None else None
        return x, y, targets

    def loss_fn(self, logits, y, targets, x):
        eps = self.cfg.label_smoothing
        if self.teacher is None and targets is None:
            return F.cross_entropy(logits.float(), y, label_smoothing=eps)
        if targets is None:
            targets = F.one_hot(y, self.num_classes).float()
        if eps:
            targets = targets * (1 - eps) + eps / self.num_classes
        if self.teacher is None:
            return soft_cross_entropy(logits, targets)
        with torch.no_grad(), self.autocast():
            t_logits = self.teacher(x)
        return kd_loss(logits, t_logits, targets, self.cfg.kd_alpha, self.cfg.kd_temperature)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def train_step(self, source, progress: float) -> torch.Tensor:
        lr = B.lr_at(progress, self.peak_lr, self.cfg.warmup)
        for group in self.opt.param_groups:
            group["lr"] = lr
        x, y, targets = self.make_batch(source, self.step, self.epoch)
        self.model.train()
        with self.autocast():
            logits = self.model(x)
        loss = self.loss_fn(logits, y, targets, x)
        if self.step == 0:  # recorded for checks: the same for any number of processes
            self.first_loss = ddp.all_sum(self.world, [float(loss.detach())], self.device)[0] / self.world.world
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.ema is not None:
            self.ema.update(self.raw_model)
        self.step += 1
        self.lr = lr
        return loss.detach()

    # -- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, tta: bool = False, limit: int | None = None) -> dict:
        model = self.ema.model if self.ema is not None else self.model
        model.eval()
        n = len(self.val) if limit is None else min(limit, len(self.val))
        idx = torch.arange(self.world.rank, n, self.world.world)
        c1 = c5 = loss_sum = 0.0
        for s in range(0, len(idx), self.cfg.eval_batch_size):
            x, y = self.val.batch(idx[s : s + self.cfg.eval_batch_size])
            x = self.norm(x)
            with self.autocast():
                logits = model(x).float()
                if tta:
                    logits = (logits + model(x.flip(3)).float()) / 2
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            top5 = logits.topk(min(5, logits.shape[1]), 1).indices
            c1 += float((top5[:, 0] == y).sum())
            c5 += float((top5 == y[:, None]).any(1).sum())
        c1, c5, loss_sum, count = ddp.all_sum(self.world, [c1, c5, loss_sum, float(len(idx))], self.device)
        return {"top1": c1 / count, "top5": c5 / count, "val_loss": loss_sum / count}

    # -- budget -----------------------------------------------------------------------------------
    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _probe(self, order: torch.Tensor) -> tuple[float, float]:
        """Run the first steps of the run, timing those after warm-up; time a partial evaluation."""
        probe = min(self.steps_per_epoch, 12)
        times = []
        batches = self._epoch_batches(order, 0)
        for k in range(probe):
            self._sync()
            t = time.perf_counter()
            self.train_step(next(batches), progress=self.step / (self.steps_per_epoch * 100))
            self._sync()
            times.append(time.perf_counter() - t)
        batches.close()
        warm = times[min(4, len(times) - 1):]
        step_time = float(np.median(warm))
        limit = min(len(self.val), 2 * self.cfg.eval_batch_size)
        self.evaluate(limit=limit)  # warm-up of the eval path
        self._sync()
        t = time.perf_counter()
        self.evaluate(limit=limit)
        self._sync()
        eval_time = (time.perf_counter() - t) * len(self.val) / limit
        return step_time, eval_time

    def _plan(self, step_time: float, eval_time: float, ckpt_time: float) -> None:
        reserve = eval_time * (2 if self.cfg.tta else 1) + 3.0 + ckpt_time
        plan = B.fit_plan(self.cfg.budget, self.clock(), step_time, self.steps_per_epoch, eval_time, ckpt_time,
                          reserve, done_steps=self.step)
        total = ddp.broadcast_int(self.world, plan.total_steps, self.device)
        if self.total_steps is None or total < self.total_steps:
            self.total_steps = total
        self.eval_every = plan.eval_every
        self.step_time, self.eval_time, self.reserve = step_time, eval_time, reserve

    # -- run ----------------------------------------------------------------------------------------
    def fit(self) -> dict:
        cfg = self.cfg
        self.setup()
        b = cfg.batch_size
        budgeted = cfg.budget is not None and cfg.epochs is None
        self.reserve = 3.0
        self.step_time = self.eval_time = 0.0
        start_train = time.perf_counter()
        trained_before = self.train_seconds
        start_step = self.step
        stop = False
        while not stop:
            order = epoch_order(self.n_train, cfg.seed, self.epoch)
            first = self.step - self.epoch * self.steps_per_epoch  # resuming inside the plan
            if budgeted and self.total_steps is None:
                step_time, eval_time = self._probe(order)
                first = self.step
                self._plan(step_time, eval_time, ckpt_time=0.5 + 12 * self.params / 400e6)
                self.log(f"budget {cfg.budget:.0f}s: {self.step_time * 1e3:.1f} ms/step, eval {self.eval_time:.1f}s "
                         f"-> {self.total_steps} steps ({self.total_steps / self.steps_per_epoch:.2f} epochs), "
                         f"evaluating every {self.eval_every} epoch(s)")
            loss_acc = torch.zeros((), device=self.device)
            n_acc = 0
            bar = self._bar()
            t_epoch = time.perf_counter()
            steps_done_epoch = 0
            for k, source in zip(range(first, self.steps_per_epoch), self._epoch_batches(order, first)):
                if self.step >= self.total_steps:
                    stop = True
                    break
                if budgeted and k % 10 == 0 and self._out_of_time():
                    stop = True  # keep what is trained, go to the final evaluation
                    break
                loss = self.train_step(source, self.step / self.total_steps)
                loss_acc += loss
                n_acc += 1
                steps_done_epoch += 1
                if n_acc == 20 or k == self.steps_per_epoch - 1:
                    self._check_loss(loss_acc, n_acc)
                    if bar is not None:
                        self._bar_update(bar, float(loss_acc) / n_acc, n_acc, b)
                    loss_acc.zero_()
                    n_acc = 0
            if n_acc:
                self._check_loss(loss_acc, n_acc)
            if bar is not None:
                bar.close()
            self._sync()
            epoch_seconds = time.perf_counter() - t_epoch
            if steps_done_epoch and budgeted:
                self.step_time = 0.8 * self.step_time + 0.2 * epoch_seconds / steps_done_epoch if self.step_time \
                    else epoch_seconds / steps_done_epoch
            complete = self.step - self.epoch * self.steps_per_epoch >= self.steps_per_epoch
            if complete:
                self.epoch += 1
            last = stop or self.step >= self.total_steps
            if last:
                break
            self.train_seconds = trained_before + time.perf_counter() - start_train
            if self.epoch % self.eval_every == 0:
                t = time.perf_counter()
                self._record(self.evaluate())
                if budgeted:
                    self.eval_time = time.perf_counter() - t
            t = time.perf_counter()
            self.save_checkpoint()
            ckpt_time = time.perf_counter() - t
            if cfg.halt_after_epoch is not None and self.epoch >= cfg.halt_after_epoch:
                os._exit(137)  # as if killed: no final evaluation, no report
            if budgeted:
                self._plan(self.step_time, self.eval_time, ckpt_time)
        self._sync()
        this_run = time.perf_counter() - start_train
        self.train_seconds = trained_before + this_run
        final = self.evaluate(tta=cfg.tta)
        self._record(final, final=True)
        self.save_checkpoint()
        summary = self.finish(final, (self.step - start_step) * b / max(this_run, 1e-9))
        ddp.teardown(self.world)
        return summary

    def _out_of_time(self) -> bool:
        late = self.clock() + self.reserve > self.cfg.budget * 0.995
        return bool(ddp.broadcast_int(self.world, int(late), self.device))  # every rank stops together

    def _check_loss(self, loss_acc: torch.Tensor, n: int) -> None:
        value = ddp.all_sum(self.world, [float(loss_acc) / n], self.device)[0] / self.world.world
        if not math.isfinite(value):
            last = self.out / "checkpoint.pt"
            kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"loss became {value} at epoch {self.epoch}, step {self.step}; stopped, {kept} "
                "(lower --lr, or turn --amp off)")
        self.last_loss = value

    def _bar(self):
        if not (self.world.main and self.cfg.progress):
            return None
        from tqdm.auto import tqdm

        left = self.total_steps - self.step
        return tqdm(total=min(self.steps_per_epoch, left), desc=f"epoch {self.epoch}", unit="step", leave=False)

    def _bar_update(self, bar, loss: float, n: int, b: int) -> None:
        bar.update(n)
        rate = bar.format_dict.get("rate") or 0
        left_steps = self.total_steps - self.step
        eta = left_steps / rate if rate else float("nan")
        bar.set_postfix(img_s=f"{rate * b:,.0f}", loss=f"{loss:.3f}", lr=f"{self.lr:.3g}", left=f"{eta:.0f}s")

    def _record(self, metrics: dict, final: bool = False) -> None:
        row = {"epoch": self.step / self.steps_per_epoch, "step": self.step, "time": self.clock(),
               "train_loss": getattr(self, "last_loss", None), "lr": getattr(self, "lr", None),
               "images_per_second": self.step * self.cfg.batch_size / self.train_seconds if self.train_seconds else None,
               **metrics}
        if final:
            row["final"] = True
        self.history.append(row)
        self.best_top1 = max(self.best_top1, metrics["top1"])
        if self.world.main:
            with open(self.out / "metrics.jsonl", "a") as fp:
                fp.write(json.dumps(row) + "\n")
            if self.wandb is not None:
                self.wandb.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=self.step)
            self.log(f"epoch {row['epoch']:.2f}: top-1 {100 * metrics['top1']:.2f}%  top-5 {100 * metrics['top5']:.2f}%"
                     f"  val loss {metrics['val_loss']:.3f}  ({self.clock():.0f}s)")

    # -- persistence --------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if not self.world.main:
            return
        state = {
            "model": self.raw_model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "step": self.step, "epoch": self.epoch, "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch, "eval_every": self.eval_every,
            "history": self.history, "train_seconds": self.train_seconds, "best_top1": self.best_top1,
            "config": asdict(self.cfg), "model_name": self.model_name, "num_classes": self.num_classes,
            "in_channels": int(self.image_shape[0]), "mean": self.mean, "std": self.std,
            "rng": torch.get_rng_state(),
        }
        ckpt.save_atomic(state, self.out / "checkpoint.pt")

    def _resume(self, path: str) -> None:
        state = ckpt.load(path, map_location=self.device)
        if state["model_name"] != self.model_name:
            raise FastvisError(f"{path}: checkpoint is a {state['model_name']}, this run a {self.model_name}")
        self.raw_model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.total_steps = state["total_steps"]
        self.eval_every = state.get("eval_every", 1)
        self.history = state["history"]
        self.train_seconds = state["train_seconds"]
        self.best_top1 = state["best_top1"]
        self.clock.offset = self.train_seconds
        torch.set_rng_state(state["rng"].cpu())
        self.log(f"resumed from {path} at epoch {self.epoch}, step {self.step} of {self.total_steps}")

    def hyper(self) -> dict:
        c = self.cfg
        return {
            "model": self.model_name, "batch_size": c.batch_size, "peak_lr": self.peak_lr,
            "weight_decay": c.weight_decay, "momentum": c.momentum, "nesterov": c.nesterov, "warmup": c.warmup,
            "label_smoothing": c.label_smoothing, "crop": f"pad {c.padding} reflect" if c.crop else "off",
            "flip": c.flip, "randaugment": c.randaugment, "autoaugment": c.autoaugment,
            "trivialaugment": c.trivialaugment, "erasing": c.erasing, "cutout": c.cutout, "cutmix": c.cutmix,
            "mixup": c.mixup, "ema": c.ema, "tta": c.tta, "drop_path": c.drop_path, "amp": "bf16" if self.amp else "off",
            "channels_last": c.channels_last, "compile": c.compile, "teacher": c.teacher,
            "kd_alpha": c.kd_alpha if c.teacher else None, "kd_temperature": c.kd_temperature if c.teacher else None,
            "processes": self.world.world, "seed": c.seed,
            "defect_paste": c.defect_paste or None, "window": c.window if getattr(self, "radiographs", False) else None,
        }

    def finish(self, final: dict, images_per_second: float) -> dict:
        summary = {
            "model": self.model_name, "dataset": self.dataset_name,
            "image_size": list(self.image_shape), "params": self.params, "flops": self.flops,
            "epochs": self.step / self.steps_per_epoch, "steps": self.step, "batch_size": self.cfg.batch_size,
            "train_seconds": self.train_seconds, "total_seconds": self.clock(),
            "top1": final["top1"], "top5": final["top5"], "best_top1": self.best_top1,
            "val_loss": final["val_loss"], "tta": self.cfg.tta, "ema": bool(self.ema),
            "device": (torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu")
            + (f" x{self.world.world}" if self.world.distributed else ""),
            "budget_seconds": self.cfg.budget,
            "images_per_second": images_per_second,
            "num_classes": self.num_classes, "train_samples": self.n_train, "val_samples": len(self.val),
            "loader": self.stream_kind or "resident",
            "first_step_loss": getattr(self, "first_loss", None),
            "defect_pastes": self.pasted if self.bank is not None else None,
            "hyper": self.hyper(),
        }
        if self.world.main:
            write_curve(self.history, self.out / "curve.png")
            write_report(summary, self.hyper(), self.history, self.out / "report.pdf")
            summary["total_seconds"] = self.clock()
            (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
            if self.wandb is not None:
                self.wandb.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
                self.wandb.finish()
            self.log(f"done: top-1 {100 * final['top1']:.2f}% (best {100 * self.best_top1:.2f}%), top-5 "
                     f"{100 * final['top5']:.2f}%, {self.train_seconds:.0f}s training, {summary['total_seconds']:.0f}s "
                     f"in all -> {self.out}")
        return summary


def train(cfg: TrainConfig) -> dict:
    return Trainer(cfg).fit()
