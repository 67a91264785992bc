"""The time-budgeted trainer: the loop, one training step, and evaluation.

Its parts each live in their own module: the options (:mod:`.config`), the training data
behind any loader (:mod:`.data`), the ordered batch transforms (:mod:`.augment_plan`), the
model and optimiser (:mod:`.model`), the loss and distillation (:mod:`.loss`), the budget
(:mod:`.budget`), what the run reports (:mod:`.recorder`) and what a checkpoint saves
(:mod:`.state`). Every step takes a global batch from the loader, augments it on the device,
and trains with SGD under a warm-up/linear-decay schedule driven by progress; with a budget
the step count is fitted after timing a few steps and an evaluation, and re-fitted every epoch.
"""
from __future__ import annotations

import math
import os
import time

import torch
import torch.nn.functional as F

from .. import FastvisError
from . import checkpoint, ddp
from .augment_plan import build_plan
from .budget import BudgetController, Clock, lr_at
from .config import TrainConfig
from .data import build_train_data, load_val
from .datasets import resolve
from .ema import EMA
from .loss import Criterion, load_teacher
from .model import build_model, make_optimizer, peak_lr, pick_model
from .recorder import Recorder
from .state import TrainState, restore, snapshot

__all__ = ["Trainer", "TrainingDiverged", "train"]


class TrainingDiverged(FastvisError):
    """The loss became NaN or infinite."""


