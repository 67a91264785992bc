"""The training core: setup, one training step, the epoch loop over phases, the budget, checkpoints and resume, for
every mode of fastvis-train (evaluations: :mod:`.evaluation`). Its parts live in their own modules: options
(:mod:`.config`), data (:mod:`.data`), batch transforms (:mod:`.augment_plan`), model and optimiser
(:mod:`.model`, :mod:`.optim`), loss (:mod:`.loss`), the hardest share of a batch (:mod:`.select`), budget
(:mod:`.budget`), outputs (:mod:`.recorder`), checkpoints (:mod:`.state`); every default comes from
:mod:`.recipe`. A run is a sequence of phases: an ordinary run is one; a mode that subclasses :class:`Trainer`
(class-incremental learning, :mod:`fastvis.incremental.runner`) brings its own through the hooks in the class's
first section. Every step trains under a warm-up/linear-decay schedule driven by the phase's progress (steps of
``--epochs``, or time of the ``--budget`` or a task's share)."""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from .. import FastvisError
from ..atomic import write_atomic
from ..loader import Batch
from ..models import list_models
from . import ddp, recipe
from .augment_plan import build_plan
from .budget import BudgetController, Clock, lr_at
from .config import TrainConfig
from .data import TrainData, build_train_data, eval_sets, training_samples
from .datasets import resolve
from .ema import EMA, Lookahead
from .evaluation import Evaluations, tta_views
from .loss import Criterion, load_teacher
from .metrics import positive_class
from .model import build_model, choose_amp, choose_lr, make_optimizer, pick_model, replan_rate, train_seconds
from .persistence import Persistence
from .recorder import Recorder
from .select import hard_selector
from .state import TrainState
from .summary import run_hyper, run_summary

__all__ = ["Trainer", "TrainingDiverged", "train"]


class TrainingDiverged(FastvisError):
    """The loss became NaN or infinite."""


