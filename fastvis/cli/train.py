"""``fastvis-train``: time-budgeted training with a one-page report.

Also runs under torchrun: ``torchrun --nproc-per-node N -m fastvis.cli.train ...``, or
``fastvis-train --nproc-per-node N ...`` which starts torchrun itself.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from . import run

STARTED = time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastvis-train",
        description="Train an image classifier inside a time budget; writes summary.json, metrics.jsonl, "
        "curve.png, report.pdf and checkpoint.pt into --out.",
    )
    g = p.add_argument_group("what to train")
    g.add_argument("--data", default="cifar100", help="cifar100 | cifar10 | a .beton | an image folder or archive")
    g.add_argument("--val", help="validation set (.beton or folder); default: the dataset's test split")
    g.add_argument("--model", help="model name (see --list-models) or timm:NAME; default: by device and budget")
    g.add_argument("--list-models", action="store_true", help="print the model names and exit")
    g = p.add_argument_group("how long")
    g.add_argument("--budget", help="wall-clock budget for the whole run: 90s, 10m, 3h (default 3h)")
    g.add_argument("--epochs", type=float, help="train this many epochs instead of fitting a budget")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, default=512, help="global batch size (default 512)")
    g.add_argument("--lr", type=float, help="peak learning rate (default: by model, scaled with the batch)")
    g.add_argument("--weight-decay", type=float, default=5e-4)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--warmup", type=float, default=0.05, help="fraction of training spent warming up")
    g.add_argument("--label-smoothing", type=float, default=0.1)
    g.add_argument("--drop-path", type=float, default=0.0, help="stochastic depth rate (ResNets, WRN, timm)")
    g.add_argument("--ema", type=float, nargs="?", const=0.999, default=0.0, metavar="DECAY",
                   help="keep an exponential moving average of the weights (default decay 0.999)")
    g = p.add_argument_group("augmentation (on the device)")
    g.add_argument("--crop", action=argparse.BooleanOptionalAction, default=True, help="random crop, reflect padding")
    g.add_argument("--padding", type=int, default=4)
    g.add_argument("--flip", choices=["random", "alternating", "none"], default="random")
    g.add_argument("--randaugment", metavar="N,M", help="RandAugment with N ops at magnitude M, e.g. 2,9")
    g.add_argument("--autoaugment", action="store_true", help="AutoAugment, CIFAR-10 policy")
    g.add_argument("--trivialaugment", action="store_true")
    g.add_argument("--erasing", type=float, default=0.0, metavar="P", help="Random Erasing probability")
    g.add_argument("--cutout", type=int, default=0, metavar="SIZE")
    g.add_argument("--cutmix", type=float, default=0.0, metavar="ALPHA", help="CutMix with this alpha")
    g.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA", help="mixup with this alpha")
    g.add_argument("--mix-prob", type=float, default=1.0)
    g = p.add_argument_group("radiographs (.beton files from DICOM folders, converted with --size N)")
    g.add_argument("--window", choices=["auto", "window", "minmax"], default="auto",
                   help="values to [0, 1]: the file's window (auto: where it has one) or each image's range")
    g.add_argument("--defect-paste", type=float, default=0.0, metavar="P",
                   help="with probability P, Poisson-blend a defect patch into a normal image and relabel it")
    g.add_argument("--defect-class", help="the defect class (name or index; default: 'defect')")
    g = p.add_argument_group("speed")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: on for CUDA, off on CPU)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--nproc-per-node", type=int, default=1, help="start this many processes with torchrun (DDP)")
    g.add_argument("--loader", choices=["auto", "resident", "streaming", "jpeg", "dali"], default="auto",
                   help="training data held on the device (resident), streamed from the file (streaming), decoded "
                   "and random-resized-cropped per batch (jpeg: nvjpeg on CUDA, Pillow on CPU), or a DALI pipeline "
                   "(dali); auto: resident when it fits, else streaming; jpeg when images differ in size or "
                   "--image-size differs from theirs")
    g.add_argument("--image-size", type=int, metavar="S",
                   help="jpeg/dali loaders: train on S x S random-resized crops, evaluate on centre crops (default: "
                   "224, or the median shorter side of smaller images)")
    g.add_argument("--rrc-scale", type=float, default=0.08, metavar="MIN",
                   help="smallest area fraction of a random-resized crop (default 0.08)")
    g = p.add_argument_group("evaluation and distillation")
    g.add_argument("--tta", action="store_true", help="flip test-time augmentation in the final evaluation")
    g.add_argument("--teacher", metavar="CKPT", help="distil from this checkpoint (any registered model)")
    g.add_argument("--kd-alpha", type=float, default=0.5)
    g.add_argument("--kd-temperature", type=float, default=4.0)
    g = p.add_argument_group("output")
    g.add_argument("--out", help="output folder (default runs/<data>-<time>)")
    g.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint (or its folder)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--cache-dir", help="where datasets are downloaded and converted")
    g.add_argument("--no-verify", action="store_true", help="skip md5 checks of downloaded archives")
    g.add_argument("--wandb", action="store_true", help="log to Weights & Biases")
    g.add_argument("--wandb-mode", choices=["offline", "online", "disabled"], default="offline")
    g.add_argument("--wandb-project", default="fastvis")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    g.add_argument("--halt-after-epoch", type=int, help=argparse.SUPPRESS)
    return p


def config_from_args(args):
    from ..train.budget import parse_duration
    from ..train.loop import TrainConfig

    budget = None
    if args.epochs is None:
        budget = parse_duration(args.budget or "3h")
    elif args.budget:
        raise ValueError("give --budget or --epochs, not both")
    out = args.out or os.path.join("runs", f"{os.path.basename(str(args.data)).split('.')[0]}-{time.strftime('%Y%m%d-%H%M%S')}")
    return TrainConfig(
        data=args.data, val=args.val, model=args.model, budget=budget, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, momentum=args.momentum,
        warmup=args.warmup, device=args.device, out=out, seed=args.seed, resume=args.resume,
        compile=args.compile, amp=args.amp, channels_last=args.channels_last, crop=args.crop, padding=args.padding,
        flip=args.flip, randaugment=args.randaugment, autoaugment=args.autoaugment,
        trivialaugment=args.trivialaugment, erasing=args.erasing, cutout=args.cutout, cutmix=args.cutmix,
        mixup=args.mixup, mix_prob=args.mix_prob, label_smoothing=args.label_smoothing, drop_path=args.drop_path,
        ema=args.ema, tta=args.tta, teacher=args.teacher, kd_alpha=args.kd_alpha,
        kd_temperature=args.kd_temperature, wandb=args.wandb, wandb_mode=args.wandb_mode,
        wandb_project=args.wandb_project, loader=args.loader, image_size=args.image_size, rrc_scale=args.rrc_scale,
        window=args.window, defect_paste=args.defect_paste,
        defect_class=args.defect_class, cache=args.cache_dir, verify=not args.no_verify,
        progress=not args.quiet, halt_after_epoch=args.halt_after_epoch, started=STARTED,
    )


def _relaunch(argv: list[str], n: int) -> int:
    """Start ``n`` processes of this command through torchrun (minus the --nproc-per-node option)."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc-per-node":
            skip = True
            continue
        if a.startswith("--nproc-per-node="):
            continue
        rest.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "fastvis.cli.train", *rest]
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.list_models:
        from ..models import list_models

        print("\n".join(list_models()))
        return 0
    if args.nproc_per_node > 1 and "WORLD_SIZE" not in os.environ:
        return _relaunch(argv, args.nproc_per_node)

    def body() -> int:
        from ..train.loop import train

        train(config_from_args(args))
        return 0

    return run("fastvis-train", body)


if __name__ == "__main__":
    sys.exit(main())
