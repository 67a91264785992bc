"""``fastvis-ablate``: what each component of a training recipe is worth, measured.

    fastvis-ablate --data c100.beton --holdout 5000 --budget 10m --without tta,label-smoothing \\
        --with cutmix=1.0,amp=off --seeds 3 --out runs/ablate
    fastvis-ablate --from runs/x --without tta --seeds 3 --out runs/ablate-x

Runs the base configuration and every variant (one change each) over the same seeds, each in
its own folder; a second invocation repeats no finished run. Writes ablation.json, .csv, .png,
report.pdf (the base run's page with "What makes it converge fast") and slides.pdf into --out.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from .. import InputError
from . import run


def build_parser():
    from ..train.config import build_parser as config_parser

    p = config_parser("fastvis-ablate", "Measure what each part of a training recipe is worth: the base and every "
                      "variant over the same seeds, paired differences with 95% intervals. The trainer's options "
                      "below set the base; --out is the ablation's folder.")
    g = p.add_argument_group("ablation")
    g.add_argument("--from", dest="from_run", metavar="RUN", default=None,
                   help="take the base configuration from a run folder")
    g.add_argument("--without", default="", metavar="A,B", help="variants that remove one component each: "
                   "tta, label-smoothing, ema, cutmix, mixup, crop, flip, amp, ... (any option: flags off, numbers 0)")
    g.add_argument("--with", dest="with_", default="", metavar="K=V,...",
                   help="variants that set one option each, e.g. cutmix=1.0,model=resnet18,amp=off")
    g.add_argument("--seeds", type=int, default=3, help="seeds per variant (paired across variants; default 3)")
    g.add_argument("--cumulative", action="store_true", default=False,
                   help="also run the changes added in turn (base, +1st, +1st+2nd, ...): a speed-run style table")
    g.add_argument("--jobs", type=int, default=None,
                   help="runs at once (default: one per CUDA device; on a CPU one, or N sharing the cores)")
    return p


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def base_config(args):
    from ..train.config import OPTIONS, TrainConfig, coerce, load_file

    given = {k: coerce(k, v) for k, v in vars(args).items() if k in OPTIONS}
    options = load_file(args.config) if getattr(args, "config", None) else {}
    if args.from_run:
        saved = Path(args.from_run) / "config.json"
        if not saved.is_file():
            raise InputError(f"{args.from_run}: no config.json (not a fastvis-train run folder)")
        options = {**load_file(saved), **options}
    if "budget" in given or "epochs" in given:
        options.pop("budget", None)
        options.pop("epochs", None)
    options = {**options, **given}
    out = options.pop("out", None)
    if not out:
        raise InputError("give the ablation's folder with --out")
    if options.get("budget") is None and options.get("epochs") is None and options.get("epochs_per_task") is None:
        raise InputError("give every run's --budget or --epochs (each of the runs gets it)")
    return TrainConfig.from_options(**options, out=out).resolved(), Path(out)


def ablate(args, log=print) -> int:
    from ..ablate.analysis import analyse, cumulative_table, metric_name, write_outputs
    from ..ablate.runner import cumulative_variants, parse_variants, plan_runs, run_all
    from ..ablate.slides import write_slides
    from ..plots import ablation_rows
    from ..train.report import write_report

    base, out = base_config(args)
    variants = parse_variants(base, _split(args.without), _split(args.with_))
    if not variants:
        raise InputError("nothing to compare: give --without and/or --with")
    if args.seeds < 1:
        raise InputError(f"--seeds {args.seeds}: at least one")
    out.mkdir(parents=True, exist_ok=True)
    runs = plan_runs(base, variants, args.seeds, out)
    cum_runs = [r for r in plan_runs(base, cumulative_variants(variants), args.seeds, out)
                if r.variant.name != "base"] if args.cumulative else []
    steps = [r for r in runs if r.variant.name in ("base", variants[0].name)]  # the table's first two rows
    log(f"ablation: {len(variants)} variant(s) x {args.seeds} seed(s) = {len(runs)} runs"
        + (f", {len(cum_runs)} cumulative" if cum_runs else "") + f" in {out}")
    failed = run_all(runs + cum_runs, log, args.jobs)
    # class-incremental runs are compared on their average incremental accuracy
    metric = "average_incremental" if base.mode == "incremental" else base.eval.metric
    result = analyse(runs, metric)
    cumulative = cumulative_table(steps + cum_runs, metric) if args.cumulative else None
    result = write_outputs(out, result, base, cumulative)
    written = "ablation.json, ablation.csv, ablation.png"
    if base.mode != "incremental":  # the one-page report and the slides are those of an ordinary run
        first = next(r for r in runs if r.variant.name == "base" and r.done)
        summary = first.summary()
        history = [json.loads(line) for line in (first.folder / "metrics.jsonl").read_text().splitlines() if line]
        write_report(summary, summary["hyper"], history, first.folder / "report.pdf", ablation=result)
        shutil.copyfile(first.folder / "report.pdf", out / "report.pdf")
        write_slides(out / "slides.pdf", summary, history, summary["hyper"], result)
        written += ", report.pdf, slides.pdf"
    log(f"{'variant':28s} {metric_name(metric) + ' %':>16s}  difference [95% CI]")
    for row in ablation_rows(result):
        log(f"{row[0]:28s} {row[1]:>16s}  {row[2]}")
    log(result["sentence"])
    log(f"-> {out}/{written}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run("fastvis-ablate", lambda: ablate(args))


if __name__ == "__main__":
    sys.exit(main())
