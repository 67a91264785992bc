"""The run's outputs: curve.png (epoch vs top-1) and report.pdf (one A4 page)."""
from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve(ax, history: list[dict]) -> None:
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [100 * h["top1"] for h in history], "o-", label="top-1")
    ax.plot(epochs, [100 * h["top5"] for h in history], "s--", alpha=0.6, label="top-5")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")


def write_curve(history: list[dict], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    _curve(ax, history)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_report(summary: dict, hyper: dict, history: list[dict], path: Path) -> None:
    """One A4 page: results, hyper-parameters and the accuracy curve."""
    plt = _pyplot()
    fig = plt.figure(figsize=(8.27, 11.69))  # A4 portrait, inches
    fig.text(0.07, 0.955, f"fastvis training report: {summary['model']} on {summary['dataset']}", fontsize=15,
             weight="bold")
    results = [
        ("best top-1", f"{100 * summary['best_top1']:.2f} %"),
        ("final top-1 / top-5", f"{100 * summary['top1']:.2f} % / {100 * summary['top5']:.2f} %"),
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
    y -= 0.04
    fig.text(0.07, y, "Hyper-parameters", fontsize=12, weight="bold")
    items = [(k, _fmt(v)) for k, v in hyper.items() if v not in (None, "", False)]
    col_y = y
    for i, (k, v) in enumerate(items):
        col = i % 2
        if col == 0:
            col_y -= 0.019
        fig.text(0.09 + 0.45 * col, col_y, f"{k}: {v}"[:60], fontsize=8.5, family="monospace")
    ax = fig.add_axes([0.12, 0.07, 0.8, min(0.32, col_y - 0.12)])
    if history:
        _curve(ax, history)
    fig.savefig(path, format="pdf")
    plt.close(fig)
