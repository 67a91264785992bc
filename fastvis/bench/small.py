"""Enough optimizer steps for a small data set: about 1,000 radiograph crops trained with the
defaults inside a short budget, against the same data at the old fixed batch of 512 and against a
long fixed-epoch run of the defaults (the reference the budget should come close to).

The crops come from the real CR radiographs of pydicom-data with synthetic voids (half normal,
half defect; :mod:`fastvis.bench.radiographs`), converted at ``--size`` pixels; the validation set
is drawn the same way from another seed. Balanced accuracy on it, over ``--seeds`` seeds. The
budgeted rows depend on the machine's speed: run them on an idle machine.

Usage: fastvis-bench small [--images 1000] [--budget 3m] [--epochs 40] [--seeds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

__all__ = ["main"]


def _data(out: Path, args) -> dict[str, Path]:
    from fastvis.convert import convert
    from fastvis.sources import DicomSource

    from .radiographs import write_xray_folder

    files = {}
    for name, (n, seed) in {"train": (args.images // 2, 1), "val": (args.val, 3)}.items():
        beton = out / f"{name}.beton"
        if not beton.exists():
            root, labels = write_xray_folder(out / name, n, n, tile=args.tile, depth=args.depth, seed=seed)
            convert(DicomSource(root, labels, size=args.size), beton, progress=False)
        files[name] = beton
    return files


def main(argv: list[str] | None = None, prog: str | None = None):
    from fastvis.ablate.runner import Variant, plan_runs, run_all
    from fastvis.ablate.stats import mean_std
    from fastvis.train.config import TrainConfig

    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join("bench", "out", "small"))
    ap.add_argument("--images", type=int, default=1000, help="training crops (half of them with a defect)")
    ap.add_argument("--val", type=int, default=150, help="normal and defect crops each in the validation set")
    ap.add_argument("--tile", type=int, default=64, help="crop side in the radiograph's pixels")
    ap.add_argument("--size", type=int, default=64, help="side the crops are converted to (--size)")
    ap.add_argument("--depth", type=float, default=1.5, help="darkness of a void, in the crop's standard deviations")
    ap.add_argument("--budget", default="3m")
    ap.add_argument("--epochs", type=float, default=40, help="the fixed-epoch reference")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--json", default=None, help="default: OUT/small.json")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    files = _data(out, args)
    common = dict(data=str(files["train"]), val=str(files["val"]), metric="balanced_accuracy", window="minmax",
                  quiet=True)
    rows = {f"defaults, --budget {args.budget}": dict(budget=args.budget),
            f"--batch-size 512, --budget {args.budget}": dict(budget=args.budget, batch_size=512),
            f"defaults, --epochs {args.epochs:g}": dict(epochs=args.epochs)}
    results = {}
    for k, (label, options) in enumerate(rows.items()):
        base = TrainConfig.from_options(**common, **options, out=str(out / f"row{k}")).resolved()
        runs = plan_runs(base, [], args.seeds, out / f"row{k}")
        for run in runs:
            run.variant = Variant(label)
        if run_all(runs, log=print):
            raise SystemExit(f"fastvis-bench small: a run of {label!r} failed; see its stderr.log")
        summaries = [r.summary() for r in runs]
        bal = [100 * s["final"]["test"]["balanced_accuracy"] for s in summaries]
        results[label] = {"balanced_accuracy": mean_std(bal), "runs": bal,
                          "steps": [s["steps"] for s in summaries], "epochs": [s["epochs"] for s in summaries],
                          "batch_size": summaries[0]["batch_size"], "model": summaries[0]["model"],
                          "images_per_second": [s["images_per_second"] for s in summaries]}
    lines = ["| run | model | batch | steps | epochs | images/s | balanced accuracy % |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for label, r in results.items():
        m, s = r["balanced_accuracy"]
        lines.append(f"| {label} | {r['model']} | {r['batch_size']} | {min(r['steps'])}-{max(r['steps'])} | "
                     f"{min(r['epochs']):.1f}-{max(r['epochs']):.1f} | {min(r['images_per_second']):,.0f}-"
                     f"{max(r['images_per_second']):,.0f} | {m:.1f} ± {s:.1f} |")
    print(f"# small data: {args.images} crops of {args.size} px, validation {args.val} + {args.val}, {args.seeds} "
          f"seeds, {os.cpu_count()} cores, {time.perf_counter() - start:.0f} s in all")
    print("\n".join(lines))
    path = Path(args.json) if args.json else out / "small.json"
    path.write_text(json.dumps({"options": vars(args), "results": results, "table": lines,
                                "seconds": time.perf_counter() - start}, indent=1))


if __name__ == "__main__":
    main()
