"""The trainer's options, declared once.

Every option is a field of one of the group dataclasses below, with its default, its help
text and (where it differs from ``--field-name``) its flag beside it. The command line
(:func:`build_parser`), a ``--config`` file (TOML, JSON or YAML) and the run folder's
``config.json`` are all generated from, or read into, these fields. Layering: the defaults
here, then the config file, then the options given on the command line.

``cfg.optim.lr`` reads one option; ``TrainConfig.from_options(lr=0.1, cutmix=1.0)`` and
``cfg.replace(lr=0.1)`` address options by their (unique) field names, as the ablation
variants and the tests do.

Longer than 400 lines because it is the one place every option of the trainer is declared,
with its help, bounds and flag, next to the code that reads them from the command line, from
files and from a run folder being resumed.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import stat
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import FastvisError, InputError
from ..augment.resize import parse_ramp
from ..incremental.names import DISTIL_METHODS, MEMORY_METHODS, METHODS
from ..loader import LOADERS
from . import recipe
from .budget import parse_duration
from .metrics import METRICS


def option(default: Any, help: str, *, flag: str | None = None, short: str | None = None, metavar: str | None = None,
           choices: typing.Sequence[str] | None = None, const: Any = None, parse=None, hidden: bool = False,
           hyper: bool = True, bounds: str | None = None):
    """A config field: ``flag`` overrides ``--field-name``; ``const`` makes the value optional
    on the command line (``--ema`` alone means ``--ema 0.999``); ``parse`` turns the text into
    the value (durations); ``hyper=False`` leaves it out of the report's hyper-parameters;
    ``bounds`` is the interval a number must lie in, e.g. ``"[0, 1)"`` or ``"(0, inf)"``."""
    meta = dict(help=help, flag=flag, short=short, metavar=metavar, choices=choices, const=const, parse=parse,
                hidden=hidden, hyper=hyper, bounds=bounds)
    return field(default=default, metadata=meta)


LOADER_CHOICES = ("auto", *LOADERS)


@dataclass
class DataOptions:
    """what to train"""

    data: str = option("cifar100", "cifar100 | cifar10 | a .beton | an image folder or archive", hyper=False)
    val: str | None = option(None, "validation set (.beton or folder); default: the dataset's test split",
                             hyper=False)
    holdout: float = option(0.0, "hold out N training samples (or a fraction, e.g. 0.1), class-balanced and "
                            "seeded, never trained on: evaluations during training and the choice of the best "
                            "model use them; with --val the final evaluation is on --val too", metavar="N",
                            bounds="[0, inf)")
    loader: str = option("auto", "training data held on the device (resident), streamed from the file "
                         "(streaming), decoded and random-resized-cropped per batch (jpeg: nvjpeg on CUDA, Pillow on "
                         "CPU), or a DALI pipeline (dali); auto: resident when it fits, else streaming; jpeg when "
                         "images differ in size or --image-size differs from theirs", choices=LOADER_CHOICES,
                         hyper=False)
    image_size: int | None = option(None, "jpeg/dali loaders: train on S x S random-resized crops, evaluate on centre "
                                    "crops (default: 224, or the median shorter side of smaller images)", metavar="S",
                                    bounds="[8, inf)")
    rrc_scale: float = option(0.08, "smallest area fraction of a random-resized crop", metavar="MIN", bounds="(0, 1]")
    cache_dir: str | None = option(None, "where datasets are downloaded and converted", hyper=False)
    verify: bool = option(True, "check downloaded archives against their md5 (--no-verify for archives built "
                          "elsewhere)", hyper=False)
    checksums: bool = option(True, "check every sample read for training or evaluation against the CRC-32 written "
                             "with the file (once per sample; a damaged one stops the run, named); "
                             "--no-checksums for files you trust", hyper=False)


@dataclass
class NetworkOptions:
    """the network, and a teacher to distil from"""

    model: str | None = option(None, "model name (see --list-models) or timm:NAME; default: by device and budget")
    teacher: str | None = option(None, "distil from this checkpoint (any registered model)", metavar="CKPT")
    kd_alpha: float = option(0.5, "weight of the teacher's term", bounds="[0, 1]")
    kd_temperature: float = option(4.0, "softmax temperature of distillation", bounds="(0, inf)")


@dataclass
class ScheduleOptions:
    """how long"""

    budget: float | None = option(None, "wall-clock budget for the whole run: 90s, 10m, 3h (default 3h unless "
                                  "--epochs is given)", parse=parse_duration, metavar="DURATION")
    epochs: float | None = option(None, "train this many epochs instead of fitting a budget", bounds="(0, inf)")


@dataclass
class OptimOptions:
    """optimisation"""

    batch_size: int | None = option(None, "global batch size (default: the recipe's for the device, halved until "
                                    "an epoch has enough steps for the data's size)", bounds="[1, inf)")
    lr: float | None = option(None, "peak learning rate (default: by model, scaled with the batch)",
                              bounds="(0, 100]")  # far above any rate that trains: an overflow guard
    weight_decay: float = option(recipe.get("weight_decay"), "L2 weight decay (not on biases and norms)",
                                 bounds="[0, inf)")
    momentum: float = option(recipe.get("momentum"), "SGD momentum", bounds="[0, 1)")
    nesterov: bool = option(True, "Nesterov momentum")
    warmup: float = option(recipe.get("warmup"), "fraction of training spent warming up", bounds="[0, 1)")
    label_smoothing: float = option(recipe.get("label_smoothing"), "label smoothing of the targets", bounds="[0, 1)")
    drop_path: float = option(0.0, "stochastic depth rate (ResNets, WRN, timm)", bounds="[0, 1)")
    ema_decay: float = option(0.0, "keep an exponential moving average of the weights (--ema alone: decay 0.999; "
                              "0: off)", flag="--ema", const=0.999, metavar="DECAY", bounds="[0, 1)")
    optimizer: str | None = option(None, "sgd (Nesterov SGD for every parameter) or muon (torch.optim.Muon for the "
                                   "convolution filters, Nesterov SGD for the rest); default: the recipe's for the "
                                   "model", choices=("sgd", "muon"))
    muon_lr: float | None = option(None, "peak learning rate of the filters under --optimizer muon (default: the "
                                   "recipe's)", bounds="(0, inf)")
    norm_lr_scale: float | None = option(None, "learning rate of the normalisation layers' shifts and scales (and "
                                         "FastNet's whitening bias) as a multiple of --lr (default: the recipe's)",
                                         metavar="X", bounds="(0, inf)")
    head_lr_scale: float | None = option(None, "learning rate of the last linear layer's weight as a multiple of --lr "
                                         "(default: the recipe's)", metavar="X", bounds="(0, inf)")
    whiten_bias_epochs: float = option(recipe.get("whiten_bias_epochs"), "FastNet: train the whitening layer's bias "
                                       "for this many epochs (its lr falling to zero over them), then leave it",
                                       metavar="E", bounds="[0, inf)")
    lookahead: bool = option(False, "every 5 steps pull the weights towards their moving average (decay rising "
                             "with progress to 0.77) and train on from there; the run ends on the average")
    hard_fraction: float = option(1.0, "train each step on the hardest F of the batch, as a small proxy network "
                                  "ranks them by their loss (the learning rate is the trained batch's; 1: every "
                                  "sample)", metavar="F", bounds="(0, 1]")


@dataclass
class AugmentOptions:
    """augmentation (on the device)"""

    crop: bool = option(True, "random crop with reflect padding")
    padding: int = option(recipe.get("padding"), "padding of the random crop", bounds="[0, inf)")
    flip: str = option("random", "horizontal flips: random, alternating (each image both ways over two epochs), none",
                       choices=("random", "alternating", "none"))
    randaugment: str | None = option(None, "RandAugment with N ops at magnitude M, e.g. 2,9", metavar="N,M")
    autoaugment: bool = option(False, "AutoAugment, CIFAR-10 policy")
    trivialaugment: bool = option(False, "TrivialAugment Wide")
    erasing: float = option(0.0, "Random Erasing probability", metavar="P", bounds="[0, 1]")
    cutout: int = option(0, "Cutout square side (0: off)", metavar="SIZE", bounds="[0, inf)")
    cutmix: float = option(0.0, "CutMix with this alpha (0: off)", metavar="ALPHA", bounds="[0, inf)")
    mixup: float = option(0.0, "mixup with this alpha (0: off)", metavar="ALPHA", bounds="[0, inf)")
    mix_prob: float = option(1.0, "probability that a sample is mixed", bounds="[0, 1]")
    progressive_resize: float = option(1.0, "progressive resizing: train at F of the images' side first, growing to "
                                       "the whole side along --progressive-ramp (1: off)", metavar="F",
                                       bounds="[0.25, 1]")
    progressive_ramp: str = option(recipe.get("progressive_ramp"), "the shares of the run (of each task in "
                                   "--incremental runs) at which the side starts to grow and reaches the whole one",
                                   metavar="START,END")


@dataclass
class RadiographOptions:
    """radiographs (.beton files from DICOM folders, converted with --size N)"""

    window: str = option("auto", "values to [0, 1]: the file's window (auto: where it has one) or each image's range",
                         choices=("auto", "window", "minmax"))
    defect_paste: float = option(0.0, "synthesise defects: Poisson-blend real defect patches into normal images "
                                 "(relabelled as defects) until a share P of each batch is defect-labelled; a batch "
                                 "that already holds that share gets none", metavar="P", bounds="[0, 1]")
    defect_class: str | None = option(None, "the defect class (name or index; default: 'defect')")


@dataclass
class SpeedOptions:
    """speed"""

    device: str = option("auto", "auto | cpu | cuda | cuda:N", hyper=False)
    amp: bool | None = option(None, "bf16 autocast (default: on for CUDA; on a CPU where it computes bf16 natively "
                              "and a short probe shows it faster)")
    channels_last: bool = option(True, "channels-last memory format")
    compile: bool = option(False, "torch.compile the model")
    nproc_per_node: int = option(1, "start this many processes with torchrun (DDP)", hyper=False, bounds="[1, inf)")
    ddp_timeout: float = option(600.0, "seconds a process waits for the others in a collective before the run "
                                "stops with an error (a rank that died or hangs)", hyper=False, bounds="(0, inf)")


@dataclass
class EvalOptions:
    """evaluation"""

    tta: bool = option(True, "flip test-time augmentation in the final evaluation (--no-tta: off)")
    tta_shift: int = option(recipe.get("tta_shift"), "test-time augmentation also averages the views shifted by "
                            "this many pixels (up-left and down-right, each with its flip; 0: flips only)",
                            metavar="PIXELS", bounds="[0, 8]")
    metric: str = option("top1", "what the best result tracks on the watched split: top1, balanced_accuracy (the "
                         "mean recall over classes) or auc (two classes: ROC AUC of the defect class)",
                         choices=METRICS)
    eval_batch_size: int = option(1024, "batch size of evaluations", hyper=False, bounds="[1, inf)")


@dataclass
class IncrementalOptions:
    """class-incremental learning (see fastvis.incremental)"""

    incremental: str | None = option(None, "learn the classes in tasks: B0-T (T equal tasks) or B<k>-<n> (k classes, "
                                     "then tasks of n)", metavar="PROTOCOL", hyper=False)
    cl_method: str = option(recipe.get("incremental_method"), "how old classes are kept: finetune (lower "
                            "bound), joint (all data so far: upper bound), replay (exemplar memory), icarl "
                            "(memory, distillation, nearest-mean classifier), lwf (distillation, no memory), wa "
                            "(memory, distillation, weight aligning), bic (memory, distillation, bias correction "
                            "fitted on held-out samples)",
                            choices=METHODS, hyper=False)
    memory: int = option(2000, "exemplars kept in all (herding, class-balanced)", bounds="[0, inf)", hyper=False)
    class_order: str = option("seed:1993", "seed:S (numpy's permutation, as PyCIL/FACIL), sorted, coarse "
                              "(by superclass) or a list of class ids", hyper=False)
    epochs_per_task: float | None = option(None, "epochs of each task (instead of sharing --budget)", metavar="E",
                                           bounds="(0, inf)", hyper=False)
    cl_temperature: float = option(2.0, "softmax temperature of the old model's outputs "
                                   f"({', '.join(DISTIL_METHODS)})",
                                   bounds="(0, inf)", hyper=False)
    first_task_weight: float | None = option(None, "the first task's compute against a later task's (the first "
                                             "builds the representation): with --epochs-per-task E the tasks still "
                                             "average E epochs, the first getting W times a later one's; under "
                                             "--budget its time is weighted W times (default: the recipe's)",
                                             metavar="W", bounds="(0, 100]", hyper=False)
    later_lr: float | None = option(None, "peak learning rate of every task after the first (Muon's too), as a "
                                    "share of the first task's: the later tasks start from a trained model, and a "
                                    "lower rate moves it less from what the old classes need (default: the "
                                    "recipe's)", metavar="F", bounds="(0, 10]", hyper=False)
    replay_share: float | None = option(None, "share of each batch drawn from the memory "
                                        f"({', '.join(MEMORY_METHODS)}), the "
                                        "rest from the new task, each in seeded passes (an epoch keeps its "
                                        "steps); 0: the memory mixed in with the new data (its share of the "
                                        "samples); default: the recipe's", metavar="P", bounds="[0, 1)", hyper=False)
    balanced_epochs: float | None = option(None, "epochs of class-balanced fine-tuning on the memory alone at the "
                                           "end of each task after the first "
                                           f"({', '.join(MEMORY_METHODS)}), at a tenth of "
                                           "the peak learning rate, decaying to zero (default: the recipe's)",
                                           metavar="E", bounds="[0, 1000]", hyper=False)
    class_order_runs: int = option(1, "the data-order study: run the protocol over K class orders (seed:1993, then "
                                   "seed:1, seed:2, ...) into OUT/order-*/ and summarise", metavar="K",
                                   bounds="[1, inf)", hyper=False)
    seeds_per_order: int = option(1, "seeds per class order in the order study", metavar="S", bounds="[1, inf)",
                                  hyper=False)


@dataclass
class RunOptions:
    """the run: its seed, folder, resume and logging"""

    seed: int = option(0, "seed of the initialisation, the sample order and the augmentations",
                       bounds="[0, 9.2e18)")  # what torch.manual_seed takes
    out: str | None = option(None, "output folder (default runs/<data>-<time>)", hyper=False)
    resume: str | None = option(None, "continue from a checkpoint (or its folder)", metavar="CKPT", hyper=False)
    wandb: bool = option(False, "log to Weights & Biases", hyper=False)
    wandb_mode: str = option("offline", "wandb mode", choices=("offline", "online", "disabled"), hyper=False)
    wandb_project: str = option("fastvis", "wandb project", hyper=False)
    quiet: bool = option(False, "no progress output", short="-q", hyper=False)


@dataclass
class TrainConfig:
    data: DataOptions = field(default_factory=DataOptions)
    network: NetworkOptions = field(default_factory=NetworkOptions)
    schedule: ScheduleOptions = field(default_factory=ScheduleOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    radiograph: RadiographOptions = field(default_factory=RadiographOptions)
    speed: SpeedOptions = field(default_factory=SpeedOptions)
    eval: EvalOptions = field(default_factory=EvalOptions)
    incremental: IncrementalOptions = field(default_factory=IncrementalOptions)
    run: RunOptions = field(default_factory=RunOptions)

    # -- addressing options by name ----------------------------------------------------------------
    @classmethod
    def from_options(cls, **options) -> "TrainConfig":
        return cls().replace(**options)

    def replace(self, **options) -> "TrainConfig":
        """A copy with the named options changed (unknown names are an error)."""
        groups = {g: dataclasses.replace(getattr(self, g)) for g in GROUPS}
        new = TrainConfig(**groups)
        for name, value in options.items():
            if name not in OPTIONS:
                raise FastvisError(f"unknown option {name!r}{_suggest(name)}")
            setattr(getattr(new, OPTIONS[name][0]), name, value)
        return new

    def get(self, name: str) -> Any:
        return getattr(getattr(self, OPTIONS[name][0]), name)

    def as_dict(self) -> dict:
        """Nested by group, as written to ``config.json`` and read by ``--config``."""
        return dataclasses.asdict(self)

    def flat(self) -> dict:
        return {name: self.get(name) for name in OPTIONS}

    def hyper(self) -> dict:
        """The options a report lists as hyper-parameters."""
        return {name: self.get(name) for name, (_, f) in OPTIONS.items() if f.metadata["hyper"]}

    # -- resolution ------------------------------------------------------------------------------
    def resolved(self) -> "TrainConfig":
        """Checked (every number in its bounds, the device named right), with budget or epochs (a
        3-hour budget when neither is given) and a default output folder."""
        self.check()
        s = self.schedule
        if s.epochs is not None and s.budget is not None:
            raise FastvisError("give --budget or --epochs, not both")
        changes = {}
        if s.epochs is None and s.budget is None:
            changes["budget"] = parse_duration("3h")
        if self.run.out is None:
            stem = os.path.basename(str(self.data.data)).split(".")[0]
            changes["out"] = os.path.join("runs", f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
        return self.replace(**changes) if changes else self

    def check(self) -> None:
        """One line naming the option for the first value out of its bounds, before any work."""
        for name, (_, f) in OPTIONS.items():
            value, bounds = self.get(name), f.metadata["bounds"]
            if bounds and value is not None and not _within(value, bounds):
                raise InputError(f"{flag_of(name)} {value}: must lie in {bounds}")
        device = self.speed.device
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
            raise InputError(f"--device {device}: expected auto, cpu, cuda, cuda:N or mps")
        ra = self.augment.randaugment
        if ra is not None and not re.fullmatch(r"\d+,\d+", ra):
            raise InputError(f"--randaugment {ra}: expected N,M (ops per image, magnitude), e.g. 2,9")
        if ra is not None and not (1 <= int(ra.split(",")[0]) <= 16 and int(ra.split(",")[1]) <= 30):
            raise InputError(f"--randaugment {ra}: N ops per image from 1 to 16, magnitude M from 0 to 30")
        try:
            parse_ramp(self.augment.progressive_ramp)
        except ValueError as e:
            raise InputError(f"--progressive-ramp {e}") from None
        if self.network.model is not None and not str(self.network.model).strip():
            raise InputError("--model '': name a model (fastvis-train --list-models), or leave it out for the recipe's")
        h = self.data.holdout
        if h >= 1 and (h != int(h) or h < 2):
            raise InputError(f"--holdout {h:g}: below 1 it is a fraction of the samples (e.g. 0.1), from 2 on a whole "
                             "number of them; 1 would hold out a single sample")
        budget = self.schedule.budget
        budget = parse_duration(budget) if isinstance(budget, str) else budget
        if budget is not None and budget > MAX_BUDGET_DAYS * 86400:
            raise InputError(f"--budget {budget / 3600:g}h: over {MAX_BUDGET_DAYS} days; give --epochs for a run "
                             "that long")
        b, n = self.optim.batch_size, self.speed.nproc_per_node
        if b is not None and b % n:
            raise InputError(f"--batch-size {b}: must be a multiple of the {n} processes of --nproc-per-node")
        mode = self.mode
        for name, (refused, why) in MODE_REFUSES.get(mode, {}).items():
            if refused(self.get(name)):
                raise InputError(f"{flag_of(name)} {self.get(name)}: not in {mode} runs ({why})")

    @property
    def mode(self) -> str:
        """What kind of run: ``train`` (ordinary) or ``incremental`` (class-incremental)."""
        return "incremental" if self.incremental.incremental else "train"

    def save(self, path: str | os.PathLike) -> None:
        from ..atomic import write_atomic

        write_atomic(path, json.dumps(self.as_dict(), indent=1) + "\n")


GROUPS = [f.name for f in dataclasses.fields(TrainConfig)]


def _group_fields():
    for g in dataclasses.fields(TrainConfig):
        cls = g.default_factory
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            yield g.name, cls, f, hints[f.name]


OPTIONS: dict[str, tuple[str, dataclasses.Field]] = {f.name: (group, f) for group, _, f, _ in _group_fields()}
_TYPES = {f.name: hint for _, _, f, hint in _group_fields()}
ALIASES = {f.metadata["flag"].lstrip("-").replace("-", "_"): f.name for _, (_, f) in OPTIONS.items()
           if f.metadata["flag"]}


def _suggest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name.replace("-", "_"), [*OPTIONS, *ALIASES], n=1)
    return f" (did you mean {ALIASES.get(close[0], close[0])!r}?)" if close else ""


def _within(value: float, bounds: str) -> bool:
    """Whether ``value`` lies in an interval written as ``"[lo, hi)"`` (``inf`` for no bound)."""
    lo_text, hi_text = bounds[1:-1].split(",")
    lo, hi = float(lo_text), float(hi_text)
    above = value >= lo if bounds[0] == "[" else value > lo
    below = value <= hi if bounds[-1] == "]" else value < hi
    return above and below and math.isfinite(value)


def canonical_name(name: str) -> str:
    """A config-file key may also be an option's flag (``ema`` for ``ema_decay``)."""
    key = name.replace("-", "_")
    return ALIASES.get(key, key)


