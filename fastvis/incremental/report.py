"""A class-incremental run's figures: accuracy on the classes seen vs. the number of classes,
and the accuracy matrix as a heat map (``incremental.png``), on a one-page ``report.pdf``."""
from __future__ import annotations

from pathlib import Path

from ..plots import SPLIT_NAMES, fmt, pyplot, save_figure

__all__ = ["draw_incremental", "write_incremental_report"]


def draw_incremental(ax_curve, ax_matrix, block: dict, split: str) -> None:
    classes, n = [], 0
    for task in block["tasks"]:
        n += len(task)
        classes.append(n)
    seen = [100 * v for v in block["seen"]]
    ax_curve.plot(classes[:len(seen)], seen, "o-", label="classifier")
    if "nme" in block:
        ax_curve.plot(classes[:len(seen)], [100 * v for v in block["nme"]["seen"]], "s--", label="nearest mean")
    ax_curve.set_xlabel("classes seen")
    ax_curve.set_ylabel(f"accuracy on the classes seen (%, {SPLIT_NAMES.get(split, split)})")
    ax_curve.set_ylim(0, 100)
    ax_curve.grid(alpha=0.3)
    ax_curve.legend(loc="upper right")
    t = len(block["matrix"])
    grid = [[100 * row[j] if j < len(row) else float("nan") for j in range(t)] for row in block["matrix"]]
    im = ax_matrix.imshow(grid, vmin=0, vmax=100, cmap="viridis")
    ax_matrix.set_xlabel("task evaluated")
    ax_matrix.set_ylabel("after training task")
    ax_matrix.set_xticks(range(t), [str(k + 1) for k in range(t)])
    ax_matrix.set_yticks(range(t), [str(k + 1) for k in range(t)])
    if t <= 12:
        for i in range(t):
            for j in range(i + 1):
                ax_matrix.text(j, i, f"{grid[i][j]:.0f}", ha="center", va="center", fontsize=6,
                               color="white" if grid[i][j] < 60 else "black")
    ax_matrix.figure.colorbar(im, ax=ax_matrix, fraction=0.046, label="accuracy (%)")


def write_incremental_report(summary: dict, png: Path, pdf: Path) -> None:
    plt = pyplot()
    block, split = summary["incremental"], summary["split"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    draw_incremental(a, b, block, split)
    fig.tight_layout()
    save_figure(fig, png, dpi=120, format="png")

    fig = plt.figure(figsize=(8.27, 11.69))  # A4 portrait
    fig.text(0.07, 0.955, f"fastvis class-incremental report: {block['method']} on {summary['dataset']}",
             fontsize=15, weight="bold")
    name = SPLIT_NAMES.get(split, split)

    def pct(v):
        return "-" if v is None else f"{100 * v:.2f} %"

    rows = [("protocol", f"{block['protocol']} ({len(block['tasks'])} tasks), memory {block['memory']}"),
            (f"average incremental accuracy ({name})", pct(block["average_incremental"])),
            (f"last accuracy ({name})", pct(block["last"])),
            ("average forgetting", pct(block["forgetting"])),
            ("backward transfer", pct(block["backward_transfer"]))]
    if "nme" in block:
        rows.append(("nearest-mean: average incremental / last",
                     f"{pct(block['nme']['average_incremental'])} / {pct(block['nme']['last'])}"))
    rows += [("training time", f"{summary['train_seconds']:.1f} s (budget {summary.get('budget_seconds') or '-'} s)"),
             ("model", f"{summary['model']}, {summary['params'] / 1e6:.2f} M parameters, "
                       f"{summary['flops'] / 1e9:.3f} GFLOPs per image"),
             ("image size", "x".join(str(s) for s in summary["image_size"])),
             ("device", summary["device"]),
             ("class order", f"{block['class_order_spec']}: {' '.join(map(str, block['class_order'][:12]))} ...")]
    y = 0.915
    fig.text(0.07, y, "Results", fontsize=12, weight="bold")
    for k, v in rows:
        y -= 0.021
        fig.text(0.09, y, k, fontsize=9)
        fig.text(0.47, y, v[:60], fontsize=9, family="monospace")
    y -= 0.03
    fig.text(0.07, y, "Hyper-parameters", fontsize=12, weight="bold")
    items = [(k, fmt(v)) for k, v in summary["hyper"].items() if v not in (None, "", False)]
    y -= 0.004
    for i, (k, v) in enumerate(items):
        if i % 3 == 0:
            y -= 0.016
        fig.text(0.09 + 0.29 * (i % 3), y, f"{k}: {v}"[:38], fontsize=7.5, family="monospace")
    top = y - 0.05
    a = fig.add_axes([0.1, 0.06, 0.36, top - 0.08])
    b = fig.add_axes([0.56, 0.06, 0.36, top - 0.08])
    draw_incremental(a, b, block, split)
    save_figure(fig, pdf, format="pdf")