class Trainer:
    def __init__(self, cfg: TrainConfig, clock: Clock | None = None):
        self.cfg = cfg = cfg.resolved()
        self.clock = clock or Clock()
        self.device, self.world = ddp.setup_device(cfg.speed.device)
        if cfg.optim.batch_size % self.world.size:
            raise FastvisError(f"--batch-size {cfg.optim.batch_size} must be a multiple of the {self.world.size} "
                               "processes")
        self.amp = (self.device.type == "cuda") if cfg.speed.amp is None else cfg.speed.amp
        self.state = TrainState()
        self.recorder = Recorder(cfg.output.out, self.world.main, not cfg.output.quiet)
        self.budget: BudgetController | None = None
        self.first_loss = self.last_loss = self.lr = None

    # -- setup ------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg, world, device = self.cfg, self.world, self.device
        args = (cfg.data.data, cfg.data.val, cfg.data.cache_dir)
        if world.main:  # rank 0 downloads and converts; the others then find the files
            train_path, val_path, self.dataset_name = resolve(*args, not cfg.output.quiet, cfg.data.verify)
        if world.distributed:
            torch.distributed.barrier()
            if not world.main:
                train_path, val_path, self.dataset_name = resolve(*args, False, cfg.data.verify)
        self.data = data = build_train_data(cfg, train_path, world, device)
        self.val = load_val(val_path, data, cfg, device)
        self.plan = build_plan(cfg, data, world, self.recorder.log)
        torch.manual_seed(cfg.output.seed)
        self.model_name = pick_model(cfg, device)
        model, self.params, self.flops = build_model(self.model_name, cfg, data.num_classes, data.image_shape,
                                                     device, lambda: self.normalize(data.sample))
        self.raw_model = model
        self.peak_lr = peak_lr(cfg, self.model_name)
        self.optimizer = make_optimizer(model, cfg, self.peak_lr)
        self.ema = EMA(model, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
        if world.distributed:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[world.local_rank] if device.type == "cuda" else None)
        self.model = torch.compile(model) if cfg.speed.compile else model
        teacher = load_teacher(cfg.eval.teacher, data.num_classes, device, cfg.speed.channels_last) \
            if cfg.eval.teacher else None
        self.criterion = Criterion(data.num_classes, cfg.optim.label_smoothing, teacher, cfg.eval.kd_alpha,
                                   cfg.eval.kd_temperature, self.autocast)
        self.steps_per_epoch = data.steps_per_epoch
        if cfg.schedule.epochs is not None:
            self.state.total_steps = max(1, int(round(cfg.schedule.epochs * self.steps_per_epoch)))
        else:
            self.budget = BudgetController(cfg.schedule.budget, self.clock, self.state, self.steps_per_epoch,
                                           cfg.eval.tta, world, device, self.sync)
        if cfg.output.resume:
            self.resume(cfg.output.resume)
        wandb = dict(project=cfg.output.wandb_project, mode=cfg.output.wandb_mode) if cfg.output.wandb else None
        self.recorder.start(wandb, {**self.hyper(), "params": self.params, "flops": self.flops})
        if world.main:
            cfg.save(self.recorder.out / "config.json")

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        from ..augment import normalize

        return normalize(images, self.data.mean, self.data.std, channels_last=self.cfg.speed.channels_last)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # -- one step ---------------------------------------------------------------------------------
    def train_step(self, batch, progress: float) -> torch.Tensor:
        st = self.state
        self.lr = lr_at(progress, self.peak_lr, self.cfg.optim.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        x, y, targets = self.plan(batch, st.step, st.epoch)
        self.model.train()
        with self.autocast():
            logits = self.model(x)
        loss = self.criterion(logits, y, targets, x)
        if st.step == 0:  # recorded for checks: the same for any number of processes
            self.first_loss = ddp.all_sum(self.world, [float(loss.detach())], self.device)[0] / self.world.size
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.raw_model)
        st.step += 1
        return loss.detach()

    # -- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, tta: bool = False, limit: int | None = None) -> dict:
        model = self.ema.model if self.ema is not None else self.model
        model.eval()
        n = len(self.val) if limit is None else min(limit, len(self.val))
        idx = torch.arange(self.world.rank, n, self.world.size)
        c1 = c5 = loss_sum = 0.0
        for s in range(0, len(idx), self.cfg.eval.eval_batch_size):
            x, y = self.val.batch(idx[s : s + self.cfg.eval.eval_batch_size])
            x = self.normalize(x)
            with self.autocast():
                logits = model(x).float()
                if tta:
                    logits = (logits + model(x.flip(3)).float()) / 2
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            top5 = logits.topk(min(5, logits.shape[1]), 1).indices
            c1 += float((top5[:, 0] == y).sum())
            c5 += float((top5 == y[:, None]).any(1).sum())
        c1, c5, loss_sum, count = ddp.all_sum(self.world, [c1, c5, loss_sum, float(len(idx))], self.device)
        return {"top1": c1 / count, "top5": c5 / count, "val_loss": loss_sum / count}

    # -- the run --------------------------------------------------------------------------------------
    def fit(self) -> dict:
        self.setup()
        cfg, st, spe = self.cfg, self.state, self.steps_per_epoch
        start, trained_before, start_step = time.perf_counter(), st.train_seconds, st.step
        while True:
            first = st.step - st.epoch * spe  # resuming inside an epoch
            if self.budget is not None and st.total_steps is None:
                self._plan_budget(first)
                first = st.step
            stop, steps, seconds = self._train_epoch(first)
            if self.budget is not None:
                self.budget.observe_epoch(seconds, steps)
            if st.step - st.epoch * spe >= spe:
                st.epoch += 1
            if stop or st.step >= st.total_steps:
                break
            st.train_seconds = trained_before + time.perf_counter() - start
            if st.epoch % st.eval_every == 0:
                t = time.perf_counter()
                self._record(self.evaluate())
                if self.budget is not None:
                    self.budget.eval_time = time.perf_counter() - t
            t = time.perf_counter()
            self.save_checkpoint()
            if cfg.output.halt_after_epoch is not None and st.epoch >= cfg.output.halt_after_epoch:
                os._exit(137)  # as if killed: no final evaluation, no report
            if self.budget is not None:
                self.budget.plan(ckpt_time=time.perf_counter() - t)
        self.sync()
        this_run = time.perf_counter() - start
        st.train_seconds = trained_before + this_run
        final = self.evaluate(tta=cfg.eval.tta)
        self._record(final, final=True)
        self.save_checkpoint()
        summary = self.summary(final, (st.step - start_step) * cfg.optim.batch_size / max(this_run, 1e-9))
        self.recorder.finish(summary, st.history, self.clock)
        ddp.teardown(self.world)
        return summary

    def _plan_budget(self, first: int) -> None:
        """Time the first steps of this epoch and an evaluation, then fit the step count."""
        st, spe = self.state, self.steps_per_epoch
        batches = self.data.batches(st.epoch, first)
        limit = min(len(self.val), 2 * self.cfg.eval.eval_batch_size)
        self.budget.probe(lambda: self.train_step(next(batches), st.step / (spe * 100)), min(spe, 12),
                          lambda n: self.evaluate(limit=n), limit, len(self.val))
        batches.close()
        self.budget.plan(ckpt_time=0.5 + 12 * self.params / 400e6)
        b = self.budget
        self.recorder.log(f"budget {b.budget:.0f}s: {b.step_time * 1e3:.1f} ms/step, eval {b.eval_time:.1f}s -> "
                          f"{st.total_steps} steps ({st.total_steps / spe:.2f} epochs), evaluating every "
                          f"{st.eval_every} epoch(s)")

    def _train_epoch(self, first: int) -> tuple[bool, int, float]:
        """Steps ``first`` to the end of the epoch, or until the plan or the clock says stop.
        Returns (stop, steps taken, seconds)."""
        st, spe, b = self.state, self.steps_per_epoch, self.cfg.optim.batch_size
        loss_sum, n, steps, stop = torch.zeros((), device=self.device), 0, 0, False
        self.recorder.open_bar(st.epoch, min(spe, st.total_steps - st.step))
        t = time.perf_counter()
        batches = self.data.batches(st.epoch, first)
        for k, batch in enumerate(batches, start=first):
            if st.step >= st.total_steps or (self.budget is not None and k % 10 == 0 and self.budget.out_of_time()):
                stop = True  # keep what is trained, go to the final evaluation
                break
            loss_sum += self.train_step(batch, st.step / st.total_steps)
            n, steps = n + 1, steps + 1
            if n == 20 or k == spe - 1:
                self._check_loss(loss_sum, n)
                self.recorder.update_bar(n, b, self.last_loss, self.lr, st.total_steps - st.step)
                loss_sum.zero_()
                n = 0
        batches.close()  # a loader's threads end with its generator
        if n:
            self._check_loss(loss_sum, n)
        self.recorder.close_bar()
        self.sync()
        return stop, steps, time.perf_counter() - t

    def _check_loss(self, loss_sum: torch.Tensor, n: int) -> None:
        value = ddp.all_sum(self.world, [float(loss_sum) / n], self.device)[0] / self.world.size
        if not math.isfinite(value):
            last = self.recorder.out / "checkpoint.pt"
            kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
            raise TrainingDiverged(f"loss became {value} at epoch {self.state.epoch}, step {self.state.step}; "
                                   f"stopped, {kept} (lower --lr, or turn --amp off)")
        self.last_loss = value

    def _record(self, metrics: dict, final: bool = False) -> None:
        st = self.state
        row = {"epoch": st.step / self.steps_per_epoch, "step": st.step, "time": self.clock(),
               "train_loss": self.last_loss, "lr": self.lr,
               "images_per_second": st.step * self.cfg.optim.batch_size / st.train_seconds if st.train_seconds
               else None, **metrics}
        if final:
            row["final"] = True
        st.history.append(row)
        st.best_top1 = max(st.best_top1, metrics["top1"])
        self.recorder.record(row)

    # -- persistence and outputs ---------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if self.world.main:
            state = snapshot(self.state, self.raw_model, self.optimizer, self.ema,
                             steps_per_epoch=self.steps_per_epoch, config=self.cfg.as_dict(),
                             model_name=self.model_name, num_classes=self.data.num_classes,
                             in_channels=int(self.data.image_shape[0]), mean=self.data.mean, std=self.data.std)
            checkpoint.save_atomic(state, self.recorder.out / "checkpoint.pt")

    def resume(self, path: str) -> None:
        saved = checkpoint.load(path, map_location=self.device)
        if saved["model_name"] != self.model_name:
            raise FastvisError(f"{path}: checkpoint is a {saved['model_name']}, this run a {self.model_name}")
        restore(saved, self.state, self.raw_model, self.optimizer, self.ema)
        self.clock.offset = self.state.train_seconds
        self.recorder.log(f"resumed from {path} at epoch {self.state.epoch}, step {self.state.step} of "
                          f"{self.state.total_steps}")

    def hyper(self) -> dict:
        """The report's hyper-parameters: the options as resolved for this run."""
        h = self.cfg.hyper()
        h.update(model=self.model_name, amp="bf16" if self.amp else "off", processes=self.world.size)
        h["peak_lr"] = self.peak_lr
        del h["lr"]
        if not self.cfg.eval.teacher:
            del h["kd_alpha"], h["kd_temperature"]
        if not self.data.radiographs:
            for k in ("window", "defect_paste", "defect_class"):
                del h[k]
        if self.data.kind not in ("jpeg", "dali"):
            del h["image_size"], h["rrc_scale"]
        return h

    def summary(self, final: dict, images_per_second: float) -> dict:
        st, data = self.state, self.data
        device = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {
            "model": self.model_name, "dataset": self.dataset_name, "image_size": list(data.image_shape),
            "params": self.params, "flops": self.flops, "epochs": st.step / self.steps_per_epoch, "steps": st.step,
            "batch_size": self.cfg.optim.batch_size, "train_seconds": st.train_seconds,
            "total_seconds": self.clock(), "top1": final["top1"], "top5": final["top5"], "best_top1": st.best_top1,
            "val_loss": final["val_loss"], "tta": self.cfg.eval.tta, "ema": self.ema is not None,
            "device": device + (f" x{self.world.size}" if self.world.distributed else ""),
            "budget_seconds": self.cfg.schedule.budget, "images_per_second": images_per_second,
            "num_classes": data.num_classes, "train_samples": data.n, "val_samples": len(self.val),
            "loader": data.kind, "first_step_loss": self.first_loss,
            "defect_pastes": self.plan.stats.get("defect_pastes"), "hyper": self.hyper(),
        }


def train(cfg: TrainConfig, clock: Clock | None = None) -> dict:
    return Trainer(cfg, clock).fit()