def option_type(name: str) -> type:
    """The type of an option's values: int, float, str or bool."""
    return _base_type(_TYPES[name])


def _base_type(hint):
    """int, float, str or bool behind ``X | None``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def flag_of(name: str) -> str:
    f = OPTIONS[name][1]
    return f.metadata["flag"] or "--" + name.replace("_", "-")


def coerce(name: str, value: Any, where: str = "") -> Any:
    """A value from a config file or a variant (``"3h"``, ``"0.1"``, ``1``) as the option's type."""
    f = OPTIONS[name][1]
    kind = option_type(name)
    if value is None:
        return None
    try:
        if f.metadata["parse"] is not None and isinstance(value, str):
            return f.metadata["parse"](value)
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "on", "off", "yes", "no", "1", "0"):
                    raise ValueError(f"not a yes/no value: {value!r}")
                return value.lower() in ("true", "on", "yes", "1")
            return bool(value)
        if kind is float and isinstance(value, (int, float, str)):
            return float(value)
        if kind is int and isinstance(value, (int, str)) and not isinstance(value, bool):
            return int(value)
        if kind is str:
            return str(value)
    except ValueError as exc:
        raise FastvisError(f"{where}{name}: {exc}") from None
    raise FastvisError(f"{where}{name}: expected a {kind.__name__}, got {value!r}")


