"""Everything a run reports: progress on the terminal, ``metrics.jsonl`` (one row per
evaluation), Weights & Biases, and at the end ``summary.json``, ``curve.png`` and
``report.pdf``. Only the main process writes."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .. import FastvisError
from ..atomic import lock_folder, write_atomic
from .report import write_curve, write_report

__all__ = ["Recorder"]


def _more(row: dict, num_classes: int) -> str:
    if num_classes > 5:
        return f"top-5 {100 * row['top5']:.2f}%  "
    text = f"balanced {100 * row['balanced_accuracy']:.2f}%  " if row.get("balanced_accuracy") is not None else ""
    return text + (f"AUC {row['auc']:.3f}  " if row.get("auc") is not None else "")


class Recorder:
    def __init__(self, out: Path, main: bool, progress: bool):
        self.out, self.main, self.progress = Path(out), main, progress
        self.wandb = None
        self.bar = None
        self._lock: int | None = None

    def claim(self) -> None:
        """Create the output folder and hold its lock for the run (:func:`fastvis.atomic.lock_folder`):
        a second run into the same folder is refused, naming the first."""
        if self.main and self._lock is None:
            self._lock = lock_folder(self.out)

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def log(self, text: str) -> None:
        if self.main and self.progress:
            if self.bar is not None:  # a line of its own above the progress bar, not inside the bar's
                self.bar.write(text)
            else:
                print(text, flush=True)

    def start(self, wandb_options: dict | None, config: dict) -> None:
        """Create the output folder (and the wandb run when asked)."""
        if not self.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        if wandb_options is None:
            return
        try:
            import wandb
        except ImportError:
            raise FastvisError("--wandb needs wandb installed (pip install 'fastvis[wandb]')") from None
        self.wandb = wandb.init(project=wandb_options["project"], mode=wandb_options["mode"], dir=str(self.out),
                                config=config)

    # -- progress ------------------------------------------------------------------------------
    def open_bar(self, epoch: int, steps: int) -> None:
        if not (self.main and self.progress):
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=steps, desc=f"epoch {epoch}", unit="step", leave=False)

    def update_bar(self, steps: int, batch: int, loss: float, lr: float, steps_left: int, budget=None) -> None:
        """``left`` on the bar: a budgeted run's own training time left (``budget.seconds_left()``),
        otherwise the steps left at the bar's rate."""
        if self.bar is None:
            return
        self.bar.update(steps)
        rate = self.bar.format_dict.get("rate") or 0
        eta = budget.seconds_left() if budget is not None else steps_left / rate if rate else float("nan")
        self.bar.set_postfix(img_s=f"{rate * batch:,.0f}", loss=f"{loss:.3f}", lr=f"{lr:.3g}", left=f"{eta:.0f}s")

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    # -- evaluations -----------------------------------------------------------------------------
    def record(self, row: dict, num_classes: int = 0) -> None:
        """One evaluation: a line of metrics.jsonl, a wandb step, a line on the terminal (top-5
        only for more than 5 classes; balanced accuracy and AUC for few)."""
        if not self.main:
            return
        self.write_row(row)
        self.log(f"epoch {row['epoch']:.2f}: top-1 {100 * row['top1']:.2f}%  {_more(row, num_classes)}"
                 f"val loss {row['val_loss']:.3f}  ({row['time']:.0f}s)")

    def write_row(self, row: dict) -> None:
        """A line of metrics.jsonl and a wandb step."""
        if not self.main:
            return
        with open(self.out / "metrics.jsonl", "a") as fp:
            fp.write(json.dumps(row) + "\n")
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=row["step"])

    # -- the end -----------------------------------------------------------------------------------
    def finish(self, summary: dict, history: list[dict], clock) -> None:
        """curve.png, report.pdf, summary.json (its total time read last), wandb summary."""
        if not self.main:
            return
        write_curve(history, self.out / "curve.png")
        write_report(summary, summary["hyper"], history, self.out / "report.pdf")
        self.close(summary, clock)
        self.log(f"done: top-1 {100 * summary['top1']:.2f}% (best {100 * summary['best_top1']:.2f}%), "
                 f"{_more(summary, summary.get('num_classes', 0))}{summary['train_seconds']:.0f}s training, "
                 f"{summary['total_seconds']:.0f}s in all -> {self.out}")

    def close(self, summary: dict, clock) -> None:
        """summary.json (its total time read last) and the wandb run's summary."""
        if not self.main:
            return
        summary["total_seconds"] = clock()
        write_atomic(self.out / "summary.json", json.dumps(summary, indent=1))
        if self.wandb is not None:
            self.wandb.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
            self.wandb.finish()
