"""``slides.pdf``: a landscape deck for a three-minute talk, figures and tables only: the
headline with the accuracy curve, the ablation chart, the configuration table, and the
radiograph figure for runs with defect synthesis."""
from __future__ import annotations

from pathlib import Path

from ..plots import SPLIT_NAMES, ablation_rows, accuracy_curve, fmt, pyplot, save_figure

__all__ = ["write_slides"]

LANDSCAPE = (11.69, 8.27)


def _headline(plt, summary: dict, history: list[dict]):
    fig = plt.figure(figsize=LANDSCAPE)
    split = SPLIT_NAMES.get(summary.get("split", "test"), "test")
    budget = summary.get("budget_seconds")
    fig.text(0.05, 0.88, f"{100 * summary['top1']:.1f}%", fontsize=60, weight="bold")
    facts = [f"top-1, {split}", f"{summary['model']} on {summary['dataset']}",
             f"{summary['total_seconds'] / 60:.1f} min" + (f" of a {budget / 60:g}-min budget" if budget else ""),
             f"{summary['epochs']:.1f} epochs, {summary.get('images_per_second', 0):,.0f} images/s",
             summary["device"]]
    for k, line in enumerate(facts):
        fig.text(0.06, 0.78 - 0.06 * k, line, fontsize=18)
    ax = fig.add_axes([0.5, 0.12, 0.45, 0.75])
    if history:
        accuracy_curve(ax, history)
    return fig


def _ablation(plt, ablation: dict):
    rows = ablation["variants"]
    fig = plt.figure(figsize=LANDSCAPE)
    ax = fig.add_axes([0.25, 0.32, 0.7, 0.55])
    for k, r in enumerate(rows):
        err = None if r["low"] is None else [[100 * (r["diff"] - r["low"])], [100 * (r["high"] - r["diff"])]]
        colour = ("#c0392b" if r["diff"] < 0 else "#27ae60") if r["significant"] else "#95a5a6"
        ax.barh(k, 100 * r["diff"], xerr=err, color=colour, capsize=5)
    ax.axvline(0, color="k", lw=1)
    ax.set_yticks(range(len(rows)), [r["variant"] for r in rows], fontsize=14)
    ax.invert_yaxis()
    ax.set_xlabel("top-1 difference to the base (points, 95% CI)", fontsize=13)
    ax.grid(axis="x", alpha=0.3)
    table = fig.add_axes([0.05, 0.03, 0.9, 0.22])
    table.axis("off")
    t = table.table(cellText=ablation_rows(ablation),
                    colLabels=["variant", "top-1 %", "difference [95% CI]", "seeds"], loc="center")
    t.scale(1, 1.4)
    return fig


def _configuration(plt, hyper: dict):
    fig = plt.figure(figsize=LANDSCAPE)
    ax = fig.add_axes([0.05, 0.05, 0.9, 0.9])
    ax.axis("off")
    items = [(k, fmt(v)) for k, v in hyper.items() if v not in (None, "", False)]
    half = -(-len(items) // 2)
    cells = [[*items[i], *(items[i + half] if i + half < len(items) else ("", ""))] for i in range(half)]
    t = ax.table(cellText=cells, colLabels=["option", "value", "option", "value"], loc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(12)
    t.scale(1, 1.5)
    return fig


def _radiographs(plt, summary: dict):
    fig = plt.figure(figsize=LANDSCAPE)
    ax = fig.add_axes([0.15, 0.15, 0.7, 0.7])
    final = summary.get("final", {})
    names = list(final) or [summary.get("split", "test")]
    values = [100 * final[n]["top1"] if n in final else 100 * summary["top1"] for n in names]
    ax.bar(names, values, color="#2c3e50")
    ax.set_ylabel("top-1 (%)", fontsize=14)
    ax.set_title(f"radiographs: {summary.get('defect_pastes') or 0:,} synthetic defects pasted", fontsize=16)
    return fig


def write_slides(path: Path, summary: dict, history: list[dict], hyper: dict, ablation: dict | None = None) -> None:
    from matplotlib.backends.backend_pdf import PdfPages

    plt = pyplot()
    pages = [_headline(plt, summary, history)]
    if ablation and ablation.get("variants"):
        pages.append(_ablation(plt, ablation))
    pages.append(_configuration(plt, hyper))
    if summary.get("defect_pastes"):
        pages.append(_radiographs(plt, summary))
    def write(fp):
        with PdfPages(fp) as pdf:
            for fig in pages:
                pdf.savefig(fig)
                plt.close(fig)

    save_figure(write, path)
