"""Poisson blending: fastvis's solver against OpenCV's seamlessClone, side by side.

Case: a 512 x 512 grayscale image, a 128 x 128 source patch (``--patch``) with a round-ish mask
(7,742 pixels to solve at 128). OpenCV takes 3 channels only, so it gets the grayscale images replicated
to RGB (what a user of OpenCV would do). Accuracy: the mean and largest difference, inside the
mask, from the exact solution of the normal-clone equations (a direct sparse solve). Timing: a
warm-up call, then the median of ``--repeats`` runs; on CUDA, after a synchronise. The batched
rows blend ``--batch`` patches into as many images in one call and report the time per patch.

Usage: fastvis-bench poisson [--device cpu|cuda|all] [--patch 128] [--batch 64] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ..augment.poisson import poisson_blend, poisson_blend_batch, poisson_blend_reference


def _smooth(rng, shape, radius):
    """Noise smoothed by three box blurs along each axis (close to a Gaussian; numpy only)."""
    a = rng.random(shape)
    for axis in (0, 1):
        for _ in range(3):
            c = np.cumsum(np.pad(a, [(radius + 1, radius) if k == axis else (0, 0) for k in range(2)], mode="edge"),
                          axis=axis)
            n = c.shape[axis]
            a = np.take(c, range(2 * radius + 1, n), axis) - np.take(c, range(n - 2 * radius - 1), axis)
            a = a / (2 * radius + 1)
    return (a - a.min()) / (a.max() - a.min())


def make_case(size=512, patch=128, seed=0):
    rng = np.random.default_rng(seed)
    dst = (40 + 150 * _smooth(rng, (size, size), 8)).astype(np.uint8)
    src = (90 + 120 * _smooth(rng, (patch, patch), 3)).astype(np.uint8)
    yy, xx = np.mgrid[:patch, :patch]
    c = patch / 2
    ang = np.arctan2(yy - c, xx - c)
    mask = (np.hypot(yy - c, xx - c) < (patch / 2 - 6) * (0.85 + 0.15 * np.sin(3 * ang))).astype(np.uint8) * 255
    return dst, src, mask, (size // 2 - patch // 2 - 40, size // 2 - patch // 2 + 30)


def _time(fn, sync, repeats):
    fn()
    sync()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main(argv: list[str] | None = None, prog: str | None = None):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    ap.add_argument("--batch", type=int, default=64, help="patches per batched call")
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--tol", type=float, default=None, help="residual tolerance (default: fastvis's)")
    ap.add_argument("--patch", type=int, default=128, help="side of the source patch (16..256)")
    ap.add_argument("--json", default=os.path.join("bench", "out", "poisson.json"))
    args = ap.parse_args(argv)
    if not 16 <= args.patch <= 256:
        ap.error(f"--patch must be in 16..256, got {args.patch}")
    dst, src, mask, (y, x) = make_case(patch=args.patch)
    inside = np.zeros(dst.shape, bool)
    inside[y : y + mask.shape[0], x : x + mask.shape[1]] = mask > 0
    try:
        exact = np.clip(poisson_blend_reference(dst, src, mask, (y, x)), 0, 255)
    except ImportError:  # scipy: no exact solve, no error columns
        exact = None
    rows = {}

    def record(name, seconds, result, per="image"):
        err = np.abs(result.astype(np.float64) - exact)[inside] if exact is not None else None
        rows[name] = {"ms": seconds * 1e3, "per": per,
                      "mean_err": float(err.mean()) if err is not None else None,
                      "max_err": float(err.max()) if err is not None else None}

    try:
        import cv2

        d3, s3 = np.dstack([dst] * 3), np.dstack([src] * 3)
        rx, ry, bw, bh = cv2.boundingRect(mask)
        center = (x + rx + bw // 2, y + ry + bh // 2)
        res = cv2.seamlessClone(s3, d3, mask.copy(), center, cv2.NORMAL_CLONE)[..., 0]
        t = _time(lambda: cv2.seamlessClone(s3, d3, mask.copy(), center, cv2.NORMAL_CLONE), lambda: None, args.repeats)
        record(f"OpenCV seamlessClone ({cv2.getNumThreads()} threads)", t, res)
    except ImportError:
        print("OpenCV not installed: no OpenCV row")

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    for dev in devices:
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        d, s, m = (torch.from_numpy(a).to(dev) for a in (dst, src, mask))
        res, stats = poisson_blend(d, s, m, (y, x), tol=args.tol, return_stats=True)
        t = _time(lambda: poisson_blend(d, s, m, (y, x), tol=args.tol), sync, args.repeats)
        record(f"fastvis {dev} (1 patch)", t, res.cpu().numpy())
        rows[f"fastvis {dev} (1 patch)"]["iterations"] = int(stats.iterations[0])
        images = d[None, None].repeat(args.batch, 1, 1, 1)
        pats, masks = [s[None]] * args.batch, [m] * args.batch
        offs, idx = [(y, x)] * args.batch, list(range(args.batch))
        out = poisson_blend_batch(images, pats, masks, offs, idx, tol=args.tol)
        tb = _time(lambda: poisson_blend_batch(images, pats, masks, offs, idx, tol=args.tol), sync,
                   max(3, args.repeats // 4))
        record(f"fastvis {dev} (batch of {args.batch})", tb / args.batch, out[-1, 0].cpu().numpy(), per="patch")

    name = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if torch.cuda.is_available():
        name += f"; {torch.cuda.get_device_name()}"
    print(f"\n# Poisson blend, 512x512 grayscale, {args.patch}x{args.patch} patch, {int((mask > 0).sum())} unknowns; "
          f"{name}")
    print(f"# median of {args.repeats} runs; error: |result - exact solve| inside the mask, grey levels")
    base = next((v["ms"] for k, v in rows.items() if k.startswith("OpenCV")), None)
    print(f"{'implementation':36s} {'ms':>9s} {'per':>6s} {'mean err':>9s} {'max err':>8s} {'vs OpenCV':>10s}")
    for k, v in rows.items():
        ratio = f"{base / v['ms']:9.1f}x" if base and not k.startswith("OpenCV") else ""
        errs = f"{v['mean_err']:9.2f} {v['max_err']:8.2f}" if v["mean_err"] is not None else f"{'-':>9s} {'-':>8s}"
        print(f"{k:36s} {v['ms']:9.3f} {v['per']:>6s} {errs} {ratio:>10s}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"machine": name, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
