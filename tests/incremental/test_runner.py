"""Class-incremental runs end to end on 8 small classes (CPU): every method, the memory, resume
at a task boundary and inside a task, the budget shared over tasks on a simulated clock, the
order study and the command line."""
from __future__ import annotations

import json

import pytest
import torch

from fastvis.incremental.runner import IncrementalTrainer, train_incremental
from fastvis.train import checkpoint as ckpt
from fastvis.train import recipe
from fastvis.train.budget import Clock
from fastvis.train.config import TrainConfig
from tests.helpers import EXACT, train_cli, train_exact, train_killed

from .data import write_classes


@pytest.fixture(scope="module")
def cl_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cl")
    return str(write_classes(root / "train.beton", 40, 0)), str(write_classes(root / "val.beton", 16, 1))


def config(data, out, **kw):
    base = dict(data=data[0], val=data[1], model="tinynet", incremental="B0-4", cl_method="icarl", memory=16,
                epochs_per_task=4, batch_size=32, lr=0.2, out=str(out), quiet=True, device="cpu",
                first_task_weight=1.0)  # the small tasks alike (the recipe's weight is for real ones)
    base.update(kw)
    return TrainConfig.from_options(**base)


@pytest.mark.parametrize("method", ["finetune", "joint", "replay", "icarl", "lwf", "wa", "bic"])
def test_each_method_runs_the_protocol_and_reports_it(cl_data, tmp_path, method):
    out = tmp_path / method
    summary = train_incremental(config(cl_data, out, cl_method=method))
    block = summary["incremental"]
    assert block["method"] == method and block["protocol"] == "B0-4" and len(block["tasks"]) == 4
    assert sorted(c for t in block["tasks"] for c in t) == list(range(8))
    matrix = block["matrix"]
    assert [len(row) for row in matrix] == [1, 2, 3, 4]
    assert all(0 <= v <= 1 for row in matrix for v in row)
    assert block["last"] == block["seen"][-1] and len(block["seen"]) == 4
    assert block["average_incremental"] == pytest.approx(sum(block["seen"]) / 4)
    assert ("nme" in block) == (method in ("replay", "icarl", "wa", "bic"))  # every method that keeps exemplars
    assert summary["hyper"]["replay_share"] == recipe.keyed("incremental_replay_share", method)  # the recipe's
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["task"] for r in rows] == [1, 2, 3, 4] and [r["classes"] for r in rows] == [2, 4, 6, 8]
    for name in ("summary.json", "report.pdf", "incremental.png", "checkpoint.pt", "config.json"):
        assert (out / name).is_file(), name
    import pypdf

    assert len(pypdf.PdfReader(out / "report.pdf").pages) == 1
    saved = ckpt.load(out / "checkpoint.pt")
    kept = saved["memory"]["by_class"]
    if method == "bic":  # one correction per task after the first, saved for a resume
        assert [tuple(layer[:2]) for layer in block["bias_correction"]] == [(2, 4), (4, 6), (6, 8)]
        assert [list(layer) for layer in saved["bias_layers"]] == [list(layer) for layer in block["bias_correction"]]
    if method in ("replay", "icarl", "wa", "bic"):
        assert sum(len(v) for v in kept.values()) <= 16  # the memory's size is never exceeded
        assert {len(v) for v in kept.values()} == {2} and sorted(kept) == list(range(8))  # 16 // 8 each
    else:
        assert not kept


def test_bic_holds_out_a_balanced_set_and_its_correction_undoes_a_bias():
    from fastvis.incremental.bias import apply_bias, fit_bias, validation_split
    from fastvis.incremental.memory import Memory

    memory = Memory(20)
    memory.add(0, torch.arange(0, 10))
    memory.add(1, torch.arange(10, 20))
    class_idx = [None, None, torch.arange(100, 150), torch.arange(150, 200)]
    new, kept, held = validation_split(memory, class_idx, 2, 4)
    assert held.tolist() == [9, 19, 149, 199]  # the last exemplar of each old class, as many of each new one
    assert len(kept) == 18 and len(new) == 98 and not set(held.tolist()) & set(new.tolist() + kept.tolist())
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat(50)
    logits = torch.randn(200, 4, generator=gen) + 3 * torch.nn.functional.one_hot(labels, 4)
    logits[:, 2:] += 4.0  # the new classes favoured
    alpha, beta = fit_bias(logits, labels, 2, 4)
    fixed = apply_bias(logits, [(2, 4, alpha, beta)])
    accuracy = [float((z.argmax(1) == labels).float().mean()) for z in (logits, fixed)]
    assert beta < -1.0 and accuracy[1] > accuracy[0] + 0.2
    assert torch.equal(fixed[:, :2], logits[:, :2]) and torch.equal(apply_bias(logits, []), logits)


