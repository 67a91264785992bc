"""Class-incremental training with the trainer's parts: ``fastvis-train --incremental B0-10``.

The training data stays on the device (the resident loader's dataset); each task trains on the
samples of its classes (all classes so far for ``joint``), plus the exemplar memory (indices
into the same data) for ``replay``, ``icarl`` and ``wa``. Batches go through the run's
augmentation plan, the model is any registered one (default ``resnet32``) with one output per
class, of which only the classes seen so far take part. Class ids are renumbered by their
position in the class order, so task ``t`` owns a contiguous range of outputs.

Methods (the old model is the frozen model of the end of the previous task):

- ``finetune``: cross-entropy on the new task's data only (the lower bound);
- ``joint``: cross-entropy on all data of the classes seen so far (the upper bound);
- ``replay``: new data and the memory, cross-entropy;
- ``icarl``: replay plus distillation of the old model's outputs on the old classes
  (temperature ``--cl-temperature``), and the nearest-mean-of-exemplars classifier;
- ``lwf``: distillation, no memory;
- ``wa``: like icarl with the two terms weighted by the share of old classes, then the new
  classes' output weights scaled to the mean norm of the old ones (weight aligning).

With ``--budget`` the whole sequence shares the time: each task gets the time left in
proportion to the samples it trains on, its learning rate warms up and decays over its share,
and every task ends with an evaluation, the memory update and a checkpoint (``--resume``
continues in the task, and in the epoch, where the run was).
"""
from __future__ import annotations

import json
import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import FastvisError, InputError
from ..atomic import write_atomic
from ..loader import Batch
from ..train import checkpoint, ddp, recipe
from ..train.augment_plan import build_plan
from ..train.budget import Clock, lr_at
from ..train.config import TrainConfig
from ..train.data import SAMPLE, build_train_data, eval_sets
from ..train.datasets import resolve
from ..train.model import build_model, choose_amp, make_optimizer, peak_lr
from ..train.recorder import Recorder
from .memory import Memory, herding
from .methods import DISTIL_METHODS, MEMORY_METHODS, features, frozen, incremental_loss, weight_align
from .metrics import split_blocks
from .protocol import class_order, parse_protocol, superclasses, task_classes
from .state import restore, snapshot

__all__ = ["IncrementalTrainer", "train_incremental"]

