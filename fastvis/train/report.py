"""The run's outputs: curve.png (epoch vs top-1) and report.pdf (one A4 page)."""
from __future__ import annotations

from pathlib import Path

from ..plots import SPLIT_NAMES, ablation_rows, accuracy_curve, fmt, pyplot, save_figure


def write_curve(history: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    accuracy_curve(ax, history)
    fig.tight_layout()
    save_figure(fig, path, dpi=120, format="png")


def _ablation_section(fig, ablation: dict, y: float) -> float:
    """The table of an ablation and its sentence, from ``y`` down; returns where it ends."""
    import textwrap

    fig.text(0.07, y, "What makes it converge fast", fontsize=12, weight="bold")
    for line in textwrap.wrap(ablation["sentence"], 105):
        y -= 0.018
        fig.text(0.09, y, line, fontsize=9, style="italic")
    name = "top-1" if ablation.get("metric", "top1") == "top1" else ablation["metric"]
    header = ["variant", f"{name} % ({ablation.get('split')})", "difference [95% CI]", "seeds"]
    xs = (0.09, 0.36, 0.58, 0.86)
    y -= 0.024
    for x, h in zip(xs, header):
        fig.text(x, y, h, fontsize=8.5, weight="bold")
    for row in ablation_rows(ablation)[:10]:
        y -= 0.016
        for x, cell in zip(xs, row):
            fig.text(x, y, cell[:34], fontsize=8, family="monospace")
    y -= 0.016
    fig.text(0.09, y, "* the 95% interval of the paired difference excludes zero", fontsize=7, color="0.4")
    return y


METRIC_NAMES = {"top1": "top-1", "top5": "top-5", "balanced_accuracy": "balanced accuracy", "auc": "ROC AUC"}
PER_CLASS_ROWS = 10  # classes listed on the page


def _pct(v, metric: str = "top1") -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if metric == "auc" else f"{100 * v:.2f} %"


def _scores(m: dict, split: str, summary: dict) -> list[tuple[str, str]]:
    """The final numbers of one split: top-1 (and top-5 for more than 5 classes), balanced
    accuracy, and for two classes the AUC and the recall at the false-alarm rate."""
    k = summary.get("num_classes") or 0
    if k > 5:
        rows = [(f"final top-1 / top-5 ({split})", f"{100 * m['top1']:.2f} % / {100 * m['top5']:.2f} %")]
    else:
        rows = [(f"final top-1 ({split})", f"{100 * m['top1']:.2f} %")]
    if m.get("balanced_accuracy") is not None:
        rows.append((f"balanced accuracy ({split})", _pct(m["balanced_accuracy"])))
    if m.get("auc") is not None or m.get("recall_at_fpr") is not None:
        classes = summary.get("classes") or []
        pos = summary.get("positive_class")
        name = classes[pos] if pos is not None and pos < len(classes) else f"class {pos}"
        rate = summary.get("false_alarm_rate") or 0.05
        rows.append((f"AUC / {name} recall at {100 * rate:g} % FPR",
                     f"{_pct(m.get('auc'), 'auc')} / {_pct(m.get('recall_at_fpr'))}"))
    return rows


def _per_class_section(fig, per_class: dict, confusion, classes: list[str], y: float) -> float:
    """Precision, recall and support of each class, and its row of the confusion matrix."""
    fig.text(0.07, y, "Per class (final evaluation)", fontsize=12, weight="bold")
    n = len(per_class["recall"])
    names = [classes[i] if i < len(classes) else str(i) for i in range(n)]
    header = ["class", "precision", "recall", "samples", "predicted as: " + " / ".join(n_[:8] for n_ in names)]
    xs = (0.09, 0.3, 0.42, 0.52, 0.63)
    y -= 0.02
    for x, h in zip(xs, header):
        fig.text(x, y, h[:48], fontsize=8.5, weight="bold")
    for i in range(n):
        y -= 0.016
        row = [names[i][:22], _pct(per_class["precision"][i]), _pct(per_class["recall"][i]),
               str(per_class["support"][i]), " / ".join(str(v) for v in confusion[i]) if confusion else ""]
        for x, cell in zip(xs, row):
            fig.text(x, y, cell[:48], fontsize=8, family="monospace")
    return y


def write_report(summary: dict, hyper: dict, history: list[dict], path: Path, ablation: dict | None = None) -> None:
    """One A4 page: results, hyper-parameters, the measured ablation when there is one ("What
    makes it converge fast": its table and its sentence) and the accuracy curve."""
    plt = pyplot()
    fig = plt.figure(figsize=(8.27, 11.69))  # A4 portrait, inches
    fig.text(0.07, 0.955, f"fastvis training report: {summary['model']} on {summary['dataset']}", fontsize=15,
             weight="bold")
    split = summary.get("split", "test")
    finals = summary.get("final") or {split: summary}
    results = []
    for name in [split, *[k for k in finals if k != split]]:
        results += _scores(finals.get(name, summary), SPLIT_NAMES.get(name, name), summary)
    watched = SPLIT_NAMES.get(next(iter(finals)), "test")
    metric = summary.get("metric", "top1")
    if metric != "top1" and summary.get("best") is not None:
        results.append((f"best {METRIC_NAMES.get(metric, metric)} ({watched})", _pct(summary["best"], metric)))
    if summary.get("defect_pastes") is not None:
        results.append(("synthetic samples (defect pastes)", f"{summary['defect_pastes']:,} "
                        f"({100 * (summary.get('synthetic_share') or 0):.1f} % of the training samples seen)"))
    results += [
        (f"best top-1 ({watched})", f"{100 * summary['best_top1']:.2f} %"),
        ("training time", f"{summary['train_seconds']:.1f} s (budget {summary.get('budget_seconds') or '-'} s)"),
        ("total time", f"{summary['total_seconds']:.1f} s"),
        ("epochs", f"{summary['epochs']:.2f}"),
        ("parameters", f"{summary['params'] / 1e6:.2f} M"),
        ("FLOPs per image (forward)", f"{summary['flops'] / 1e9:.3f} G"),
        ("image size", "x".join(str(s) for s in summary["image_size"])),
        ("throughput", f"{summary.get('images_per_second', 0):,.0f} images/s"),
        ("device", summary["device"]),
    ]
    y = 0.915
    fig.text(0.07, y, "Results", fontsize=12, weight="bold")
    for k, v in results:
        y -= 0.022
        fig.text(0.09, y, k, fontsize=9.5)
        fig.text(0.42, y, v, fontsize=9.5, family="monospace")
    y -= 0.035
    fig.text(0.07, y, "Hyper-parameters", fontsize=12, weight="bold")
    items = [(k, fmt(v)) for k, v in hyper.items() if v not in (None, "", False)]
    y -= 0.004
    for i, (k, v) in enumerate(items):
        if i % 3 == 0:
            y -= 0.016
        fig.text(0.09 + 0.29 * (i % 3), y, f"{k}: {v}"[:38], fontsize=7.5, family="monospace")
    per_class = (finals.get(split) or {}).get("per_class")
    if per_class and len(per_class["recall"]) <= PER_CLASS_ROWS:
        y = _per_class_section(fig, per_class, finals[split].get("confusion"), summary.get("classes") or [], y - 0.035)
    if ablation:
        y = _ablation_section(fig, ablation, y - 0.035)
    top = y - 0.05  # the chart right under the last section (no blank band above it), at most 0.35 high
    height = min(0.35, top - 0.06)
    ax = fig.add_axes([0.12, top - height, 0.8, height])
    if history:
        accuracy_curve(ax, history)
    save_figure(fig, path, format=Path(path).suffix[1:] or "pdf")  # report.pdf (or a .png to look at)