def test_bic_trains_the_classes_of_earlier_tasks_through_their_corrections(cl_data, tmp_path):
    """A correction fitted at a task's end stays on its classes: the later tasks' loss sees the
    corrected outputs (as evaluation does), so the network learns under it rather than drifting
    away from it (on raw outputs the corrected classes of a long run fell to near 0%)."""
    from fastvis.incremental.bias import apply_bias
    from fastvis.incremental.methods import incremental_loss

    trainer = IncrementalTrainer(config(cl_data, tmp_path, cl_method="bic"))
    trainer.setup()
    trainer.recorder.release()
    trainer.before, trainer.seen = 0, 4
    logits, labels = torch.randn(6, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 3, 2, 3])
    raw = trainer.loss(logits, labels, None, None)
    trainer.bias_layers = [(2, 4, 0.9, -3.0)]
    corrected = apply_bias(logits[:, :4], trainer.bias_layers)
    expected = incremental_loss("bic", corrected, labels, None, None, 0, trainer.cfg.optim.label_smoothing,
                                trainer.cfg.incremental.cl_temperature)
    assert float(trainer.loss(logits, labels, None, None)) == pytest.approx(float(expected))
    assert float(expected) > float(raw) + 0.5  # the corrected classes' samples now cost more: their outputs must rise


def test_what_each_task_trains_on(cl_data, tmp_path):
    def indices(method):
        trainer = IncrementalTrainer(config(cl_data, tmp_path / method, cl_method=method))
        trainer.setup()
        return trainer, {int(p) for p in trainer.train_pos[trainer.task_indices(2)].tolist()}

    trainer, finetune = indices("finetune")
    assert finetune == {4, 5}  # the third task's two classes (positions in the class order)
    assert indices("joint")[1] == set(range(6))
    trainer, replay = indices("replay")
    assert replay == {4, 5}  # no memory yet: nothing trained
    labels = trainer.data.dataset.labels
    assert [trainer.order[p] for p in range(2)] == [int(c) for c in trainer.tasks[0]]
    assert all(trainer.position[labels[i]] == trainer.train_pos[i] for i in range(0, len(labels), 37))


def test_joint_training_bounds_finetuning_from_above(cl_data, tmp_path):
    fine = train_incremental(config(cl_data, tmp_path / "f", cl_method="finetune", epochs_per_task=8))["incremental"]
    joint = train_incremental(config(cl_data, tmp_path / "j", cl_method="joint", epochs_per_task=8))["incremental"]
    assert fine["last"] < 0.45  # the old classes are forgotten: mostly the last task's are predicted
    assert joint["last"] > fine["last"] + 0.2
    assert fine["forgetting"] > joint["forgetting"]


