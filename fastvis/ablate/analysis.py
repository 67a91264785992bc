"""What an ablation measured: the table, the sentence, and the files (``ablation.json``,
``ablation.csv``, ``ablation.png``)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..atomic import write_atomic
from ..plots import pyplot, save_figure
from ..train.config import TrainConfig
from .runner import Run, metric_of
from .stats import compare, mean_std

__all__ = ["analyse", "cumulative_table", "describe_change", "metric_name", "sentence", "write_outputs"]

#: how the metrics an ablation compares on are named in its sentence, chart and table
METRIC_NAMES = {"top1": "top-1", "top5": "top-5", "balanced_accuracy": "balanced accuracy",
                "average_incremental": "average incremental accuracy", "last": "last accuracy"}


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def analyse(runs: list[Run], metric: str = "top1") -> dict:
    """Per variant its values by seed, mean and spread, and its paired difference to the base."""
    values: dict[str, dict[int, float]] = {}
    seconds: dict[str, list[float]] = {}
    changes: dict[str, dict] = {}
    split = None
    for run in runs:
        s = run.summary()
        if s is None:
            continue
        value, split = metric_of(s, metric)
        values.setdefault(run.variant.name, {})[run.seed] = value
        seconds.setdefault(run.variant.name, []).append(float(s.get("total_seconds") or 0.0))
        changes[run.variant.name] = run.variant.changes
    if "base" not in values:
        raise ValueError("no finished base run to compare with")
    base_mean, base_std = mean_std(list(values["base"].values()))
    rows = []
    for name, by_seed in values.items():
        if name == "base":
            continue
        e = compare(values["base"], by_seed, name)
        rows.append({**e.as_dict(), "changes": changes[name], "runs": by_seed,
                     "seconds": sum(seconds[name]) / len(seconds[name]),
                     "verdict": ("effect" if e.significant else "within the seed-to-seed spread" if e.seeds > 1
                                 else "one seed: no interval")})
    return {"metric": metric, "split": split, "base": {"runs": values["base"], "mean": base_mean, "std": base_std,
                                                       "seconds": sum(seconds["base"]) / len(seconds["base"])},
            "variants": rows}


def describe_change(name: str, changes: dict) -> str:
    """"removing label smoothing", "setting cutmix to 1.0"."""
    if name.startswith("-"):
        return f"removing {name[1:].replace('_', ' ').replace('-', ' ')}"
    return ", ".join(f"setting {k.replace('_', ' ')} to {v}" for k, v in changes.items())


def _budget(cfg: TrainConfig) -> str:
    if cfg.mode == "incremental" and cfg.incremental.epochs_per_task:  # it sets the budget aside
        return f"Over {cfg.incremental.epochs_per_task:g} epochs per task"
    if cfg.schedule.budget:
        b = cfg.schedule.budget
        return f"Under a {b / 3600:g}-hour budget" if b >= 3600 else f"Under a {b / 60:g}-minute budget" if b >= 60 \
            else f"Under a {b:g}-second budget"
    return f"Over {cfg.schedule.epochs:g} epochs"


def sentence(result: dict, cfg: TrainConfig) -> str:
    """The strongest measured effect, with its interval and seeds (or, when no interval excludes
    zero, the largest difference and that it is within the seed-to-seed spread)."""
    rows = result["variants"]
    if not rows:
        return "No variant was measured."
    significant = [r for r in rows if r["significant"]]
    pick = max(significant or rows, key=lambda r: abs(r["diff"]))
    what = describe_change(pick["variant"], pick["changes"])
    name = metric_name(result["metric"])
    points = 100 * abs(pick["diff"])
    head = f"{_budget(cfg)}, {what}"
    if pick["low"] is None:
        return f"{head} changes {name} by {100 * pick['diff']:+.1f} points (one seed: no interval)."
    lo, hi = sorted((100 * abs(pick["low"]), 100 * abs(pick["high"]))) if pick["significant"] else \
        (100 * pick["low"], 100 * pick["high"])
    ci = f"95% CI {lo:.1f}-{hi:.1f}" if pick["significant"] else f"95% CI {lo:+.1f} to {hi:+.1f}"
    seeds = f"{pick['seeds']} seeds"
    if not pick["significant"]:
        return (f"{head} changes {name} by {100 * pick['diff']:+.1f} points, within the seed-to-seed spread "
                f"({ci}, {seeds}); no component's effect is outside it.")
    verb = "costs" if pick["diff"] < 0 else "adds"
    return f"{head} {verb} {points:.1f} points of {name} ({ci}, {seeds})."


def chart(result: dict, path: Path) -> None:
    plt = pyplot()
    rows = result["variants"]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.6))
    for k, r in enumerate(rows):
        err = None if r["low"] is None else [[100 * (r["diff"] - r["low"])], [100 * (r["high"] - r["diff"])]]
        colour = ("#c0392b" if r["diff"] < 0 else "#27ae60") if r["significant"] else "#95a5a6"
        ax.barh(k, 100 * r["diff"], xerr=err, color=colour, capsize=4)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [r["variant"] for r in rows])
    ax.invert_yaxis()
    name = metric_name(result["metric"])
    ax.set_xlabel(f"difference to the base, {name} points ({result['split']}; 95% CI over seeds)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=120, format="png")


def write_outputs(out: Path, result: dict, cfg: TrainConfig, cumulative: list[dict] | None = None) -> dict:
    """ablation.json, ablation.csv, ablation.png in ``out``; returns the result with its sentence."""
    result = {**result, "sentence": sentence(result, cfg), "cumulative": cumulative,
              "budget_seconds": cfg.schedule.budget, "epochs": cfg.schedule.epochs}
    write_atomic(out / "ablation.json", json.dumps(result, indent=1, default=str))
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(["variant", "changes", "seeds", "mean", "std", "diff", "ci_low", "ci_high", "significant", "verdict"])
    b = result["base"]
    w.writerow(["base", "", len(b["runs"]), b["mean"], b["std"], "", "", "", "", ""])
    for r in result["variants"]:
        w.writerow([r["variant"], json.dumps(r["changes"]), r["seeds"], r["mean"], r["std"], r["diff"], r["low"],
                    r["high"], r["significant"], r["verdict"]])
    write_atomic(out / "ablation.csv", text.getvalue())
    if result["variants"]:
        chart(result, out / "ablation.png")
    return result


def cumulative_table(runs: list[Run], metric: str = "top1") -> list[dict]:
    """Base, then each change added in turn: mean and spread of the metric, mean time."""
    by: dict[str, dict] = {}
    for run in runs:
        s = run.summary()
        if s is None:
            continue
        row = by.setdefault(run.variant.name, {"variant": run.variant.name, "changes": run.variant.changes,
                                               "values": [], "seconds": []})
        row["values"].append(metric_of(s, metric)[0])
        row["seconds"].append(float(s.get("total_seconds") or 0.0))
    out = []
    for row in by.values():
        m, sd = mean_std(row["values"])
        out.append({"variant": row["variant"], "changes": row["changes"], "mean": m, "std": sd,
                    "seeds": len(row["values"]), "seconds": sum(row["seconds"]) / len(row["seconds"])})
    return out