class Trainer(Evaluations, Persistence):
    #: evaluations of the watched split during training (the curve, the best model)
    evaluates_during_training = True

    def __init__(self, cfg: TrainConfig, clock: Clock | None = None):
        self.cfg = cfg = self.prepare(cfg.resolved())
        self.clock = clock or Clock()
        self.device, self.world = ddp.setup_device(cfg.speed.device, cfg.speed.ddp_timeout)
        if cfg.optim.batch_size is not None and cfg.optim.batch_size % self.world.size:
            raise FastvisError(f"--batch-size {cfg.optim.batch_size} must be a multiple of the {self.world.size} "
                               "processes")
        self.amp, self.amp_reason = bool(cfg.speed.amp), ""  # decided in setup, once the model is built
        self.state = self.new_state()
        self.recorder = Recorder(cfg.run.out, self.world.main, not cfg.run.quiet)
        self.budget: BudgetController | None = None
        self.eval_interval: int | None = None  # steps between evaluations inside epochs (0: none)
        self.first_loss = self.last_loss = self.lr = None
        self.final, self._trained_until = None, None  # the last final evaluation; when training ended

    # -- what a mode brings: an ordinary run is one phase over all the data ------------------------
    def prepare(self, cfg: TrainConfig) -> TrainConfig:
        """The configuration, with the mode's own defaults filled in."""
        return cfg

    def new_state(self) -> TrainState:
        return TrainState()

    def build_data(self, train_path) -> TrainData:
        return build_train_data(self.cfg, train_path, self.world, self.device)

    def setup_mode(self) -> None:
        """After the data and the evaluation sets, before the model (it may change ``self.cfg``)."""

    def choose_model(self) -> tuple[str, object, str]:
        """``(model name, its measured speed or None, why)``."""
        data = self.data
        seconds = train_seconds(self.cfg, self.clock)
        return pick_model(self.cfg, self.device, data.image_shape, data.num_classes, data.n, seconds, self.recorder.log)

    def whitening_images(self) -> torch.Tensor:
        return self.data.sample

    def phases(self) -> int:
        return 1

    def begin_phase(self, phase: int) -> None:
        """Before the phase's first step (also when a run resumes inside it): its steps per epoch,
        its total steps (``--epochs``) or its share of the budget."""
        st = self.state
        self.steps_per_epoch = self.data.steps_per_epoch
        if self.cfg.schedule.epochs is not None:
            st.total_steps = max(1, int(round(self.cfg.schedule.epochs * self.steps_per_epoch)))
        elif self.budget.start is None:
            self.budget.begin(st.progress)

    def phase_batches(self, epoch: int, first: int) -> Iterator[Batch]:
        return self.data.batches(epoch, first)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, targets, images: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits, labels, targets, images)

    def end_phase(self, phase: int) -> None:
        """After the phase's last step: the final evaluations of every split."""
        for split, dataset in self.eval_sets.items():  # the watched split first, the test split last
            self.final = self.evaluate(dataset, tta=self.cfg.eval.tta)
            self._record(self.final, split, final=True)

    def checkpoint_extra(self) -> dict:
        return {}

    def check_checkpoint(self, saved: dict, path) -> None:
        """Refuse a checkpoint of another run before loading it."""
        if saved.get("incremental"):
            raise FastvisError(f"{path}: a class-incremental run's checkpoint (resume it with --incremental)")
        if saved["model_name"] != self.model_name:
            raise FastvisError(f"{path}: checkpoint is a {saved['model_name']}, this run a {self.model_name}")

    def restore_extra(self, saved: dict, path) -> None:
        """A checkpoint loaded: check it belongs to this run and take the mode's own state."""
        st, epochs = self.state, self.cfg.schedule.epochs
        if epochs is not None:  # --epochs given again, possibly more than before
            total = max(1, int(round(epochs * self.data.steps_per_epoch)))
            if total < st.step:
                raise FastvisError(f"--epochs {epochs:g}: the run in {path} already trained "
                                   f"{st.step / self.data.steps_per_epoch:.2f} epochs")
        elif saved.get("total_steps") is not None:
            raise FastvisError(f"{path}: the run was started with --epochs; resume it with --epochs")
        if "phase_step" not in saved:  # a checkpoint of an earlier version
            st.phase_step = st.step
        st.phase = 0  # one phase: whether it trains on is the schedule's to say (more --epochs, or done)
        # a run killed after its last checkpoint evaluates again at the end: its final rows once
        st.history = [row for row in st.history if not row.get("final")]

    def finish(self) -> dict:
        st = self.state
        if self.final is None:  # resumed after its last checkpoint: the final evaluations again
            self.end_phase(0)
        start, _, start_step = self._began
        trained = (self._trained_until or self.clock()) - start
        summary = self.summary(self.final, (st.step - start_step) * self.cfg.optim.batch_size / max(trained, 1e-9))
        self.recorder.finish(summary, st.history, self.clock)
        return summary

    def hyper(self) -> dict:
        return run_hyper(self)

    def summary(self, final: dict, images_per_second: float) -> dict:
        return run_summary(self, final, images_per_second)

    # -- setup ------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Everything before the first step; the run folder is this run's from here on (a failed
        setup lets go of it)."""
        self.recorder.claim()  # one run at a time in a folder, before anything is read from it or written
        try:
            self._setup()
        except BaseException:
            self.recorder.release()
            raise

    def _setup(self) -> None:
        cfg, world, device = self.cfg, self.world, self.device
        args = (cfg.data.data, cfg.data.val, cfg.data.cache_dir)
        need_val = not cfg.data.holdout
        if world.main:  # rank 0 downloads and converts; the others then find the files
            train_path, val_path, self.dataset_name = resolve(*args, not cfg.run.quiet, cfg.data.verify, need_val)
        if world.distributed:
            torch.distributed.barrier()
            if not world.main:
                train_path, val_path, self.dataset_name = resolve(*args, False, cfg.data.verify, need_val)
        self.train_path = train_path
        if cfg.optim.batch_size is None:  # the recipe's for this device and the data's size
            n = training_samples(train_path, cfg.data.holdout)
            self.cfg = cfg = cfg.replace(batch_size=recipe.batch_size(device.type, n, world.size))
        self.data = data = self.build_data(train_path)
        self.steps_per_epoch = data.steps_per_epoch
        epochs = cfg.schedule.epochs
        if epochs is not None and round(epochs * self.steps_per_epoch) < 1:
            raise FastvisError(f"--epochs {epochs:g}: less than one step (an epoch of this data is "
                               f"{self.steps_per_epoch} steps of {cfg.optim.batch_size})")
        # evaluated during training (the curve, the best model, the budget): the holdout when there is one
        self.eval_sets = eval_sets(data, val_path, cfg, device)
        self.watch_split = next(iter(self.eval_sets))
        self.watch = self.eval_sets[self.watch_split]
        self.positive = positive_class(data.classes, data.num_classes, cfg.radiograph.defect_class)
        if cfg.eval.metric == "auc" and self.positive is None:
            raise FastvisError(f"--metric auc needs two classes; this data has {data.num_classes}")
        self.plan = build_plan(cfg, data, world, self.recorder.log)
        self.setup_mode()
        cfg = self.cfg  # with the mode's choices
        self.model_name, speed, why = self.choose_model()
        if world.distributed and not cfg.network.model:  # every rank trains rank 0's choice
            names = list_models()
            self.model_name = names[ddp.broadcast_int(world, names.index(self.model_name), device)]
        if cfg.optim.optimizer is None:  # the recipe's for the model
            self.cfg = cfg = cfg.replace(optimizer=recipe.optimizer(self.model_name, int(data.image_shape[0])))
        torch.manual_seed(cfg.run.seed)
        model, self.params, self.flops = build_model(self.model_name, cfg, data.num_classes, data.image_shape,
                                                     device, lambda: self.normalize(self.whitening_images()))
        self.raw_model = model
        self.amp, self.amp_reason, speed = choose_amp(cfg.speed.amp, device, model, data.image_shape,
                                                      data.num_classes, cfg.speed.channels_last, speed)
        self.amp = bool(ddp.broadcast_int(world, int(self.amp), device)) if world.distributed else self.amp
        self.cfg = cfg = cfg.replace(model=self.model_name, amp=self.amp)  # timed choices, kept by a resume
        self.recorder.log(f"model: {self.model_name} ({why}); precision: {'bf16 autocast' if self.amp else 'fp32'} "
                          f"({self.amp_reason})")
        self.model_reason = why
        seconds, log = train_seconds(cfg, self.clock), self.recorder.log
        self.planned_epochs, self.peak_lr, self.cfg = choose_lr(cfg, self.model_name, model, speed, data, device,
                                                                seconds, world, log)
        timed_rate = cfg.optim.lr is None and cfg.schedule.epochs is None and self.planned_epochs is not None
        cfg = self.cfg
        self.optimizer = make_optimizer(model, cfg, self.peak_lr)
        self.ema = EMA(model, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
        self.lookahead = Lookahead(model, *recipe.get("lookahead")) if cfg.optim.lookahead else None
        self.selector = hard_selector(self)
        model = ddp.wrap(model, world, device)
        self.model = torch.compile(model) if cfg.speed.compile else model
        teacher = load_teacher(cfg.network.teacher, data.num_classes, device, cfg.speed.channels_last) \
            if cfg.network.teacher else None
        self.criterion = Criterion(data.num_classes, cfg.optim.label_smoothing, teacher, cfg.network.kd_alpha,
                                   cfg.network.kd_temperature, self.autocast)
        if cfg.schedule.epochs is None:
            sizes = sum(len(d) for d in self.eval_sets.values()) / len(self.watch)
            fixed, per_param, disk = recipe.get("checkpoint_seconds")
            self.budget = BudgetController(cfg.schedule.budget, self.clock, world, device,
                                           final_evals=sizes * len(tta_views(cfg.eval.tta, cfg.eval.tta_shift)),
                                           ckpt_time=fixed + per_param * self.params / disk)
            self.budget.on_speed = replan_rate(self) if timed_rate else None  # the plan at the run's own speed
        if cfg.run.resume:
            self.resume(cfg.run.resume)
        wandb = dict(project=cfg.run.wandb_project, mode=cfg.run.wandb_mode) if cfg.run.wandb else None
        self.recorder.start(wandb, {**self.hyper(), "params": self.params, "flops": self.flops})
        if world.main:
            cfg.save(self.recorder.out / "config.json")
            if not cfg.run.resume:  # a fresh start: no rows of an earlier start that left no checkpoint
                write_atomic(self.recorder.out / "metrics.jsonl", "")

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        from ..augment import normalize

        return normalize(images, self.data.mean, self.data.std, channels_last=self.cfg.speed.channels_last)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @property
    def eval_model(self) -> torch.nn.Module:
        """What evaluations use: the EMA weights when there are, else the trained model."""
        return self.ema.model if self.ema is not None else self.model

    # -- one step ---------------------------------------------------------------------------------
    def train_step(self, batch, progress: float) -> torch.Tensor:
        st, o = self.state, self.cfg.optim
        whiten = max(0.0, 1 - st.step / (o.whiten_bias_epochs * self.steps_per_epoch)) if o.whiten_bias_epochs \
            else 0.0
        self.lr = self.optimizer.set_lr(factor := lr_at(progress, 1.0, o.warmup), whiten)
        x, y, targets = self.plan(batch, st.step, st.epoch, progress)
        if self.selector is not None:  # --hard-fraction: the hardest share of the batch
            x, y, targets = self.selector(x, y, targets, st.step, factor, whiten)
        self.model.train()
        with self.autocast():
            logits = self.model(x)
        loss = self.loss(logits, y, targets, x)
        if st.step == 0:  # recorded for checks: the same for any number of processes
            self.first_loss = ddp.all_sum(self.world, [float(loss.detach())], self.device)[0] / self.world.size
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.raw_model)
        st.step += 1
        st.phase_step += 1
        if self.lookahead is not None:
            self.lookahead.update(self.raw_model, st.phase_step, progress)
        return loss.detach()

    # -- the run --------------------------------------------------------------------------------------
    def fit(self) -> dict:
        try:
            return self._fit()
        finally:
            self.recorder.release()

    def _fit(self) -> dict:
        self.setup()
        st = self.state
        self._began = (self.clock(), st.train_seconds, st.step)  # this process's start: times and speeds
        if self.budget is not None:
            self._time_evaluation()
            b = self.budget
            if b.deadline() <= self.clock():
                raise FastvisError(f"--budget {b.budget:g}s leaves no time to train: {self.clock():.0f}s went to "
                                   f"setting up and {b.reserve():.0f}s are needed for the final evaluation and the "
                                   "report; give a longer budget, or --epochs")
        while st.phase < self.phases():
            self.begin_phase(st.phase)
            self._train_phase()
            if self.lookahead is not None:
                self.lookahead.finish(self.raw_model)
            st.train_seconds = self._train_seconds()
            self._trained_until = self.clock()
            self.end_phase(st.phase)
            st.phase += 1
            if st.phase < self.phases():  # the next phase starts from its beginning
                st.phase_step, st.epoch, st.progress = 0, 0, 0.0
            self.save_checkpoint()
        summary = self.finish()
        ddp.teardown(self.world)
        return summary

    def _train_seconds(self) -> float:
        start, trained_before, _ = self._began
        return trained_before + self.clock() - start

    def _train_phase(self) -> None:
        st, per_epoch = self.state, self.steps_per_epoch
        while True:
            stop, epoch_seconds = self._train_epoch(st.phase_step - st.epoch * per_epoch)
            if st.phase_step - st.epoch * per_epoch >= per_epoch:
                st.epoch += 1
            if stop or self._progress() >= 1:
                return
            st.train_seconds = self._train_seconds()
            if self._evaluation_due(epoch_seconds):
                self._evaluate_watched()
            t = self.clock()
            self.save_checkpoint()
            if self.budget is not None:
                self.budget.observe_checkpoint(self.clock() - t)

    def _progress(self) -> float:
        st = self.state
        st.progress = self.budget.progress() if self.budget is not None else st.phase_step / st.total_steps
        return st.progress

    def _steps_left(self) -> int:
        st = self.state
        return st.total_steps - st.phase_step if self.budget is None else self.budget.steps_left()

    def _train_epoch(self, first: int) -> tuple[bool, float]:
        """Steps ``first`` to the end of the epoch, or until the phase is done. Returns (stop, the
        seconds a whole epoch takes at the speed seen)."""
        st, per_epoch, batch_size = self.state, self.steps_per_epoch, self.cfg.optim.batch_size
        loss_sum, n, steps, stop = torch.zeros((), device=self.device), 0, 0, False
        self.recorder.open_bar(st.epoch, min(per_epoch - first, self._steps_left() or per_epoch))
        t0 = previous = self.clock()
        batches = self.phase_batches(st.epoch, first)
        for k, batch in enumerate(batches, start=first):
            progress = self._progress()
            if progress >= 1:
                stop = True  # the phase is done: go to its end
                break
            loss_sum += self.train_step(batch, progress)
            n, steps = n + 1, steps + 1
            if self.budget is not None:
                now = self.clock()
                self.budget.observe_step(now - previous)
                previous = now
            if n == 20 or k == per_epoch - 1:  # not tuning: how often the progress bar and the NaN check look
                self._check_loss(loss_sum, n)
                self.recorder.update_bar(n, batch_size, self.last_loss, self.lr, self._steps_left(), self.budget)
                loss_sum.zero_()
                n = 0
            if k < per_epoch - 1 and self._evaluation_inside_epoch_due():
                if n:
                    self._check_loss(loss_sum, n)
                self._evaluate_watched()
                previous = self.clock()
        batches.close()  # a loader's threads end with its generator
        if n:
            self._check_loss(loss_sum, n)
        self.recorder.close_bar()
        self.sync()
        return stop, (self.clock() - t0) * per_epoch / max(steps, 1)

    def where(self) -> str:
        """Where the run is, for messages."""
        return f"epoch {self.state.epoch}, step {self.state.step}"

    def _check_loss(self, loss_sum: torch.Tensor, n: int) -> None:
        value = ddp.all_sum(self.world, [float(loss_sum) / n], self.device)[0] / self.world.size
        if not math.isfinite(value):
            last = self.recorder.out / "checkpoint.pt"
            kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
            raise TrainingDiverged(f"loss became {value} at {self.where()}; stopped, {kept} (lower --lr, or turn "
                                   "--amp off)")
        self.last_loss = value


def train(cfg: TrainConfig, clock: Clock | None = None) -> dict:
    return Trainer(cfg, clock).fit()