# killed at the interrupt's 2nd checkpoint event (inside the first task's epochs) or its 9th (inside the
# second task, whose rate --later-lr halves: a resume there must take it up again)
@pytest.mark.parametrize("halt", [2, 9])
def test_a_killed_run_resumes_to_the_result_of_an_uninterrupted_one(cl_data, tmp_path, halt):
    args = ["--data", cl_data[0], "--val", cl_data[1], "--model", "tinynet", "--incremental", "B0-4", "--cl-method",
            "icarl", "--memory", "16", "--epochs-per-task", "4", "--batch-size", "32", "--lr", "0.2", "--device", "cpu",
            "-q", "--replay-share", "0.25", "--balanced-epochs", "2", "--first-task-weight", "1", "--later-lr", "0.5"]
    train_exact(*args, "--out", tmp_path / "whole")
    train_killed(*args, "--out", tmp_path / "part", at="checkpoint", n=halt, env=EXACT)
    assert not (tmp_path / "part" / "summary.json").exists()
    killed = ckpt.load(tmp_path / "part" / "checkpoint.pt")
    assert (killed["phase"], killed["phase_step"] > 0) == ((0, True) if halt == 2 else (1, True))
    train_exact(*args, "--out", tmp_path / "part", "--resume", tmp_path / "part", fresh=True)
    a, b = ckpt.load(tmp_path / "whole" / "checkpoint.pt"), ckpt.load(tmp_path / "part" / "checkpoint.pt")
    assert a["step"] == b["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["memory"]["by_class"].keys() == b["memory"]["by_class"].keys()
    for c in a["memory"]["by_class"]:
        assert torch.equal(a["memory"]["by_class"][c], b["memory"]["by_class"][c])
    sa = json.loads((tmp_path / "whole" / "summary.json").read_text())["incremental"]
    sb = json.loads((tmp_path / "part" / "summary.json").read_text())["incremental"]
    assert sa["matrix"] == sb["matrix"] and sa["nme"] == sb["nme"]
    rows = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["task"] for r in rows] == [1, 2, 3, 4]  # no row twice


class SimulatedClock(Clock):
    """Time that moves only when read: a fixed tick per reading, so that the budget's
    arithmetic is tested without depending on the machine's speed."""

    def __init__(self, tick: float):
        super().__init__(0.0)
        self.t, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.t += self.tick
        return self.t + self.offset


def test_the_budget_is_shared_over_the_tasks_in_proportion_to_their_data(cl_data, tmp_path):
    clock = SimulatedClock(0.01)
    budget = 40.0
    summary = IncrementalTrainer(config(cl_data, tmp_path / "b", epochs_per_task=None, budget=budget,
                                        cl_method="replay", incremental="B0-2"), clock).fit()
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    first, second = rows
    assert first["share_seconds"] > 0 and second["share_seconds"] > 0
    # each task trained to its share, overshooting by less than an epoch's bookkeeping
    for r in rows:
        assert r["share_seconds"] <= r["task_seconds"] < r["share_seconds"] + 1.0
    # task 1 trains on 4 classes x 40 samples, task 2 on 4 x 40 plus the 16 exemplars: the first
    # share is its part of the time left then
    assert first["share_seconds"] / (first["share_seconds"] + second["share_seconds"]) == pytest.approx(
        160 / 336, abs=0.05)
    assert summary["train_seconds"] < budget and clock.t < budget


def test_the_first_task_weight_weighs_its_share_of_a_budget(cl_data, tmp_path):
    shares = {}
    for w in (1.0, 2.0):
        trainer = IncrementalTrainer(config(cl_data, tmp_path / f"w{w}", epochs_per_task=None, budget=40.0,
                                            cl_method="replay", incremental="B0-2", first_task_weight=w),
                                     SimulatedClock(0.0))  # no time passes: the same time left for both
        trainer.setup()
        shares[w] = trainer._share(0)
    assert shares[2.0] / shares[1.0] == pytest.approx((320 / 496) / (160 / 336))


def test_class_incremental_defaults_are_the_recipe_s_unless_given(cl_data, tmp_path):
    default = IncrementalTrainer(config(cl_data, tmp_path / "default", first_task_weight=None))
    default.setup()  # not given: the recipe's values
    inc = default.cfg.incremental
    plain = TrainConfig.from_options(data=cl_data[0], incremental="B0-4").incremental.cl_method
    assert plain == recipe.get("incremental_method") == "bic"  # the method, when --cl-method is not given
    assert inc.first_task_weight == recipe.get("incremental_first_task_weight")
    assert inc.later_lr == recipe.get("incremental_later_lr")
    o = default.cfg.optim  # the class-incremental optimiser and rates, not the model's for ordinary runs
    assert (o.optimizer, o.muon_lr, o.norm_lr_scale, o.head_lr_scale) == tuple(recipe.get(f"incremental_{n}") for n in (
        "optimizer", "muon_lr", "norm_lr_scale", "head_lr_scale"))
    given = IncrementalTrainer(config(cl_data, tmp_path / "sgd", optimizer="sgd", norm_lr_scale=4.0))
    given.setup()
    assert (given.cfg.optim.optimizer, given.cfg.optim.norm_lr_scale) == ("sgd", 4.0)
    # the class-balanced fine-tuning: by method
    for method, epochs in (("icarl", 2.0), ("replay", 2.0), ("bic", 0.0), ("wa", 0.0)):
        trainer = IncrementalTrainer(config(cl_data, tmp_path / method, cl_method=method))
        trainer.setup()
        assert trainer.cfg.incremental.balanced_epochs == epochs


