"""Does defect synthesis pay? Training on radiograph crops with many and with few real defects,
without and with ``--defect-paste``, over paired seeds; balanced accuracy and ROC AUC on a
separate validation set, with the paired difference and its 95% interval (the statistics of
``fastvis-ablate``).

The crops come from the real CR radiographs of pydicom-data with synthetic voids
(:mod:`fastvis.bench.radiographs`): the training sets hold ``--normal`` normal crops and
``--many`` or ``--few`` defect crops, the validation set ``--val`` of each, all from different
seeds. Every run trains ``--epochs`` epochs (not a time budget: the numbers do not depend on
how busy the machine is).

Usage: fastvis-bench defects [--seeds 3] [--epochs 40] [--model fastnet_s] [--paste 0.5] [--boxes]
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

    sets = {"many": (args.normal, args.many, 1), "few": (args.normal, args.few, 2), "val": (args.val, args.val, 3)}
    files = {}
    for name, (normal, defect, seed) in sets.items():
        beton = out / f"{name}.beton"
        if not beton.exists():
            root, labels = write_xray_folder(out / name, normal, defect, tile=args.tile, depth=args.depth, seed=seed,
                                             boxes=args.boxes)
            convert(DicomSource(root, labels, size=args.size), beton, progress=False)
        files[name] = beton
    return files


def _table(results: dict) -> list[str]:
    lines = ["| real defects | defect synthesis | balanced accuracy % | ROC AUC | balanced acc. difference [95% CI] |",
             "|---|---|---:|---:|---:|"]
    for setting, r in results.items():
        b, auc = r["balanced_accuracy"], r["auc"]
        lines.append(f"| {setting} | off | {100 * b['base']['mean']:.1f} ± {100 * b['base']['std']:.1f} | "
                     f"{auc['base']['mean']:.3f} ± {auc['base']['std']:.3f} | |")
        for v, a in zip(b["variants"], auc["variants"]):
            ci = (f"{100 * v['diff']:+.1f} [{100 * v['low']:+.1f}, {100 * v['high']:+.1f}]"
                  if v["low"] is not None else f"{100 * v['diff']:+.1f}")
            lines.append(f"| {setting} | {v['variant']} | {100 * v['mean']:.1f} ± {100 * v['std']:.1f} | "
                         f"{a['mean']:.3f} ± {a['std']:.3f} | {ci}{' *' if v['significant'] else ''} |")
    return lines


def main(argv: list[str] | None = None, prog: str | None = None):
    from fastvis.ablate.analysis import analyse
    from fastvis.ablate.runner import parse_variants, plan_runs, run_all
    from fastvis.train.config import TrainConfig

    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join("bench", "out", "defects"))
    ap.add_argument("--normal", type=int, default=300, help="normal crops in each training set")
    ap.add_argument("--many", type=int, default=300, help="real defect crops in the 'many' training set")
    ap.add_argument("--few", type=int, default=12, help="real defect crops in the 'few' training set")
    ap.add_argument("--val", type=int, default=150, help="normal and defect crops each in the validation set")
    ap.add_argument("--tile", type=int, default=64, help="crop side in the radiograph's pixels")
    ap.add_argument("--size", type=int, default=32, help="side the crops are converted to (--size)")
    ap.add_argument("--depth", type=float, default=1.5,
                    help="darkness of a void's centre, in standard deviations of the crop's values")
    ap.add_argument("--boxes", action="store_true", help="label the defects with boxes instead of pixel masks")
    ap.add_argument("--window", default="minmax", choices=("auto", "window", "minmax"),
                    help="--window of the runs (default minmax: each crop's own range; the radiographs' window "
                    "spans the whole film, in which a crop's voids are a few grey levels)")
    ap.add_argument("--model", default="fastnet_s")
    ap.add_argument("--epochs", type=float, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--paste", type=float, default=0.5, help="--defect-paste of the runs with synthesis")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--json", default=None, help="default: OUT/defects.json")
    ap.add_argument("--jobs", type=int, default=None,
                    help="runs at once (default: one per CUDA device; on a CPU one, or N sharing the cores)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    files = _data(out, args)
    planned = {}
    for setting in ("few", "many"):
        base = TrainConfig.from_options(data=str(files[setting]), val=str(files["val"]), model=args.model,
                                        epochs=args.epochs, batch_size=args.batch_size, metric="balanced_accuracy",
                                        window=args.window,
                                        out=str(out / setting / "runs"), quiet=True).resolved()
        variants = parse_variants(base, [], [f"defect-paste={args.paste:g}"])
        planned[setting] = plan_runs(base, variants, args.seeds, out / setting / "runs")
    failed = run_all([r for runs in planned.values() for r in runs], log=print, jobs=args.jobs)
    if failed:
        raise SystemExit(f"fastvis-bench defects: {len(failed)} run(s) failed; see their stderr.log")
    results = {}
    for setting, runs in planned.items():
        real = args.few if setting == "few" else args.many
        label = f"{setting}: {real} of {args.normal + real}"
        results[label] = {m: analyse(runs, m) for m in ("balanced_accuracy", "auc")}
    lines = _table(results)
    print(f"# defect synthesis: {args.model}, {args.epochs:g} epochs, crops {args.tile} px -> {args.size} px "
          f"(--window {args.window}), "
          f"validation {args.val} + {args.val}, {args.seeds} seeds, {os.cpu_count()} cores, "
          f"{time.perf_counter() - start:.0f} s in all")
    print("\n".join(lines))
    path = Path(args.json) if args.json else out / "defects.json"
    path.write_text(json.dumps({"options": vars(args), "results": results, "table": lines,
                                "seconds": time.perf_counter() - start}, indent=1))


if __name__ == "__main__":
    main()
