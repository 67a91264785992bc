"""The evaluation at the end of each task of a class-incremental run."""
from __future__ import annotations

import numpy as np
import torch

from ..train.evaluation import tta_views
from .bias import apply_bias
from .methods import view_features

__all__ = ["evaluate_tasks"]


@torch.no_grad()
def evaluate_tasks(trainer, t: int) -> None:
    """After task ``t`` of ``trainer`` (an IncrementalTrainer): on every evaluation split, the
    accuracy on the classes seen (the model's outputs with the test-time augmentation's views, and
    the nearest-mean classifier when there are class means), per task and per class; recorded in
    the state, metrics.jsonl and the log."""
    st = trainer.state
    before, seen = trainer.bounds(t)
    for split, es in trainer.eval_sets.items():
        pos = trainer.position[es.labels]
        idx = (pos < seen).nonzero().flatten()
        hits, nme_hits = [], []
        for s in range(0, len(idx), trainer.cfg.eval.eval_batch_size):
            part = idx[s:s + trainer.cfg.eval.eval_batch_size]
            x, _ = es.batch(part)
            views = tta_views(trainer.cfg.eval.tta, trainer.cfg.eval.tta_shift, trainer.normalize(x))
            feats, logits = view_features(trainer.feature_model, views, trainer.autocast)
            logits = apply_bias(logits, trainer.bias_layers)
            hits.append(logits[:, :seen].argmax(1) == pos[part])
            if trainer.means is not None:
                nme_hits.append((feats @ trainer.means.T).argmax(1) == pos[part])
        hit = torch.cat(hits).float()
        task_of = torch.bucketize(pos[idx], torch.tensor(np.cumsum(trainer.sizes), device=pos.device), right=True)
        row = [float(hit[task_of == j].mean()) for j in range(t + 1)]
        recall = [float(hit[pos[idx] == c].mean()) for c in range(seen) if bool((pos[idx] == c).any())]
        st.matrix.setdefault(split, []).append(row)
        st.seen.setdefault(split, []).append(float(hit.mean()))
        entry = {"task": t + 1, "classes": seen, "split": split, "accuracy": float(hit.mean()), "per_task": row,
                 "balanced_accuracy": sum(recall) / max(1, len(recall)), "step": st.step, "epochs": st.epoch,
                 "task_seconds": st.task_seconds, "share_seconds": st.share, "time": trainer.clock()}
        if nme_hits:
            nme = float(torch.cat(nme_hits).float().mean())
            st.nme_seen.setdefault(split, []).append(nme)
            entry["nme_accuracy"] = nme
        st.history.append(entry)
        trainer.recorder.write_row(entry)
        trainer.recorder.log(f"task {t + 1}/{len(trainer.tasks)} ({seen} classes): accuracy on the classes seen "
                             f"{100 * entry['accuracy']:.2f}% ({split})"
                             + (f", nearest-mean {100 * entry['nme_accuracy']:.2f}%" if nme_hits else ""))