def test_the_first_task_weight_moves_epochs_to_the_first_task_and_keeps_their_mean(cl_data, tmp_path):
    steps = {}
    for w in (1.0, 3.0):
        trainer = IncrementalTrainer(config(cl_data, tmp_path / f"w{w}", cl_method="finetune", epochs_per_task=2,
                                            first_task_weight=w))
        trainer.setup()
        epochs = [trainer.task_epochs(t) for t in range(4)]
        assert sum(epochs) == pytest.approx(8) and epochs[0] == pytest.approx(w * epochs[1])
        trainer.fit()
        rows = [json.loads(line) for line in (tmp_path / f"w{w}" / "metrics.jsonl").read_text().splitlines()]
        steps[w] = [b["step"] - a["step"] for a, b in zip([{"step": 0}] + rows, rows)]
    per_epoch = 80 // 32  # finetune: a task's 2 classes of 40 samples, batch 32
    assert steps[1.0] == [2 * per_epoch] * 4
    assert steps[3.0] == [round(4 * per_epoch)] + [round(4 / 3 * per_epoch)] * 3


def test_the_later_lr_scales_the_peak_rate_of_every_task_after_the_first(cl_data, tmp_path):
    rates = {}
    for f in (1.0, 0.25):
        trainer = IncrementalTrainer(config(cl_data, tmp_path / f"f{f}", cl_method="icarl", epochs_per_task=2,
                                            later_lr=f))
        peaks = []
        step = trainer.train_step  # the rate of every step, by task

        def watched(*args, _step=step, **kw):
            out = _step(*args, **kw)
            peaks.append((trainer.state.phase, trainer.lr))
            return out

        trainer.train_step = watched
        summary = trainer.fit()
        assert summary["hyper"]["later_lr"] == f
        rates[f] = [max(lr for p, lr in peaks if p == t) for t in range(4)]
    assert rates[1.0][0] == pytest.approx(rates[0.25][0])  # the first task is the same
    for t in (1, 2, 3):
        assert rates[0.25][t] == pytest.approx(0.25 * rates[1.0][t], rel=1e-6)
        assert rates[1.0][t] == pytest.approx(rates[1.0][0], rel=0.2)


def test_a_replay_share_fills_each_batch_from_the_memory_in_seeded_passes():
    from fastvis.incremental.memory import shared_batches

    new, kept = torch.arange(100), torch.arange(1000, 1020)
    batches = list(shared_batches(new, kept, 10, 3, 0, 30, seed=5, key=2))
    assert len(batches) == 30 and all(len(b) == 10 for b in batches)
    fresh = torch.cat([b[:7] for b in batches])  # 210 draws: two passes over the new data and a part of a third
    assert bool((fresh < 100).all()) and all(len(set(fresh[p:p + 100].tolist())) == 100 for p in (0, 100))
    assert not torch.equal(fresh[:100], fresh[100:200])  # each pass in its own order
    drawn = torch.cat([b[7:] for b in batches])
    counts = torch.bincount(drawn - 1000, minlength=20)
    assert bool((drawn >= 1000).all()) and set(counts.tolist()) <= {4, 5}  # 90 draws in passes over 20
    # the task's stream, drawn a stretch at a time (epochs, resume), is the same stream
    parts = [*shared_batches(new, kept, 10, 3, 0, 14, seed=5, key=2), *shared_batches(new, kept, 10, 3, 14, 23,
                                                                                      seed=5, key=2)]
    parts += list(shared_batches(new, kept, 10, 3, 23, 30, seed=5, key=2))
    assert all(torch.equal(a, b) for a, b in zip(parts, batches, strict=True))
    assert not list(shared_batches(new, kept, 10, 3, 30, 30, seed=5, key=2))  # resumed at an epoch's end
    other = list(shared_batches(new, kept, 10, 3, 0, 30, seed=6, key=2))
    assert not all(torch.equal(a, b) for a, b in zip(other, batches))


