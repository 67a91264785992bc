"""Evaluation: test-time augmentation (the views of a batch and their weighted logits), and the
trainer's evaluations (:class:`Evaluations`: of a split, when they are due, their rows)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import ddp, recipe
from .metrics import DETAIL_CLASSES, Tally

__all__ = ["Evaluations", "tta_logits", "tta_views"]


def tta_views(tta: bool, shift: int, x: torch.Tensor | None = None) -> list:
    """Test-time augmentation: ``[(weight, view of x)]``. None: the image; flip: it and its
    mirror; with ``shift`` pixels, half the weight moves to the two views shifted up-left and
    down-right (reflected at the border), each with its mirror. ``x=None`` lists the weights."""
    if not tta:
        return [(1.0, x)]
    views = [x, None if x is None else x.flip(3)]
    if not shift:
        return [(0.5, v) for v in views]
    if x is not None:
        h, w = x.shape[2:]
        padded = F.pad(x, (shift,) * 4, mode="reflect")
        for dy, dx in ((0, 0), (2 * shift, 2 * shift)):
            # laid out as x is, so that a compiled model sees the strides it was compiled for
            moved = torch.empty_like(x).copy_(padded[:, :, dy:dy + h, dx:dx + w])
            views += [moved, moved.flip(3)]
    else:
        views += [None] * 4
    shifted = recipe.get("tta_shift_weight")
    return [((1 - shifted) / 2, v) for v in views[:2]] + [(shifted / 4, v) for v in views[2:]]


def tta_logits(model: torch.nn.Module, x: torch.Tensor, tta: bool, shift: int) -> torch.Tensor:
    """The model's float logits of normalised images ``x``, averaged over the TTA views."""
    return sum(w * model(view).float() for w, view in tta_views(tta, shift, x))


class Evaluations:
    """The evaluations of a :class:`~fastvis.train.loop.Trainer`: of a split (with TTA), when
    they are due during training (every epoch, spaced under a budget, inside epochs for short
    runs), and their rows in the history."""

    @torch.no_grad()
    def evaluate(self, dataset=None, tta: bool = False, limit: int | None = None) -> dict:
        """top-1, top-5 and loss on ``dataset`` (default: the one watched during training)."""
        dataset = self.watch if dataset is None else dataset
        model = self.eval_model
        model.eval()
        n = len(dataset) if limit is None else min(limit, len(dataset))
        idx = torch.arange(self.world.rank, n, self.world.size)
        c1 = c5 = loss_sum = 0.0
        tally = Tally(self.data.num_classes, self.device, self.positive)
        for s in range(0, len(idx), self.cfg.eval.eval_batch_size):
            x, y = dataset.batch(idx[s : s + self.cfg.eval.eval_batch_size])
            x = self.normalize(x)
            with self.autocast():
                logits = tta_logits(model, x, tta, self.cfg.eval.tta_shift)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            top5 = logits.topk(min(5, logits.shape[1]), 1).indices
            c1 += float((top5[:, 0] == y).sum())
            c5 += float((top5 == y[:, None]).any(1).sum())
            tally.add(logits, y)
        c1, c5, loss_sum, count = ddp.all_sum(self.world, [c1, c5, loss_sum, float(len(idx))], self.device)
        more = tally.result(lambda v: ddp.all_sum(self.world, v, self.device), lambda a: ddp.all_cat(self.world, a))
        return {"top1": c1 / count, "top5": c5 / count, "val_loss": loss_sum / count, **more}

    def _time_evaluation(self) -> None:
        """Time part of an evaluation (after a warm-up one) for the budget's reserve."""
        limit = min(len(self.watch), 2 * self.cfg.eval.eval_batch_size)
        self.evaluate(limit=limit)
        self.sync()
        t = self.clock()
        self.evaluate(limit=limit)
        self.sync()
        self.budget.observe_eval(self.clock() - t, limit / len(self.watch))
        b = self.budget
        self.recorder.log(f"budget {b.budget:.0f}s: evaluation {b.eval_time:.1f}s, {b.reserve():.0f}s kept for the "
                          f"end; training until {b.deadline():.0f}s")

    def _evaluate_watched(self) -> None:
        t = self.clock()
        self.state.train_seconds = self._train_seconds()
        self._record(self.evaluate(), self.watch_split)
        if self.budget is not None:
            self.budget.observe_eval(self.clock() - t)

    def _evaluation_inside_epoch_due(self) -> bool:
        """Whether to evaluate after this step, inside an epoch: a run of fewer epochs than the
        recipe's ``curve_points`` evaluates every 1/curve_points of its steps (rounded up), so
        that its curve has that many points with the final evaluation (with a budget: of the steps
        it is expected to train, once the speed is known, and while evaluations take at most their
        share of the time). Such a run evaluates at those steps only, at the end of an epoch too."""
        st, per_epoch, points = self.state, self.steps_per_epoch, recipe.get("curve_points")
        if not self.evaluates_during_training:
            return False
        if self.eval_interval is None:
            if self.budget is None:
                total = st.total_steps
            elif self.budget.steps >= 10:
                total = st.phase_step + self.budget.steps_left()
            else:
                return False
            self.eval_interval = max(1, -(-total // points)) if total < points * per_epoch else 0
        if not self.eval_interval or st.phase_step % self.eval_interval:
            return False
        if self.budget is None:
            return True
        b = self.budget
        return b.eval_time <= b.MAX_EVAL_SHARE * self.eval_interval * b.step_time and b.room_for_eval()

    def _evaluation_due(self, epoch_seconds: float) -> bool:
        """At the end of an epoch: every epoch with --epochs; with a budget, spaced to take at most
        10% of the time and only while one fits before the deadline; in a run that evaluates at
        steps spread over its length (fewer epochs than curve points), only at one of those."""
        if not self.evaluates_during_training:
            return False
        if self.eval_interval:
            return self._evaluation_inside_epoch_due()
        if self.budget is None:
            return True
        every = self.budget.eval_every(epoch_seconds)
        return self.state.epoch % every == 0 and self.budget.room_for_eval()

    def _record(self, metrics: dict, split: str, final: bool = False) -> None:
        """One evaluation: a row of the history (metrics.jsonl); the best top-1 is that of the
        watched split (never the test split when there is a holdout)."""
        st = self.state
        row = {"epoch": st.step / self.steps_per_epoch, "step": st.step, "time": self.clock(), "split": split,
               "train_loss": self.last_loss, "lr": self.lr,
               "images_per_second": st.step * self.cfg.optim.batch_size / st.train_seconds if st.train_seconds
               else None, **metrics}
        if final:
            row["final"] = True
        elif self.data.num_classes > DETAIL_CLASSES:  # per-class numbers of many classes: the final rows only
            row.pop("per_class", None)
            row.pop("confusion", None)
        st.history.append(row)
        value = metrics.get(self.cfg.eval.metric)
        if split == self.watch_split:
            st.best_top1 = max(st.best_top1, metrics["top1"])
            if value is not None and (st.best is None or value > st.best):
                st.best, st.best_epoch = value, row["epoch"]
        self.recorder.record(row, self.data.num_classes)