# -- command line -----------------------------------------------------------------------------------

def build_parser(prog: str = "fastvis-train", description: str = "") -> argparse.ArgumentParser:
    """One argument group per option group; every default is ``SUPPRESS`` so that only what was
    given on the command line overrides the config file and the defaults."""
    p = argparse.ArgumentParser(prog=prog, description=description, argument_default=argparse.SUPPRESS)
    p.add_argument("--config", metavar="FILE", help="options from a TOML, JSON or YAML file (nested by the groups "
                   "below, or flat); the command line overrides it. A run folder's config.json is such a file")
    for g in dataclasses.fields(TrainConfig):
        group = p.add_argument_group(g.default_factory.__doc__)
        for f in dataclasses.fields(g.default_factory):
            _add(group, f)
    return p


def _add(group, f: dataclasses.Field) -> None:
    m = f.metadata
    kind = option_type(f.name)
    names = [n for n in (m["short"], m["flag"] or "--" + f.name.replace("_", "-")) if n]
    default = f"default {f.default}" if f.default not in (None, False, True) else None
    text = argparse.SUPPRESS if m["hidden"] else m["help"] + (f" ({default})" if default and "default" not in
                                                              m["help"] else "")
    kw: dict[str, Any] = dict(dest=f.name, help=text)
    if kind is bool and m["short"]:
        kw["action"] = "store_true"
    elif kind is bool:
        kw["action"] = argparse.BooleanOptionalAction
    else:
        kw["type"] = str if m["parse"] else kind  # parsed with the rest (a bad value is a one-line error)
        if m["choices"]:
            kw["choices"] = list(m["choices"])
        if m["metavar"]:
            kw["metavar"] = m["metavar"]
        if m["const"] is not None:
            kw.update(nargs="?", const=m["const"])
    group.add_argument(*names, **kw)


