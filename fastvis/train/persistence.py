"""A run's checkpoints: written after each epoch (and phase) by the main process, read back by
``--resume`` into a run built the same way (the mode's own checks and state through the
trainer's ``check_checkpoint`` and ``restore_extra`` hooks), with metrics.jsonl rewritten to the
checkpoint's history so that no row is there twice."""
from __future__ import annotations

import json

from .. import FastvisError
from ..atomic import write_atomic
from . import checkpoint
from .state import restore, snapshot

__all__ = ["Persistence"]


class Persistence:
    """The checkpoint half of :class:`fastvis.train.loop.Trainer`."""

    def save_checkpoint(self) -> None:
        if self.world.main:
            state = snapshot(self.state, self.raw_model, self.optimizer, self.ema, self.lookahead,
                             steps_per_epoch=self.steps_per_epoch, config=self.cfg.as_dict(),
                             model_name=self.model_name, num_classes=self.data.num_classes,
                             in_channels=int(self.data.image_shape[0]), mean=self.data.mean, std=self.data.std,
                             hard_proxy=self.selector.state_dict() if self.selector is not None else None,
                             choices={"model": self.model_reason, "amp": self.amp_reason},
                             **self.checkpoint_extra())
            checkpoint.save_atomic(state, self.recorder.out / "checkpoint.pt")

    def resume(self, path: str) -> None:
        saved = checkpoint.load(path, map_location=self.device, resumable=True)
        self.check_checkpoint(saved, path)
        if (self.selector is None) != (saved.get("hard_proxy") is None):  # the same batches, or not exact
            raise FastvisError(f"{path}: the run trained on " + ("whole batches; resume it without --hard-fraction"
                               if self.selector is not None else "the hardest share of its batches; resume it with "
                               f"--hard-fraction {saved['config']['optim']['hard_fraction']}"))
        try:
            restore(saved, self.state, self.raw_model, self.optimizer, self.ema, self.lookahead)
            if self.selector is not None:
                self.selector.load_state_dict(saved["hard_proxy"])
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:
            raise FastvisError(f"{path}: not a checkpoint of this run (its state does not fit: "
                               f"{checkpoint.mismatch(exc)})") from None
        self.restore_extra(saved, path)
        # why the start chose its model and precision: config.json now names them as if given
        kept = saved.get("choices") or {}
        self.model_reason, self.amp_reason = kept.get("model", self.model_reason), kept.get("amp", self.amp_reason)
        st = self.state
        if self.world.main:  # metrics.jsonl holds the checkpoint's history, no row twice
            text = "".join(f"{json.dumps(row)}\n" for row in st.history)
            write_atomic(self.recorder.out / "metrics.jsonl", text)
        self.clock.offset = st.train_seconds
        self.recorder.log(f"resumed from {path} at {self.where()} ({100 * st.progress:.0f}% of the schedule)")
