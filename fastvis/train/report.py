"""The run's outputs: curve.png (epoch vs top-1) and report.pdf (one A4 page)."""
from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


SPLIT_NAMES = {"holdout": "held-out validation", "test": "test"}


def _curve(ax, history: list[dict]) -> None:
    """Top-1 and top-5 of the split watched during training (the first one evaluated), and the
    final test point when that is another split."""
    watched = history[0].get("split", "test") if history else "test"
    rows = [h for h in history if h.get("split", "test") == watched]
    epochs = [h["epoch"] for h in rows]
    name = SPLIT_NAMES.get(watched, watched)
    ax.plot(epochs, [100 * h["top1"] for h in rows], "o-", label=f"top-1 ({name})")
    ax.plot(epochs, [100 * h["top5"] for h in rows], "s--", alpha=0.6, label=f"top-5 ({name})")
    for h in history:
        if h.get("split", "test") != watched:
            ax.plot([h["epoch"]], [100 * h["top1"]], "k*", ms=10, label=f"final top-1 ({SPLIT_NAMES.get(h['split'])})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")


def write_curve(history: list[dict], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    _curve(ax, history)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _ablation_section(fig, ablation: dict, y: float) -> float:
    """The table of an ablation and its sentence, from ``y`` down; returns where it ends."""
    import textwrap

    from ..ablate.analysis import table_rows

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
    for row in table_rows(ablation)[:10]:
        y -= 0.016
        for x, cell in zip(xs, row):
            fig.text(x, y, cell[:34], fontsize=8, family="monospace")
    y -= 0.016
    fig.text(0.09, y, "* the 95% interval of the paired difference excludes zero", fontsize=7, color="0.4")
    return y


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_report(summary: dict, hyper: dict, history: list[dict], path: Path, ablation: dict | None = None) -> None:
    """One A4 page: results, hyper-parameters, the measured ablation when there is one ("What
    makes it converge fast": its table and its sentence) and the accuracy curve."""
    plt = _pyplot()
    fig = plt.figure(figsize=(8.27, 11.69))  # A4 portrait, inches
    fig.text(0.07, 0.955, f"fastvis training report: {summary['model']} on {summary['dataset']}", fontsize=15,
             weight="bold")
    split = summary.get("split", "test")
    results = [
        (f"final top-1 / top-5 ({SPLIT_NAMES.get(split, split)})",
         f"{100 * summary['top1']:.2f} % / {100 * summary['top5']:.2f} %"),
    ]
    for other, m in summary.get("final", {}).items():
        if other != split:
            results.append((f"final top-1 / top-5 ({SPLIT_NAMES.get(other, other)})",
                            f"{100 * m['top1']:.2f} % / {100 * m['top5']:.2f} %"))
    watched = SPLIT_NAMES.get(next(iter(summary.get("final", {"test": 0}))), "test")
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
    items = [(k, _fmt(v)) for k, v in hyper.items() if v not in (None, "", False)]
    y -= 0.004
    for i, (k, v) in enumerate(items):
        if i % 3 == 0:
            y -= 0.016
        fig.text(0.09 + 0.29 * (i % 3), y, f"{k}: {v}"[:38], fontsize=7.5, family="monospace")
    if ablation:
        y = _ablation_section(fig, ablation, y - 0.035)
    ax = fig.add_axes([0.12, 0.06, 0.8, min(0.3, y - 0.11)])
    if history:
        _curve(ax, history)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="pdf")
    plt.close(fig)