class IncrementalTrainer:
    def __init__(self, cfg: TrainConfig, clock: Clock | None = None):
        cfg = cfg.resolved()
        o = cfg.optim  # the class-incremental literature's batch and learning rate, unless given
        batch = o.batch_size if o.batch_size is not None else recipe.get("incremental_batch")
        lr = o.lr if o.lr is not None else recipe.get("incremental_lr") * batch / recipe.get("incremental_batch")
        self.cfg = cfg = cfg.replace(batch_size=batch, lr=lr)
        self.clock = clock or Clock()
        self.device, self.world = ddp.setup_device(cfg.speed.device, cfg.speed.ddp_timeout)
        if self.world.distributed:
            raise FastvisError("class-incremental runs use one process (start them without torchrun)")
        self.recorder = Recorder(cfg.output.out, True, not cfg.output.quiet)
        inc = cfg.incremental
        self.method = inc.cl_method
        if cfg.optim.ema_decay or cfg.eval.teacher:
            raise InputError("--ema and --teacher are not used by class-incremental runs (--incremental)")

    # -- setup ------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg, device, inc = self.cfg, self.device, self.cfg.incremental
        train_path, val_path, self.dataset_name = resolve(cfg.data.data, cfg.data.val, cfg.data.cache_dir,
                                                          not cfg.output.quiet, cfg.data.verify,
                                                          not cfg.data.holdout)
        data = build_train_data(cfg.replace(loader="resident"), train_path, self.world, device)
        if data.dataset is None:
            raise FastvisError(f"{train_path}: class-incremental training holds the data on the device "
                               "(the resident loader)")
        self.data, ds = data, data.dataset
        k = data.num_classes
        coarse = superclasses(train_path, k) if inc.class_order == "coarse" else None
        self.order = class_order(inc.class_order, k, coarse)
        self.sizes = parse_protocol(inc.incremental, k)
        if self.method in MEMORY_METHODS and inc.memory < k:
            raise InputError(f"--memory {inc.memory}: --cl-method {self.method} keeps at least one exemplar of "
                             f"each of the {k} classes")
        self.tasks = task_classes(self.order, self.sizes)
        self.position = torch.empty(k, dtype=torch.long, device=device)
        self.position[torch.tensor(self.order, device=device)] = torch.arange(k, device=device)
        self.train_pos = self.position[ds.labels]
        self.class_idx = [(self.train_pos == p).nonzero().flatten() for p in range(k)]
        self.eval_sets = eval_sets(data, val_path, cfg, device)
        self.plan = build_plan(cfg, data, self.world, self.recorder.log)
        self.model_name = cfg.data.model or recipe.get("incremental_model")
        torch.manual_seed(cfg.output.seed)
        # a model initialised from the data (FastNet's whitening) sees the first task's images only
        first = torch.cat([self.class_idx[p] for p in range(self.sizes[0])])[:SAMPLE]
        self.model, self.params, self.flops = build_model(self.model_name, cfg, k, data.image_shape, device,
                                                          lambda: self.normalize(ds.batch(first)[0]))
        self.amp, self.amp_reason = choose_amp(cfg.speed.amp, device, self.model, data.image_shape, k,
                                               cfg.speed.channels_last)
        self.peak_lr = peak_lr(cfg, self.model_name)
        self.memory = Memory(inc.memory if self.method in MEMORY_METHODS else 0)
        self.old_model: torch.nn.Module | None = None
        self.means: torch.Tensor | None = None  # icarl: class means of the exemplars (positions)
        self.st = {"task": 0, "epoch": 0, "step": 0, "task_step": 0, "global_epoch": 0, "task_seconds": 0.0,
                   "share": None, "train_seconds": 0.0, "matrix": {}, "seen": {}, "nme_seen": {}, "history": [],
                   "overhead": None, "time": 0.0}
        self.optimizer = None
        self.recorder.log(f"class-incremental {inc.incremental} ({len(self.tasks)} tasks), {self.method}, "
                          f"memory {self.memory.size}, order {inc.class_order}; model {self.model_name}; "
                          f"precision {'bf16' if self.amp else 'fp32'} ({self.amp_reason})")
        self.recorder.start(None, {})
        if cfg.output.resume:
            self.resume(cfg.output.resume)
        else:
            write_atomic(self.recorder.out / "metrics.jsonl", "")
        cfg.save(self.recorder.out / "config.json")

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        from ..augment import normalize

        return normalize(images, self.data.mean, self.data.std, channels_last=self.cfg.speed.channels_last)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    # -- what a task trains on ----------------------------------------------------------------------
    def bounds(self, t: int) -> tuple[int, int]:
        """(classes before task ``t``, classes seen after it), as output positions."""
        before = sum(self.sizes[:t])
        return before, before + self.sizes[t]

    def task_indices(self, t: int) -> torch.Tensor:
        before, seen = self.bounds(t)
        first = 0 if self.method == "joint" else before
        idx = torch.cat([self.class_idx[p] for p in range(first, seen)])
        if self.method in MEMORY_METHODS and t > 0:
            idx = torch.cat([idx, self.memory.indices().to(idx.device)])
        return idx

    def _weights(self, t: int) -> list[int]:
        """The samples each task from ``t`` on trains on (the memory counted as full)."""
        out = []
        for u in range(t, len(self.tasks)):
            before, seen = self.bounds(u)
            first = 0 if self.method == "joint" else before
            n = sum(len(self.class_idx[p]) for p in range(first, seen))
            if self.method in MEMORY_METHODS and u > 0:
                n += min(self.memory.size, sum(len(self.class_idx[p]) for p in range(before)))
            out.append(n)
        return out

    # -- the run ----------------------------------------------------------------------------------------
    def fit(self) -> dict:
        self.setup()
        st = self.st
        while st["task"] < len(self.tasks):
            t = st["task"]
            if self.optimizer is None:
                self.optimizer = make_optimizer(self.model, self.cfg, self.peak_lr)
            if st["share"] is None:
                st["share"] = self._share(t)
            self._train_task(t)
            t0 = self.clock()
            self._end_task(t)
            st["overhead"] = self.clock() - t0
            st["train_seconds"] += st["task_seconds"]
            st["task"], st["task_step"], st["epoch"], st["task_seconds"], st["share"] = t + 1, 0, 0, 0.0, None
            self.optimizer = None
            self.save_checkpoint()
        return self.finish()

    def _share(self, t: int) -> float | None:
        """Seconds of training for task ``t`` under a budget: the time left (less each remaining
        task's evaluation and memory update, as long as the last one took) in proportion to the
        samples each remaining task trains on."""
        budget = self.cfg.schedule.budget
        if self.cfg.incremental.epochs_per_task is not None or budget is None:
            return None
        left_tasks = len(self.tasks) - t
        share, factor, end = recipe.get("incremental_overhead")
        overhead = self.st["overhead"] if self.st["overhead"] is not None else share * budget / len(self.tasks)
        left = recipe.get("incremental_budget_use") * budget - self.clock() - left_tasks * factor * overhead - end
        w = self._weights(t)
        share = left * w[0] / sum(w)
        if share <= 0:
            raise FastvisError(f"--budget {budget:g}s leaves no time for task {t + 1} of {len(self.tasks)}; give a "
                               "longer budget, or --epochs-per-task")
        return share

    def _progress(self, spe: int) -> float:
        st, inc = self.st, self.cfg.incremental
        if inc.epochs_per_task is not None or st["share"] is None:
            epochs = inc.epochs_per_task if inc.epochs_per_task is not None else self.cfg.schedule.epochs
            return st["task_step"] / max(1, int(round(epochs * spe)))
        return st["task_seconds"] / st["share"]

    def _train_task(self, t: int) -> None:
        st, cfg, b = self.st, self.cfg, self.cfg.optim.batch_size
        idx = self.task_indices(t)
        batch = min(b, len(idx))
        spe = max(1, len(idx) // batch)
        before, seen = self.bounds(t)
        while self._progress(spe) < 1:
            seed = cfg.output.seed * 1_000_003 + t * 10_007 + st["epoch"]  # not tuning: seed mixing
            g = torch.Generator().manual_seed(seed)
            order = idx[torch.randperm(len(idx), generator=g).to(idx.device)]
            first = st["task_step"] - st["epoch"] * spe
            self.recorder.open_bar(st["epoch"], spe - first)
            previous, n, loss_sum = self.clock(), 0, 0.0  # n steps since the last report
            for k in range(first, spe):
                if self._progress(spe) >= 1:
                    break
                pick = order[k * batch:(k + 1) * batch]
                x, _ = self.data.dataset.batch(pick)
                loss = self._step(Batch(x, self.train_pos[pick], pick), t, before, seen, spe)
                now = self.clock()
                st["task_seconds"] += now - previous
                previous = now
                n, loss_sum = n + 1, loss_sum + loss
                if n == 20 or k == spe - 1:  # not tuning: how often the bar and the NaN check look
                    self._check(loss_sum / n, t)
                    self.recorder.update_bar(n, batch, loss_sum / n, self.lr, spe - k - 1)
                    n, loss_sum = 0, 0.0
            self.recorder.close_bar()
            if st["task_step"] - st["epoch"] * spe >= spe:
                st["epoch"] += 1
                st["global_epoch"] += 1
                self.save_checkpoint()
                st["task_seconds"] += self.clock() - previous  # the checkpoint's time is the task's too

    def _step(self, batch: Batch, t: int, before: int, seen: int, spe: int) -> float:
        st = self.st
        self.lr = self.optimizer.set_lr(lr_at(self._progress(spe), 1.0, self.cfg.optim.warmup))
        x, y, targets = self.plan(batch, st["step"], st["epoch"])
        self.model.train()
        with self.autocast():
            logits = self.model(x).float()[:, :seen]
        old = None
        if self.old_model is not None and self.method in DISTIL_METHODS and before > 0:
            with torch.no_grad(), self.autocast():
                old = self.old_model(x).float()
        loss = incremental_loss(self.method, logits, y, targets, old, before, self.cfg.optim.label_smoothing,
                                self.cfg.incremental.cl_temperature)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        st["step"] += 1
        st["task_step"] += 1
        return float(loss.detach())

    def _check(self, loss: float, t: int) -> None:
        if not math.isfinite(loss):
            raise FastvisError(f"loss became {loss} in task {t + 1}, epoch {self.st['epoch']}; stopped, the last "
                               f"good checkpoint is {self.recorder.out / 'checkpoint.pt'} (lower --lr)")

    # -- the end of a task -------------------------------------------------------------------------------
    def features(self, images: torch.Tensor, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(L2-normalised features before the classifier, logits) of images as stored."""
        x = self.normalize(images)
        return features(self.model, x.flip(3) if flip else x, self.autocast)

    def _class_features(self, indices: torch.Tensor, flip: bool = False) -> torch.Tensor:
        out = []
        for s in range(0, len(indices), self.cfg.eval.eval_batch_size):
            x, _ = self.data.dataset.batch(indices[s:s + self.cfg.eval.eval_batch_size])
            out.append(self.features(x, flip)[0])
        return torch.cat(out)

    def _end_task(self, t: int) -> None:
        before, seen = self.bounds(t)
        if self.method == "wa" and t > 0:
            gamma = weight_align(self.model, before, seen)
            self.recorder.log(f"weight aligning: new-class weights scaled by {gamma:.3f}")
        if self.memory.size:
            self.memory.shrink(seen)
            m = self.memory.per_class(seen)
            for p in range(before, seen):
                feats = self._class_features(self.class_idx[p])
                self.memory.add(p, self.class_idx[p][herding(feats, m)])
        if self.method == "icarl":
            means = []
            for p in range(seen):
                ex = self.memory.by_class[p]
                f = self._class_features(ex) + self._class_features(ex, flip=True)
                means.append(F.normalize(f.mean(0), dim=0))
            self.means = torch.stack(means)
        self.old_model = frozen(self.model) if self.method in DISTIL_METHODS else None
        self._evaluate(t)

    @torch.no_grad()
    def _evaluate(self, t: int) -> None:
        st = self.st
        before, seen = self.bounds(t)
        for split, es in self.eval_sets.items():
            pos = self.position[es.labels]
            idx = (pos < seen).nonzero().flatten()
            hits, nme_hits = [], []
            for s in range(0, len(idx), self.cfg.eval.eval_batch_size):
                part = idx[s:s + self.cfg.eval.eval_batch_size]
                x, _ = es.batch(part)
                feats, logits = self.features(x)
                if self.cfg.eval.tta:
                    feats2, logits2 = self.features(x, flip=True)
                    logits = (logits + logits2) / 2
                    feats = F.normalize(feats + feats2, dim=1)
                hits.append(logits[:, :seen].argmax(1) == pos[part])
                if self.means is not None:
                    nme_hits.append((feats @ self.means.T).argmax(1) == pos[part])
            hit = torch.cat(hits).float()
            task_of = torch.bucketize(pos[idx], torch.tensor(np.cumsum(self.sizes), device=pos.device), right=True)
            row = [float(hit[task_of == j].mean()) for j in range(t + 1)]
            st["matrix"].setdefault(split, []).append(row)
            st["seen"].setdefault(split, []).append(float(hit.mean()))
            entry = {"task": t + 1, "classes": seen, "split": split, "accuracy": float(hit.mean()), "per_task": row,
                     "step": st["step"], "epochs": st["epoch"], "task_seconds": st["task_seconds"],
                     "share_seconds": st["share"], "time": self.clock()}
            if nme_hits:
                nme = float(torch.cat(nme_hits).float().mean())
                st["nme_seen"].setdefault(split, []).append(nme)
                entry["nme_accuracy"] = nme
            st["history"].append(entry)
            self._write_row(entry)
            self.recorder.log(f"task {t + 1}/{len(self.tasks)} ({seen} classes): accuracy on the classes seen "
                              f"{100 * entry['accuracy']:.2f}% ({split})"
                              + (f", nearest-mean {100 * entry['nme_accuracy']:.2f}%" if nme_hits else ""))

    def _write_row(self, row: dict) -> None:
        with open(self.recorder.out / "metrics.jsonl", "a") as fp:
            fp.write(json.dumps(row) + "\n")

    # -- persistence -----------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        self.st["time"] = self.clock()
        checkpoint.save_atomic(snapshot(self), self.recorder.out / "checkpoint.pt")

    def resume(self, path: str) -> None:
        restore(self, checkpoint.load(path, map_location=self.device), path)
        text = "".join(json.dumps(row) + "\n" for row in self.st["history"])
        write_atomic(self.recorder.out / "metrics.jsonl", text)
        self.clock.offset = self.st["time"]
        self.recorder.log(f"resumed from {path} in task {self.st['task'] + 1}, epoch {self.st['epoch']}")

    def finish(self) -> dict:
        from .report import write_incremental_report

        st, inc = self.st, self.cfg.incremental
        splits = split_blocks(st["matrix"], st["seen"], st["nme_seen"])
        headline = "test" if "test" in splits else next(iter(splits))
        hyper = {**{k: v for k, v in self.cfg.hyper().items() if k not in ("lr",)}, "model": self.model_name,
                 "peak_lr": self.peak_lr, "amp": "bf16" if self.amp else "off", "protocol": inc.incremental,
                 "cl_method": self.method, "memory": self.memory.size, "class_order": inc.class_order,
                 "epochs_per_task": inc.epochs_per_task, "cl_temperature": inc.cl_temperature}
        summary = {
            "model": self.model_name, "dataset": self.dataset_name, "image_size": list(self.data.image_shape),
            "params": self.params, "flops": self.flops, "steps": st["step"], "train_seconds": st["train_seconds"],
            "total_seconds": self.clock(), "budget_seconds": self.cfg.schedule.budget, "device": str(self.device),
            "amp": "bf16" if self.amp else "off", "split": headline, "num_classes": self.data.num_classes,
            "incremental": {"protocol": inc.incremental, "method": self.method, "memory": self.memory.size,
                            "class_order": self.order, "class_order_spec": inc.class_order,
                            "tasks": [[self.order[p] for p in range(*self.bounds(t))] for t in range(len(self.tasks))],
                            "split": headline, **splits[headline], "splits": splits},
            "hyper": hyper,
        }
        out = self.recorder.out
        write_incremental_report(summary, out / "incremental.png", out / "report.pdf")
        summary["total_seconds"] = self.clock()
        write_atomic(out / "summary.json", json.dumps(summary, indent=1))
        block = summary["incremental"]
        self.recorder.log(f"done: average incremental accuracy {100 * block['average_incremental']:.2f}%, last "
                          f"{100 * block['last']:.2f}% ({headline}), {st['train_seconds']:.0f}s training -> {out}")
        return summary


def train_incremental(cfg: TrainConfig, clock: Clock | None = None) -> dict:
    return IncrementalTrainer(cfg, clock).fit()