#: the longest --budget taken: a longer one is a typo (3000h for 30h), and a run that long is
#: better planned in epochs
MAX_BUDGET_DAYS = 31

#: a config file is a page of options; anything larger is not one
MAX_CONFIG_BYTES = 1 << 20


def load_file(path: str | os.PathLike) -> dict:
    """Flat ``{option: value}`` from a TOML, JSON or YAML file, nested by group or flat."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        if stat.S_ISDIR(mode):
            raise FastvisError(f"{p}: is a folder, not a config file")
        if not stat.S_ISREG(mode):  # a FIFO would wait for a writer, /dev/zero never end
            raise FastvisError(f"{p}: not a regular file (a FIFO, a device or a socket); give a TOML, JSON or "
                               "YAML file")
        with open(p, "rb") as fp:
            data = fp.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise FastvisError(f"{p}: over {MAX_CONFIG_BYTES // 1024} KiB: not a config file")
        text = data.decode("utf-8")
    except OSError as exc:
        raise FastvisError(f"{p}: cannot read the config file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise FastvisError(f"{p}: not a text file ({exc.reason} at byte {exc.start})") from None
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib
            raw = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise FastvisError(f"{p}: reading YAML needs PyYAML (pip install pyyaml), or use TOML/JSON") from None
            raw = yaml.safe_load(text) or {}
        else:
            raw = json.loads(text)
    except FastvisError:
        raise
    except Exception as exc:  # each parser has its own error class
        raise FastvisError(f"{p}: not a valid {suffix.lstrip('.') or 'JSON'} file ({exc})") from None
    if not isinstance(raw, dict):
        raise FastvisError(f"{p}: expected a table of options, got {type(raw).__name__}")
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        group = key.replace("-", "_")
        key = canonical_name(key) if group not in GROUPS and group not in MOVED_FROM else group
        if key in RETIRED:
            continue
        if (key in GROUPS or key in MOVED_FROM) and isinstance(value, dict):
            for k, v in value.items():
                k = canonical_name(k)
                if k in RETIRED:
                    continue
                if OPTIONS.get(k, (None,))[0] != key and k not in MOVED_FROM.get(key, ()):
                    raise FastvisError(f"{p}: [{key}] has no option {k!r}{_suggest(k)}")
                flat[k] = v
        elif key in OPTIONS:
            flat[key] = value
        else:
            raise FastvisError(f"{p}: unknown option {key!r}{_suggest(key)}")
    return {k: coerce(k, v, f"{p}: ") for k, v in flat.items()}


#: what each mode cannot use, with the reason; every other option works in every mode
MODE_REFUSES = {
    "incremental": {
        "teacher": (lambda v: v is not None, f"the distilling methods (--cl-method {', '.join(DISTIL_METHODS)}) "
                    "learn from the previous task's model, not from a teacher checkpoint"),
        "loader": (lambda v: v not in ("auto", "resident"), "the tasks are drawn from the training data held on "
                   "the device (the resident loader)"),
        "hard_fraction": (lambda v: v < 1, "a task's batches mix new samples with the memory and the distilling "
                          "methods' losses need the whole batch"),
    },
}

#: options of earlier versions, ignored in the config.json of their run folders
RETIRED = {"halt_after_epoch"}

#: options that earlier versions kept in another group (and the group renamed): their config.json still reads
MOVED_FROM = {"data": {"model"}, "eval": {"teacher", "kd_alpha", "kd_temperature"},
              "output": {"out", "resume", "seed", "wandb", "wandb_mode", "wandb_project", "quiet"}}

#: options a resumed run may change; any other given again must equal the run's own
MAY_CHANGE = {"budget", "epochs", "out", "resume", "quiet", "wandb", "wandb_mode", "wandb_project",
              "eval_batch_size", "device", "nproc_per_node", "ddp_timeout", "cache_dir", "verify", "checksums"}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then ``--config``, then the options given; resolved (budget, output folder).

    ``--resume RUN`` (a run folder or its checkpoint) continues that run with its own
    configuration (its ``config.json``): options given again must match it, except
    :data:`MAY_CHANGE`. ``--resume auto`` does so when ``--out`` holds a checkpoint and starts
    afresh otherwise, so that one command line serves a first start and every restart."""
    given = {k: coerce(k, v) for k, v in vars(args).items() if k in OPTIONS}
    from_file = load_file(args.config) if getattr(args, "config", None) else {}
    options = {**from_file, **given}
    resume = options.get("resume")
    if resume == "auto":
        if not options.get("out"):
            raise InputError("--resume auto needs --out (the run folder to continue, or to start)")
        found = Path(options["out"]) / "checkpoint.pt"
        options["resume"] = str(found) if found.is_file() else None
        resume = options["resume"]
    if resume:
        folder = Path(resume) if Path(resume).is_dir() else Path(resume).parent
        saved_file = folder / "config.json"
        if saved_file.is_file():
            saved = load_file(saved_file)
            # an option left to the recipe (None, as a config file of every option writes it) is the
            # run's own choice, kept: the model, precision, batch and optimiser it resolved
            options = {k: v for k, v in options.items() if v is not None or k == "resume"}
            for name, value in options.items():
                if name in saved and name not in MAY_CHANGE and value != saved[name]:
                    raise InputError(f"{flag_of(name)} {value}: the run in {folder} was started with {saved[name]}; "
                                     "a resumed run keeps its settings (start a new run to change it)")
            # the budget or the epochs given now replace the run's own
            if "budget" in options or "epochs" in options:
                saved.pop("budget", None)
                saved.pop("epochs", None)
            options = {**saved, "out": str(folder), **options}
    return TrainConfig.from_options(**options).resolved()
