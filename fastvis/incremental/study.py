"""The data-order study: one protocol over K class orders x S seeds, each run in its own folder
(``OUT/order-seed1993/seed0``; a finished run is not repeated when the study is started again),
then ``order_study.json`` and ``order_study.csv``: per run the average incremental and last
accuracy (and icarl's nearest-mean ones), and for each metric its mean and spread over all
runs, split into the spread from order to order and from seed to seed
(:func:`fastvis.incremental.metrics.order_study`)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..atomic import write_atomic
from ..train.budget import Clock
from ..train.config import TrainConfig
from .metrics import order_study
from .runner import train_incremental

__all__ = ["METRICS", "orders_of", "run_order_study"]

METRICS = ("average_incremental", "last", "nme_average_incremental", "nme_last")


def orders_of(k: int, first: str) -> list[str]:
    """``first`` (the configured order), then ``seed:1``, ``seed:2``, ... (skipping ``first``)."""
    out, s = [first], 1
    while len(out) < k:
        if f"seed:{s}" != first:
            out.append(f"seed:{s}")
        s += 1
    return out


def run_order_study(cfg: TrainConfig, log=print) -> dict:
    inc, root = cfg.incremental, Path(cfg.run.out)
    runs = []
    for order in orders_of(inc.class_order_runs, inc.class_order):
        for s in range(inc.seeds_per_order):
            seed = cfg.run.seed + s
            out = root / f"order-{order.replace(':', '')}" / f"seed{seed}"
            done = out / "summary.json"
            if not done.is_file():
                log(f"order study: {order}, seed {seed} -> {out}")
                resume = str(out / "checkpoint.pt") if (out / "checkpoint.pt").is_file() else None
                train_incremental(cfg.replace(class_order=order, seed=seed, out=str(out), resume=resume,
                                              class_order_runs=1, seeds_per_order=1), Clock())
            block = json.loads(done.read_text())["incremental"]
            run = {"order": order, "seed": seed, "average_incremental": block["average_incremental"],
                   "last": block["last"], "forgetting": block["forgetting"], "split": block["split"]}
            if "nme" in block:  # the nearest-mean classifier of the methods with a memory
                run.update(nme_average_incremental=block["nme"]["average_incremental"], nme_last=block["nme"]["last"])
            runs.append(run)
    result = {"protocol": inc.incremental, "method": inc.cl_method, "memory": inc.memory,
              "budget_seconds": cfg.schedule.budget, "epochs_per_task": inc.epochs_per_task, "runs": runs}
    metrics = [m for m in METRICS if all(m in r for r in runs)]
    for metric in metrics:
        per: dict[str, dict[int, float]] = {}
        for r in runs:
            per.setdefault(r["order"], {})[r["seed"]] = r[metric]
        result[metric] = order_study(per)
    write_atomic(root / "order_study.json", json.dumps(result, indent=1))
    buf = io.StringIO()
    w = csv.writer(buf)
    columns = ["order", "seed", *metrics, "forgetting", "split"]
    w.writerow(columns)
    for r in runs:
        w.writerow([r[c] for c in columns])
    write_atomic(root / "order_study.csv", buf.getvalue())
    for metric in metrics:
        m = result[metric]
        log(f"{metric}: mean {100 * m['mean']:.2f}% over {m['runs']} runs; spread from order to order "
            f"{_pp(m['order_sd'])}, from seed to seed {_pp(m['seed_sd'])}")
    return result


def _pp(v) -> str:
    return "-" if v is None else f"{100 * v:.2f} points (sd)"
