"""Time to accuracy, side by side: ``fastvis-train`` and the plain PyTorch baseline
(``fastvis-bench baseline``: ImageFolder + DataLoader + per-image transforms) on the same image
folder or archive with the same budget. Each runs in its own process and its clock starts at
launch, so converting (fastvis) or extracting (baseline) the data counts against the budget.

Usage: fastvis-bench train --data ../shared/data/cifar10-jpeg.tar.xz --budget 10m
       fastvis-bench train --data ../shared/data/cifar10-jpeg.tar.xz --epochs 8   (accuracy per epoch)
       [--fastvis-args="--amp --tta"] [--baseline-args="--model resnet18"] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastvis.train.budget import parse_duration


def _run(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - t, proc


def main(argv: list[str] | None = None, prog: str | None = None):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="image-folder tree with train/ and test/, or an archive of one")
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--epochs", help="both train this many epochs instead of for the budget: accuracy per epoch, "
                    "side by side")
    ap.add_argument("--holdout", default="0", help="hold out this part of the training split (both runs the same "
                    "samples) and measure on it instead of the test split")
    ap.add_argument("--fastvis-args", default="",
                    help='more options for fastvis-train, one string: --fastvis-args="--amp --tta"')
    ap.add_argument("--baseline-args", default="", help='more options for the baseline, one string')
    ap.add_argument("--out", help="folder for both runs' outputs (default: a temporary one)")
    ap.add_argument("--json", default=os.path.join("bench", "out", "train.json"))
    args = ap.parse_args(argv)
    budget = parse_duration(args.budget)
    tmp = None if args.out else tempfile.TemporaryDirectory()
    out = Path(args.out or tmp.name)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    holdout = ["--holdout", args.holdout] if float(args.holdout) else []
    length = ["--epochs", args.epochs] if args.epochs else ["--budget", args.budget]
    wall, proc = _run([sys.executable, "-m", "fastvis.cli.train", "--data", args.data, *length,
                       "--out", str(out / "fastvis"), "--cache-dir", str(out / "cache"), "-q", *holdout,
                       *shlex.split(args.fastvis_args)])
    if proc.returncode:
        sys.exit(f"fastvis-bench train: fastvis-train failed:\n{proc.stderr[-2000:]}")
    s = json.loads((out / "fastvis" / "summary.json").read_text())
    top1 = s["final"]["holdout"]["top1"] if holdout else s["top1"]  # the same split as the baseline
    rows["fastvis-train"] = {"model": s["model"], "epochs": s["epochs"], "images_per_second": s["images_per_second"],
                             "top1": top1, "wall_seconds": wall}
    wall, proc = _run([sys.executable, "-m", "fastvis.cli.bench", "baseline", "--data", args.data, *length,
                       "--json", str(out / "baseline.json"), *holdout, *shlex.split(args.baseline_args)])
    if proc.returncode:
        sys.exit(f"fastvis-bench train: the baseline failed:\n{proc.stderr[-2000:]}")
    b = json.loads((out / "baseline.json").read_text())
    rows["plain PyTorch (DataLoader)"] = {"model": b["model"], "epochs": b["epochs"],
                                          "images_per_second": b["images_per_second"], "top1": b["top1"],
                                          "wall_seconds": wall}
    split = "held-out part of the training split" if holdout else "test split"
    how_long = f"{args.epochs} epochs each" if args.epochs else f"budget {budget:.0f} s"
    print(f"# time to accuracy, {Path(args.data).name}, {how_long}, {os.cpu_count()} cores, top-1 on the {split}")
    print(f"{'run':28s} {'model':12s} {'epochs':>7s} {'images/s':>10s} {'top-1':>7s} {'wall s':>8s}")
    for name, r in rows.items():
        print(f"{name:28s} {r['model']:12s} {r['epochs']:7.2f} {r['images_per_second']:10,.0f} "
              f"{100 * r['top1']:6.2f}% {r['wall_seconds']:8.1f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    ratio = rows["fastvis-train"]["top1"] / max(rows["plain PyTorch (DataLoader)"]["top1"], 1e-9)
    print(f"top-1 ratio fastvis / baseline: {ratio:.2f}x")
    Path(args.json).write_text(json.dumps({"budget_seconds": None if args.epochs else budget,
                                           "epochs": float(args.epochs) if args.epochs else None, "data": args.data,
                                           "split": split, "top1_ratio": ratio, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
