"""Augmentation throughput: fastvis against torchvision.transforms.v2 and kornia, side by side.

Batch: 512 x 3 x 32 x 32 (CIFAR). Each library gets the input type it accepts: fastvis and
torchvision's CutMix take uint8; mixup in torchvision and everything in kornia needs float
(fastvis is also timed on float there). torchvision's per-image transforms (crop, flip,
RandAugment) are applied per sample in a loop, as a DataLoader would; its CutMix and MixUp
are batch transforms. Timing: a warm-up call, then the median of ``--repeats`` runs of
``--iters`` calls; on CUDA, CUDA events after a synchronise.

Usage: fastvis-bench augment [--device cpu|cuda|all] [--batch 512] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch

import fastvis.augment as A

K = 100


def timer(fn, device, iters, repeats):
    fn()  # warm-up (compiles numba/CUDA kernels)
    if device == "cuda":
        torch.cuda.synchronize()
    runs = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            torch.cuda.synchronize()
            runs.append(start.elapsed_time(end) / 1000 / iters)
        else:
            t = time.perf_counter()
            for _ in range(iters):
                fn()
            runs.append((time.perf_counter() - t) / iters)
    return statistics.median(runs)


def cases(device, batch):
    g = torch.Generator().manual_seed(0)
    x8 = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device)
    xf = x8.float() / 255
    y = torch.randint(0, K, (batch,), device=device)
    rows = {}

    rows["CutMix"] = {
        "fastvis (uint8)": lambda: A.cutmix(x8, y, K, generator=g),
        "fastvis (float)": lambda: A.cutmix(xf, y, K, generator=g),
    }
    rows["MixUp"] = {
        "fastvis (uint8)": lambda: A.mixup(x8, y, K, generator=g),
        "fastvis (float)": lambda: A.mixup(xf, y, K, generator=g),
    }
    rows["RandomCrop+Flip"] = {"fastvis (uint8)": lambda: A.random_crop_flip(x8, padding=4, generator=g)}
    rows["RandAugment(2, 9)"] = {"fastvis (uint8)": lambda: A.randaugment(x8, 2, 9, generator=g)}
    rows["Crop+Flip+CutMix"] = {
        "fastvis (uint8)": lambda: A.cutmix(A.random_crop_flip(x8, padding=4, generator=g), y, K, generator=g)
    }
    try:
        from torchvision.transforms import v2

        cm, mu = v2.CutMix(num_classes=K), v2.MixUp(num_classes=K)
        crop = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])
        ra = v2.RandAugment(num_ops=2, magnitude=9)
        rows["CutMix"]["torchvision v2 (uint8)"] = lambda: cm(x8, y)
        rows["MixUp"]["torchvision v2 (float)"] = lambda: mu(xf, y)
        rows["RandomCrop+Flip"]["torchvision v2, per image"] = lambda: torch.stack([crop(im) for im in x8])
        rows["RandAugment(2, 9)"]["torchvision v2, per image"] = lambda: torch.stack([ra(im) for im in x8])
        rows["Crop+Flip+CutMix"]["torchvision v2"] = lambda: cm(torch.stack([crop(im) for im in x8]), y)
    except ImportError:
        pass
    try:
        import kornia.augmentation as KA
        from kornia.augmentation.auto import RandAugment as KRandAugment

        kcm = KA.RandomCutMixV2(data_keys=["input", "class"]).to(device)
        kmu = KA.RandomMixUpV2(data_keys=["input", "class"]).to(device)
        kcrop = torch.nn.Sequential(KA.RandomCrop((32, 32), padding=4), KA.RandomHorizontalFlip()).to(device)
        kra = KRandAugment(n=2, m=9).to(device)
        rows["CutMix"]["kornia (float)"] = lambda: kcm(xf, y)
        rows["MixUp"]["kornia (float)"] = lambda: kmu(xf, y)
        rows["RandomCrop+Flip"]["kornia (float)"] = lambda: kcrop(xf)
        rows["RandAugment(2, 9)"]["kornia (float)"] = lambda: kra(xf)
        rows["Crop+Flip+CutMix"]["kornia (float)"] = lambda: kcm(kcrop(xf), y)
    except ImportError:
        pass
    return rows


def main(argv: list[str] | None = None, prog: str | None = None):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--iters", type=int, default=0, help="calls per run (default: 20 on CPU, 200 on CUDA)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=os.path.join("bench", "out", "augment.json"))
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    results = {}
    for device in devices:
        cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
        name = torch.cuda.get_device_name() if device == "cuda" else cpu
        kernels = "numba kernels"
        if device == "cuda":
            from ..kernels.cuda_ready import cuda_kernels_problem

            problem = cuda_kernels_problem()
            kernels = "numba CUDA kernels" if problem is None else \
                f"torch forms (numba cannot run CUDA kernels: {problem})"
        print(f"\n# {device}: {name}; batch {args.batch} x 3 x 32 x 32; images/s (median of {args.repeats} runs); "
              f"fastvis rows: {kernels}")
        print(f"{'transform':20s} {'implementation':28s} {'images/s':>14s} {'fastvis speed-up':>17s}")
        results[device] = {"name": name, "kernels": kernels, "rows": {}}
        for op, impls in cases(device, args.batch).items():
            timings = {}
            for impl, fn in impls.items():
                slow = "per image" in impl
                iters = args.iters or (200 if device == "cuda" else 20)
                iters = max(1, iters // 20) if slow else iters
                try:
                    timings[impl] = args.batch / timer(fn, device, iters, 3 if slow else args.repeats)
                except Exception as exc:  # a library that does not take this input
                    print(f"{op:20s} {impl:28s} {'failed: ' + type(exc).__name__:>14s}")
            best = max((v for k, v in timings.items() if k.startswith("fastvis")), default=None)
            for impl, rate in timings.items():
                ratio = "" if impl.startswith("fastvis") or best is None else f"{best / rate:16.1f}x"
                print(f"{op:20s} {impl:28s} {rate:14,.0f} {ratio:>17s}")
            results[device]["rows"][op] = timings
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