def test_replay_share_and_balanced_fine_tuning_in_a_run(cl_data, tmp_path):
    plain = IncrementalTrainer(config(cl_data, tmp_path / "plain", cl_method="replay", epochs_per_task=2,
                                      balanced_epochs=0))
    plain.fit()
    tuned = IncrementalTrainer(config(cl_data, tmp_path / "tuned", cl_method="replay", epochs_per_task=2,
                                      replay_share=0.5, balanced_epochs=2))
    summary = tuned.fit()
    assert tuned.kept_per_batch == 16 and tuned.steps_per_epoch == plain.steps_per_epoch
    assert tuned.state.step == plain.state.step  # the share changes what a batch holds, not how many steps
    assert summary["hyper"]["replay_share"] == 0.5 and summary["hyper"]["balanced_epochs"] == 2
    a, b = plain.raw_model.state_dict(), tuned.raw_model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert "nme" in summary["incremental"] and 0 <= summary["incremental"]["nme"]["last"] <= 1


def test_the_replay_share_is_the_recipes_for_the_method_and_0_mixes_the_memory_in(cl_data, tmp_path):
    runs = {}
    for name, kw in (("default", {}), ("mixed", {"replay_share": 0.0})):
        runs[name] = IncrementalTrainer(config(cl_data, tmp_path / name, cl_method="bic", epochs_per_task=1, **kw))
        runs[name].fit()
    share = recipe.keyed("incremental_replay_share", "bic")
    assert runs["default"].kept_per_batch == (round(share * runs["default"].task_batch) if share else None)
    assert runs["mixed"].kept_per_batch is None and runs["mixed"].cfg.incremental.replay_share == 0
    assert runs["mixed"].steps_per_epoch == runs["default"].steps_per_epoch


def test_balanced_fine_tuning_scales_muons_rate_as_well_as_sgds(cl_data, tmp_path, monkeypatch):
    from fastvis.incremental import methods

    built = []

    def recorded(*args, **kw):
        built.append(make(*args, **kw))
        return built[-1]

    make = methods.make_optimizer
    monkeypatch.setattr(methods, "make_optimizer", recorded)
    trainer = IncrementalTrainer(config(cl_data, tmp_path / "muon", cl_method="replay", epochs_per_task=1,
                                        optimizer="muon", balanced_epochs=1))
    trainer.fit()
    assert len(built) == 3  # once after each task but the first
    task = trainer.task_optimizer(1)
    f = recipe.get("incremental_balanced_lr")
    for opt in built:
        assert opt.kind == "muon" and opt.muon is not None
        assert opt.peak == pytest.approx(f * task.peak) and opt.muon_peak == pytest.approx(f * task.muon_peak)


def test_the_order_study_runs_orders_times_seeds_and_does_not_repeat_a_finished_run(cl_data, tmp_path):
    out = tmp_path / "study"
    args = ["--data", cl_data[0], "--val", cl_data[1], "--model", "tinynet", "--incremental", "B0-2", "--cl-method",
            "finetune", "--epochs-per-task", "1", "--batch-size", "32", "--device", "cpu", "-q",
            "--class-order-runs", "2", "--seeds-per-order", "2", "--out", out]
    proc = train_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = json.loads((out / "order_study.json").read_text())
    assert [(r["order"], r["seed"]) for r in study["runs"]] == [("seed:1993", 0), ("seed:1993", 1),
                                                                ("seed:1", 0), ("seed:1", 1)]
    for metric in ("average_incremental", "last"):
        s = study[metric]
        assert s["runs"] == 4 and s["orders"] == 2 and s["seed_sd"] is not None and s["order_sd"] is not None
    orders = {json.loads((out / "order-seed1" / "seed0" / "summary.json").read_text())["incremental"]
              ["class_order_spec"], json.loads((out / "order-seed1993" / "seed1" / "summary.json").read_text())
              ["incremental"]["class_order_spec"]}
    assert orders == {"seed:1", "seed:1993"}
    assert len((out / "order_study.csv").read_text().splitlines()) == 5
    stamp = (out / "order-seed1" / "seed1" / "summary.json").stat().st_mtime_ns
    again = train_cli(*args)
    assert again.returncode == 0 and (out / "order-seed1" / "seed1" / "summary.json").stat().st_mtime_ns == stamp


