"""Class-incremental training on the training core: ``fastvis-train --incremental B0-10``.

:class:`IncrementalTrainer` is a :class:`~fastvis.train.loop.Trainer` whose phases are the
tasks. It brings only what is its own: the class order and the tasks, the samples each task
trains on (its classes' samples, all classes so far for ``joint``, plus the exemplar memory for
the memory methods), the loss over the classes seen (with the old model's
distillation), what happens at a task's end (weight aligning, the memory, the class means, the
old model, the evaluation of every task so far), its part of the checkpoint and its summary.
The step, the optimiser, the epoch loop, the budget, progress, checkpoints and resume are the
core's. The training data stays on the device; class ids are renumbered by their position in
the class order, so task ``t`` owns a contiguous range of the model's outputs.

Methods (the old model is the frozen model of the end of the previous task):

- ``finetune``: cross-entropy on the new task's data only (the lower bound);
- ``joint``: cross-entropy on all data of the classes seen so far (the upper bound);
- ``replay``: new data and the memory, cross-entropy;
- ``icarl``: replay plus distillation of the old model's outputs on the old classes
  (temperature ``--cl-temperature``), and the nearest-mean-of-exemplars classifier;
- ``lwf``: distillation, no memory;
- ``wa``: like icarl with the two terms weighted by the share of old classes, then the new
  classes' output weights scaled to the mean norm of the old ones (weight aligning);
- ``bic``: wa's loss on all but a small balanced held-out set, then the new classes' logits
  corrected by two numbers fitted on it, kept for them in training and evaluation (:mod:`.bias`).

The memory methods also report the nearest-mean classifier and take ``--replay-share``, ``--balanced-epochs``.
With ``--budget`` the sequence shares the time: each task gets the time left in proportion to the
samples it trains on, its learning rate warming up and decaying over its share; ``--epochs-per-task
E`` gives the tasks E epochs each on average instead; ``--first-task-weight W`` weighs the first W times.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .. import FastvisError, InputError
from ..loader import Batch
from ..loader.order import epoch_order
from ..train import ddp, recipe
from ..train.budget import Clock
from ..train.config import TrainConfig
from ..train.data import SAMPLE, TrainData, build_train_data
from ..train.loop import Trainer
from ..train.model import make_optimizer
from ..train.state import TrainState
from . import methods
from .bias import apply_bias, fit_bias, validation_split
from .evaluation import evaluate_tasks
from .memory import Memory, herding, shared_batches
from .methods import DISTIL_METHODS, MEMORY_METHODS, features, frozen, incremental_loss, weight_align
from .metrics import split_blocks
from .protocol import class_order, parse_protocol, superclasses, task_classes

__all__ = ["IncrementalState", "IncrementalTrainer", "train_incremental"]


@dataclass
class IncrementalState(TrainState):
    """The core's state (the phase is the task) and what a class-incremental run adds."""

    task_seconds: float = 0.0  # training time of the current task
    share: float | None = None  # seconds of the budget the current task gets
    overhead: float | None = None  # seconds the last task's end took
    matrix: dict = field(default_factory=dict)  # split -> accuracy on each task so far, after each task
    seen: dict = field(default_factory=dict)  # split -> accuracy on the classes seen, after each task
    nme_seen: dict = field(default_factory=dict)  # the same for the nearest-mean classifier


