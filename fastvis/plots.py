"""Figures and tables shared by the reports of fastvis (the run's page, the ablation's chart and
slides, the class-incremental page): matplotlib without a screen, the accuracy curve, value
formatting and the ablation table's rows."""
from __future__ import annotations

__all__ = ["SPLIT_NAMES", "ablation_rows", "accuracy_curve", "fmt", "pyplot", "save_figure"]

SPLIT_NAMES = {"holdout": "held-out validation", "test": "test"}


def pyplot():
    """matplotlib.pyplot drawing into files (the Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, **savefig) -> None:
    """``fig`` drawn in memory, then written to ``path`` atomically, and closed: a full disk is one
    OSError with the old file left as it was (matplotlib's PDF writer, failing half-way through a
    file, raises errors of its own, zlib's or an AttributeError). ``fig`` may also be a function
    of a binary file that writes the pages (several figures into one PDF)."""
    import io

    from .atomic import write_atomic

    buf = io.BytesIO()
    try:
        fig(buf) if callable(fig) else fig.savefig(buf, **savefig)
    finally:
        if not callable(fig):
            pyplot().close(fig)
    write_atomic(path, buf.getvalue())


def accuracy_curve(ax, history: list[dict]) -> None:
    """Top-1 and top-5 of the split watched during training (the first one evaluated), and the
    final test point when that is another split."""
    watched = history[0].get("split", "test") if history else "test"
    rows = [h for h in history if h.get("split", "test") == watched]
    epochs = [h["epoch"] for h in rows]
    name = SPLIT_NAMES.get(watched, watched)
    ax.plot(epochs, [100 * h["top1"] for h in rows], "o-", label=f"top-1 ({name})")
    few = bool(rows) and 0 < len((rows[0].get("per_class") or {}).get("recall", [])) <= 5
    if few and all(h.get("balanced_accuracy") is not None for h in rows):  # top-5 of few classes says nothing
        ax.plot(epochs, [100 * h["balanced_accuracy"] for h in rows], "s--", alpha=0.6,
                label=f"balanced accuracy ({name})")
    elif not few:
        ax.plot(epochs, [100 * h["top5"] for h in rows], "s--", alpha=0.6, label=f"top-5 ({name})")
    for h in history:
        if h.get("split", "test") != watched:
            ax.plot([h["epoch"]], [100 * h["top1"]], "k*", ms=10, label=f"final top-1 ({SPLIT_NAMES.get(h['split'])})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def ablation_rows(result: dict) -> list[list[str]]:
    """Rows of the report's and the slides' table: variant, top-1 mean +- sd, difference [CI]."""
    b = result["base"]
    rows = [["base", f"{100 * b['mean']:.2f} +- {100 * b['std']:.2f}", "", f"{len(b['runs'])}"]]
    for r in result["variants"]:
        ci = f"[{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]" if r["low"] is not None else ""
        mark = " *" if r["significant"] else ""
        rows.append([r["variant"], f"{100 * r['mean']:.2f} +- {100 * r['std']:.2f}",
                     f"{100 * r['diff']:+.2f} {ci}{mark}", f"{r['seeds']}"])
    return rows