def test_the_coarse_order_makes_tasks_of_superclasses(cl_data, tmp_path):
    trainer = IncrementalTrainer(config(cl_data, tmp_path / "c", class_order="coarse"))
    trainer.setup()
    assert trainer.tasks == [[0, 1], [2, 3], [4, 5], [6, 7]]  # the file's superclass of class c is c // 2


@pytest.mark.parametrize("extra,message", [
    (["--incremental", "B0-3"], "do not split into 3 equal tasks"),
    (["--incremental", "B0-4", "--memory", "4"], "at least one exemplar of each of the 8 classes"),
    (["--incremental", "B0-4", "--class-order", "1,2,3"], "each of the 8 class ids once"),
    (["--incremental", "B0-4", "--loader", "streaming"], "--loader streaming: not in incremental runs (the tasks"),
    (["--incremental", "B0-4", "--class-order-runs", "2", "--nproc-per-node", "2"], "without --nproc-per-node"),
])
def test_bad_incremental_options_get_one_line(cl_data, tmp_path, extra, message):
    proc = train_cli("--data", cl_data[0], "--val", cl_data[1], "--model", "tinynet", "--epochs-per-task", "1",
                     "--device", "cpu", "-q", "--out", tmp_path / "x", *extra)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_two_processes_train_a_class_incremental_run_as_one_does(cl_data, tmp_path):
    """DDP (torchrun): each rank trains on its part of every batch; the memory, the class means and
    the bias corrections are rank 0's on every rank."""
    args = ["--data", cl_data[0], "--val", cl_data[1], "--model", "tinynet", "--incremental", "B0-2", "--cl-method",
            "bic", "--memory", "16", "--epochs-per-task", "2", "--batch-size", "32", "--lr", "0.2", "--device", "cpu",
            "-q", "--seed", "3", "--no-amp", "--balanced-epochs", "1"]
    one = train_cli(*args, "--out", tmp_path / "one", check=0)
    two = train_cli(*args, "--out", tmp_path / "two", "--nproc-per-node", "2", env={"OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, (one.stderr[-1000:], two.stderr[-3000:])
    a = json.loads((tmp_path / "one" / "summary.json").read_text())
    b = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert a["steps"] == b["steps"] and (a["device"], b["device"]) == ("cpu", "cpu x2")
    assert a["incremental"]["seen"] == pytest.approx(b["incremental"]["seen"], abs=0.07)  # 1 of 16 images a class
    ca, cb = ckpt.load(tmp_path / "one" / "checkpoint.pt"), ckpt.load(tmp_path / "two" / "checkpoint.pt")
    assert {c: v.tolist() for c, v in ca["memory"]["by_class"].items()} == \
        {c: v.tolist() for c, v in cb["memory"]["by_class"].items()}


@pytest.mark.slow
def test_the_core_s_options_work_in_class_incremental_runs(cl_data, tmp_path, monkeypatch):
    """What the training core does reaches the class-incremental mode: compile, EMA, lookahead,
    Muon, wandb, --metric."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    summary = train_incremental(config(cl_data, out, model="tinynet", incremental="B0-2", compile=True,
                                       ema_decay=0.9, lookahead=True, optimizer="muon", wandb=True,
                                       metric="balanced_accuracy", epochs_per_task=2, lr=None,
                                       muon_lr=0.24, norm_lr_scale=64.0, head_lr_scale=8.0))  # fast on 2 tiny epochs
    assert summary["metric"] == "balanced_accuracy"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert summary["last"] == rows[-1]["balanced_accuracy"] and 0 <= summary["last"] <= 1
    assert list((out / "wandb").glob("offline-run-*"))
    assert summary["hyper"]["optimizer"] == "muon" and summary["hyper"]["compile"] is True
    assert summary["incremental"]["last"] > 0.5  # 8 classes, chance is 0.125