class IncrementalTrainer(Trainer):
    evaluates_during_training = False  # every task ends with an evaluation of every task so far

    # -- the mode's configuration, data and model ---------------------------------------------------
    def __init__(self, cfg: TrainConfig, clock: Clock | None = None):
        super().__init__(cfg, clock)
        self.method = self.cfg.incremental.cl_method

    def prepare(self, cfg: TrainConfig) -> TrainConfig:
        """The recipe's class-incremental batch, rates and schedule unless given; with
        ``--epochs-per-task`` every task trains that many epochs (no time sharing)."""
        o, inc = cfg.optim, cfg.incremental
        batch = o.batch_size if o.batch_size is not None else recipe.get("incremental_batch")
        lr = o.lr if o.lr is not None else recipe.get("incremental_lr") * batch / recipe.get("incremental_batch")
        changes = dict(batch_size=batch, lr=lr)
        if inc.epochs_per_task is not None:
            changes.update(epochs=inc.epochs_per_task, budget=None)
        for name in ("first_task_weight", "later_lr", "replay_share", "balanced_epochs", "muon_lr", "norm_lr_scale",
                     "head_lr_scale"):
            if cfg.get(name) is None:  # not given: the recipe's
                changes[name] = recipe.keyed(f"incremental_{name}", inc.cl_method)
        return cfg.replace(**changes)

    def new_state(self) -> IncrementalState:
        return IncrementalState()

    def build_data(self, train_path) -> TrainData:
        data = build_train_data(self.cfg.replace(loader="resident"), train_path, self.world, self.device)
        if data.dataset is None:
            raise FastvisError(f"{train_path}: class-incremental training holds the data on the device "
                               "(the resident loader)")
        return data

    def setup_mode(self) -> None:
        inc, data, device = self.cfg.incremental, self.data, self.device
        if self.cfg.optim.optimizer is None:  # the recipe's for class-incremental runs
            self.cfg = self.cfg.replace(optimizer=recipe.optimizer(None, int(data.image_shape[0]), incremental=True))
        k = data.num_classes
        coarse = superclasses(self.train_path, k) if inc.class_order == "coarse" else None
        self.order = class_order(inc.class_order, k, coarse)
        self.sizes = parse_protocol(inc.incremental, k)
        if self.method in MEMORY_METHODS and inc.memory < k:
            raise InputError(f"--memory {inc.memory}: --cl-method {self.method} keeps at least one exemplar of "
                             f"each of the {k} classes")
        self.tasks = task_classes(self.order, self.sizes)
        self.position = torch.empty(k, dtype=torch.long, device=device)
        self.position[torch.tensor(self.order, device=device)] = torch.arange(k, device=device)
        self.train_pos = self.position[data.dataset.labels]
        self.class_idx = [(self.train_pos == p).nonzero().flatten() for p in range(k)]
        self.memory = Memory(inc.memory if self.method in MEMORY_METHODS else 0)
        self.old_model: torch.nn.Module | None = None
        self.means: torch.Tensor | None = None  # class means of the exemplars (positions)
        self.bias_layers: list[tuple[int, int, float, float]] = []  # bic: (lo, hi, alpha, beta) of each task

    def choose_model(self) -> tuple[str, None, str]:
        if self.cfg.network.model:
            return self.cfg.network.model, None, "--model"
        return recipe.get("incremental_model"), None, "the class-incremental default"

    def whitening_images(self) -> torch.Tensor:
        """A model initialised from the data (FastNet's whitening) sees the first task's images only."""
        first = torch.cat([self.class_idx[p] for p in range(self.sizes[0])])[:SAMPLE]
        return self.data.dataset.batch(first)[0]

    def setup(self) -> None:
        super().setup()
        inc = self.cfg.incremental
        self.recorder.log(f"class-incremental {inc.incremental} ({len(self.tasks)} tasks), {self.method}, memory "
                          f"{self.memory.size}, order {inc.class_order}; model {self.model_name}")

    # -- what a task trains on ------------------------------------------------------------------------
    def phases(self) -> int:
        return len(self.tasks)

    def bounds(self, t: int) -> tuple[int, int]:
        """(classes before task ``t``, classes seen after it), as output positions."""
        before = sum(self.sizes[:t])
        return before, before + self.sizes[t]

    def task_indices(self, t: int) -> torch.Tensor:
        return _joined(*self._task_parts(t))

    def _task_parts(self, t: int) -> tuple[torch.Tensor, torch.Tensor | None]:  # (its own samples, the memory's)
        before, seen = self.bounds(t)
        first = 0 if self.method == "joint" else before
        idx = torch.cat([self.class_idx[p] for p in range(first, seen)])
        if self.method == "bic" and t > 0:  # less the samples its bias correction is fitted on
            return validation_split(self.memory, self.class_idx, before, seen)[:2]
        kept = self.memory.indices() if self.method in MEMORY_METHODS and t > 0 else ()
        return (idx, kept.to(idx.device)) if len(kept) else (idx, None)

    def task_epochs(self, t: int) -> float:
        """Epochs of task ``t``: E on average (``--epochs-per-task``), the first W times a later one's."""
        e, w, n = self.cfg.schedule.epochs, self.cfg.incremental.first_task_weight, len(self.tasks)
        return e * n / (w + n - 1) * (w if t == 0 else 1.0)

    def _samples_per_task(self, t: int) -> list[int]:
        """The samples each task from ``t`` on trains on (the memory counted as full)."""
        out = []
        for u in range(t, len(self.tasks)):
            before, seen = self.bounds(u)
            first = 0 if self.method == "joint" else before
            n = sum(len(self.class_idx[p]) for p in range(first, seen))
            if self.method in MEMORY_METHODS and u > 0:
                n += min(self.memory.size, sum(len(self.class_idx[p]) for p in range(before)))
            out.append(n * (self.cfg.incremental.first_task_weight if u == 0 else 1.0))
        return out

    def _share(self, t: int) -> float:
        """Seconds of training for task ``t`` under a budget: the time left (less each remaining
        task's evaluation and memory update, as long as the last one took) in proportion to the
        samples each remaining task trains on."""
        budget = self.cfg.schedule.budget
        share, factor, end = recipe.get("incremental_overhead")
        overhead = self.state.overhead if self.state.overhead is not None else share * budget / len(self.tasks)
        left = (recipe.get("incremental_budget_use") * budget - self.clock()
                - (len(self.tasks) - t) * factor * overhead - end)
        w = self._samples_per_task(t)
        seconds = left * w[0] / sum(w)
        if seconds <= 0:
            raise FastvisError(f"--budget {budget:g}s leaves no time for task {t + 1} of {len(self.tasks)}; give a "
                               "longer budget, or --epochs-per-task")
        return seconds

    def begin_phase(self, t: int) -> None:
        st = self.state
        self.task_new, self.task_kept = self._task_parts(t)
        self.task_idx = _joined(self.task_new, self.task_kept)
        self.task_batch = self.global_batch(len(self.task_idx))
        share = self.cfg.incremental.replay_share
        self.kept_per_batch = None  # the memory mixed in; with a share, P of each batch (the same steps)
        if share and self.task_kept is not None:
            self.kept_per_batch = max(1, min(self.task_batch - 1, round(share * self.task_batch)))
        self.steps_per_epoch = max(1, len(self.task_idx) // self.task_batch)
        self.before, self.seen = self.bounds(t)
        if st.phase_step == 0:  # a new task: a new optimiser (resumed inside a task: the checkpoint's)
            self.optimizer = self.task_optimizer(t)
            st.task_seconds = 0.0
            st.share = ddp.broadcast_float(self.world, self._share(t), self.device) if self.budget is not None \
                else None  # rank 0's clock decides for all
        self._task_began = (self.clock(), st.task_seconds)
        if self.budget is None:
            st.total_steps = max(1, int(round(self.task_epochs(t) * self.steps_per_epoch)))
        else:
            self.budget.begin(st.progress, seconds=(1 - st.progress) * st.share)

    def task_optimizer(self, t: int):  # the run's peak rates, times --later-lr after the first task
        return make_optimizer(self.raw_model, self.cfg, self.peak_lr, scale=self.cfg.incremental.later_lr if t else 1)

    def global_batch(self, samples: int) -> int:
        """The batch of a task of ``samples`` (every rank reads it whole and trains on its part)."""
        n = self.world.size
        b = min(self.cfg.optim.batch_size, samples) // n * n
        if b == 0:
            raise FastvisError(f"{samples} samples to train on cannot be shared by {n} processes")
        return b

    def phase_batches(self, epoch: int, first: int) -> Iterator[Batch]:
        """The task's samples in an order fixed by the seed, the task and the epoch; with a replay
        share, each batch's part of the new data and of the memory from seeded passes over each."""
        base, seed, spe = self.state.phase * 10_007, self.cfg.run.seed, self.steps_per_epoch  # not tuning: seeds
        if self.kept_per_batch is None:
            idx, b = self.task_idx, self.task_batch
            order = idx[epoch_order(len(idx), seed, base + epoch).to(idx.device)]
            picks = (order[k * b:(k + 1) * b] for k in range(first, spe))
        else:
            picks = shared_batches(self.task_new, self.task_kept, self.task_batch, self.kept_per_batch,
                                   epoch * spe + first, (epoch + 1) * spe, seed, base)
        for pick in picks:
            yield Batch(self.data.dataset.batch(pick)[0], self.train_pos[pick], pick)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, targets, images: torch.Tensor) -> torch.Tensor:
        old = None
        if self.old_model is not None and self.method in DISTIL_METHODS and self.before > 0:
            with torch.no_grad(), self.autocast():
                old = apply_bias(self.old_model(images).float(), self.bias_layers)
        z = apply_bias(logits.float()[:, :self.seen], self.bias_layers)  # bic: trained as it is evaluated
        return incremental_loss(self.method, z, labels, targets, old, self.before, self.cfg.optim.label_smoothing,
                                self.cfg.incremental.cl_temperature)

    def where(self) -> str:
        return f"task {self.state.phase + 1}, epoch {self.state.epoch}"

    def _task_time(self) -> float:
        t0, before = self._task_began
        return before + self.clock() - t0

    # -- the end of a task -------------------------------------------------------------------------
    @property
    def feature_model(self) -> torch.nn.Module:
        """The model the memory, the class means and the evaluations read (EMA weights if any;
        never the compiled wrapper: the classifier's input is read by a hook on the model)."""
        return self.ema.model if self.ema is not None else self.raw_model

    def features(self, images: torch.Tensor, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(L2-normalised features before the classifier, logits) of images as stored."""
        x = self.normalize(images)
        return features(self.feature_model, x.flip(3) if flip else x, self.autocast)

    def _class_features(self, indices: torch.Tensor, flip: bool = False) -> torch.Tensor:
        out = []
        for s in range(0, len(indices), self.cfg.eval.eval_batch_size):
            x, _ = self.data.dataset.batch(indices[s:s + self.cfg.eval.eval_batch_size])
            out.append(self.features(x, flip)[0])
        return torch.cat(out)

    def end_phase(self, t: int) -> None:
        st = self.state
        st.task_seconds = self._task_time()
        t0 = self.clock()
        before, seen = self.bounds(t)
        if self.method == "bic" and t > 0:
            self._correct_bias(before, seen)
        if self.method == "wa" and t > 0:
            gamma = weight_align(self.raw_model, before, seen)
            if self.ema is not None:
                weight_align(self.ema.model, before, seen)
            self.recorder.log(f"weight aligning: new-class weights scaled by {gamma:.3f}")
        if self.memory.size:
            self.memory.shrink(seen)
            m = self.memory.per_class(seen)
            for p in range(before, seen):
                feats = self._class_features(self.class_idx[p])
                picks = ddp.broadcast_tensor(self.world, herding(feats, m))  # rank 0's: the same memory everywhere
                self.memory.add(p, self.class_idx[p][picks])
        if self.memory.size and t > 0 and self.cfg.incremental.balanced_epochs > 0:
            methods.balanced_finetune(self, t)
        if self.memory.size:  # the nearest-mean classifier, for every method that keeps exemplars
            means = []
            for p in range(seen):
                ex = self.memory.by_class[p]
                f = self._class_features(ex) + self._class_features(ex, flip=True)
                means.append(F.normalize(f.mean(0), dim=0))
            self.means = ddp.broadcast_tensor(self.world, torch.stack(means))
        self.old_model = frozen(self.feature_model) if self.method in DISTIL_METHODS else None
        evaluate_tasks(self, t)
        st.overhead = self.clock() - t0

    def _correct_bias(self, before: int, seen: int) -> None:
        """BiC's second stage: the new classes' logits corrected as fitted on the held-out samples."""
        held, n = validation_split(self.memory, self.class_idx, before, seen)[2], self.cfg.eval.eval_batch_size
        with torch.no_grad():
            logits = torch.cat([self.features(self.data.dataset.batch(held[s:s + n])[0])[1][:, :seen]
                                for s in range(0, len(held), n)])
        alpha, beta = fit_bias(apply_bias(logits, self.bias_layers), self.train_pos[held], before, seen)
        alpha, beta = (ddp.broadcast_float(self.world, v, self.device) for v in (alpha, beta))
        self.bias_layers.append((before, seen, alpha, beta))
        self.recorder.log(f"bias correction on {len(held)} held-out samples: new-class logits x {alpha:.3f} "
                          f"{beta:+.3f}")

    # -- persistence -------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if self.state.phase < len(self.tasks) and self.state.phase_step:  # inside a task: its time so far
            self.state.task_seconds = self._task_time()
        super().save_checkpoint()

    def checkpoint_extra(self) -> dict:
        return {"old_model": self.old_model.state_dict() if self.old_model is not None else None,
                "means": self.means.cpu() if self.means is not None else None, "memory": self.memory.state_dict(),
                "bias_layers": self.bias_layers,
                "class_order": self.order, "incremental": True}

    def check_checkpoint(self, saved: dict, path) -> None:
        if not saved.get("incremental"):
            raise FastvisError(f"{path}: not a class-incremental run's checkpoint")
        if "phase" not in saved:
            raise FastvisError(f"{path}: written by an earlier version of fastvis; start the run again")
        if saved["model_name"] != self.model_name or saved["class_order"] != self.order:
            raise FastvisError(f"{path}: a run of another model or class order")

    def restore_extra(self, saved: dict, path) -> None:
        self.old_model = frozen(self.raw_model, saved["old_model"]) if saved["old_model"] is not None else None
        self.means = saved["means"].to(self.device) if saved["means"] is not None else None
        self.memory.load_state_dict(saved["memory"], self.device)
        self.bias_layers = [tuple(layer) for layer in saved.get("bias_layers") or []]
        if self.state.phase_step:  # inside a task: its rates, with the checkpoint's optimiser state
            self.optimizer = self.task_optimizer(self.state.phase)
            self.optimizer.load_state_dict(saved["optimizer"])

    # -- the end ---------------------------------------------------------------------------------------------
    def hyper(self) -> dict:
        inc = self.cfg.incremental
        own = "epochs_per_task cl_temperature first_task_weight later_lr replay_share balanced_epochs".split()
        return {**{k: v for k, v in self.cfg.hyper().items() if k not in ("lr",)}, "model": self.model_name,
                "peak_lr": self.peak_lr, "amp": "bf16" if self.amp else "off", "protocol": inc.incremental,
                "cl_method": self.method, "memory": self.memory.size, "class_order": inc.class_order,
                **{k: getattr(inc, k) for k in own}}

    def finish(self) -> dict:
        from .report import write_incremental_report

        st, inc = self.state, self.cfg.incremental
        splits = split_blocks(st.matrix, st.seen, st.nme_seen)
        headline = "test" if "test" in splits else next(iter(splits))
        rows = [r for r in st.history if r["split"] == headline]
        metric = self.cfg.eval.metric
        values = [r.get("balanced_accuracy" if metric == "balanced_accuracy" else "accuracy") for r in rows]
        summary = {
            "model": self.model_name, "dataset": self.dataset_name, "image_size": list(self.data.image_shape),
            "params": self.params, "flops": self.flops, "steps": st.step, "train_seconds": st.train_seconds,
            "total_seconds": self.clock(), "budget_seconds": self.cfg.schedule.budget,
            "device": str(self.device) + (f" x{self.world.size}" if self.world.distributed else ""),
            "amp": "bf16" if self.amp else "off", "split": headline, "num_classes": self.data.num_classes,
            "metric": metric, "last": values[-1] if metric in ("top1", "balanced_accuracy") else None,
            "incremental": {"protocol": inc.incremental, "method": self.method, "memory": self.memory.size,
                            "class_order": self.order, "class_order_spec": inc.class_order,
                            "tasks": [[self.order[p] for p in range(*self.bounds(t))] for t in range(len(self.tasks))],
                            "split": headline, **splits[headline], "splits": splits,
                            **({"bias_correction": self.bias_layers} if self.method == "bic" else {})},
            "hyper": self.hyper(),
        }
        out = self.recorder.out
        if self.world.main:
            write_incremental_report(summary, out / "incremental.png", out / "report.pdf")
        self.recorder.close(summary, self.clock)
        block = summary["incremental"]
        self.recorder.log(f"done: average incremental accuracy {100 * block['average_incremental']:.2f}%, last "
                          f"{100 * block['last']:.2f}% ({headline}), {st.train_seconds:.0f}s training -> {out}")
        return summary


def _joined(new: torch.Tensor, kept: torch.Tensor | None) -> torch.Tensor:
    """A task's samples: its own, then the memory's when it trains on them."""
    return new if kept is None else torch.cat([new, kept])


def train_incremental(cfg: TrainConfig, clock: Clock | None = None) -> dict:
    return IncrementalTrainer(cfg, clock).fit()
