"""The trainer end to end on a small learnable dataset (CPU)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from fastvis.models import create_model, list_models
from fastvis.train import checkpoint as ckpt
from fastvis.train.data import build_train_data
from fastvis.train.ddp import World
from fastvis.train.ema import EMA
from fastvis.train.loop import TrainingDiverged, train
from fastvis.train.loss import Criterion, kd_loss
from tests.helpers import FakeClock, check_resume, train_cli, train_config, write_set


def test_run_writes_every_output(data, tmp_path):
    summary = train(train_config(data, tmp_path, ema_decay=0.9, tta=True, cutmix=1.0, mix_prob=0.5))
    for key in ("model", "dataset", "image_size", "params", "flops", "epochs", "batch_size", "train_seconds",
                "top1", "top5", "best_top1", "device", "budget_seconds"):
        assert key in summary
    assert summary["image_size"] == [3, 16, 16] and summary["epochs"] == pytest.approx(3.0)
    assert summary["params"] == sum(p.numel() for p in create_model("tinynet", 4).parameters())
    assert summary["flops"] > 0
    assert summary["top1"] > 0.5  # chance is 0.25
    assert json.loads((tmp_path / "summary.json").read_text())["top1"] == summary["top1"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # 3 epochs of 8 steps: evaluated every 5 steps (24 / 5 rounded up), so that the curve has 5 points
    # with the final one; not at the ends of epochs besides (steps 8 and 16)
    assert [r["epoch"] for r in rows] == [0.625, 1.25, 1.875, 2.5, 3.0]
    assert rows[-1]["final"] and rows[-1]["top1"] == summary["top1"]
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "report.pdf").read_bytes()[:4] == b"%PDF"
    state = ckpt.load(tmp_path)
    assert state["step"] == 24 and state["model_name"] == "tinynet"


def simulated_run(data, tmp_path, monkeypatch, budget: float, slow_after: float, **kw) -> tuple[dict, list]:
    """A budgeted run on a simulated clock: a training step costs 0.25 s, a full evaluation 2 s
    for each view it averages, a checkpoint 0.5 s and the report 3 s; after ``slow_after`` seconds everything runs three
    times slower. TTA averages 2 views (no shifted ones), so that the final evaluation is about a
    tenth of the budget, as in a real run. Returns the summary and the learning rate of every step."""
    from fastvis.train.evaluation import tta_views
    from fastvis.train.loop import Trainer
    from fastvis.train.recorder import Recorder

    clock, lrs = FakeClock(), []
    slow = lambda: 3.0 if clock.t >= slow_after else 1.0  # noqa: E731
    step, evaluate, save, finish = Trainer.train_step, Trainer.evaluate, Trainer.save_checkpoint, Recorder.finish

    def timed_step(self, batch, progress):
        out = step(self, batch, progress)
        lrs.append(self.lr)
        clock.tick(0.25 * slow())
        return out

    def timed_evaluate(self, dataset=None, tta=False, limit=None):
        out = evaluate(self, dataset, tta, limit)
        n = len(self.watch if dataset is None else dataset)
        views = len(tta_views(tta, self.cfg.eval.tta_shift))
        clock.tick(2.0 * (min(limit, n) if limit else n) / 64 * views * slow())
        return out

    def timed_save(self):
        save(self)
        clock.tick(0.5 * slow())

    def timed_finish(self, summary, history, c):
        clock.tick(3.0 * slow())
        finish(self, summary, history, c)

    monkeypatch.setattr(Trainer, "train_step", timed_step)
    monkeypatch.setattr(Trainer, "evaluate", timed_evaluate)
    monkeypatch.setattr(Trainer, "save_checkpoint", timed_save)
    monkeypatch.setattr(Recorder, "finish", timed_finish)
    kw.setdefault("tta_shift", 0)
    summary = train(train_config(data, tmp_path, epochs=None, budget=budget, **kw), clock)
    return summary, lrs


@pytest.mark.parametrize("slow_after", [1e9, 60.0])
def test_a_budget_is_kept_and_the_schedule_completed_even_when_the_machine_slows_down(data, tmp_path, monkeypatch,
                                                                                       slow_after):
    summary, lrs = simulated_run(data, tmp_path, monkeypatch, budget=120.0, slow_after=slow_after, tta=True)
    assert abs(summary["total_seconds"] - 120.0) <= 0.02 * 120.0, summary["total_seconds"]
    assert summary["budget_seconds"] == 120.0 and summary["epochs"] > 10
    peak = max(lrs)
    assert peak == pytest.approx(0.2, rel=0.05)  # warmed up to the peak
    assert lrs[-1] <= 0.02 * peak  # and decayed to the end
    assert all(a >= b for a, b in zip(lrs[lrs.index(peak):], lrs[lrs.index(peak) + 1:]))  # decay is monotone
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evaluations = len([r for r in rows if not r.get("final")])
    assert 1 <= evaluations <= 8  # 2 s each: at most about a tenth of the time


def test_a_budgeted_run_plans_its_rate_again_at_its_own_speed(data, tmp_path, monkeypatch):
    """The start-up probe says the machine is slow (a few epochs in the budget: a high peak rate);
    the run's own steps are fast (many epochs): the peak is set again, lower, while the rate
    still warms up, and written into the run's configuration."""
    from fastvis.train import model, recipe
    from fastvis.train.speed import Speed

    probe_epochs, budget = 4.0, 120.0
    monkeypatch.setattr(model, "measure_speed", lambda *a, **k: Speed(
        probe_epochs * 256 / (recipe.get("budget_model_share") * budget), amp=False))
    summary, lrs = simulated_run(data, tmp_path, monkeypatch, budget=budget, slow_after=1e9, optimizer="muon",
                                 lr=None, amp=False)
    first = sum(recipe.get("replan_steps"))  # the steps before the plan is made again
    probe_lr = recipe.peak_lr("tinynet", "muon", 32, probe_epochs)
    own = json.loads((tmp_path / "config.json").read_text())["optim"]["lr"]
    assert summary["epochs"] > 10 * probe_epochs and own == pytest.approx(recipe.peak_lr("tinynet", "muon", 32, 50.0))
    assert own < probe_lr / 2
    assert max(lrs[first:]) == pytest.approx(own, rel=0.05)  # the warm-up rises to the new peak, not the old
    assert lrs[first] < own  # the switch came inside the warm-up, which goes on to the new peak


@pytest.mark.parametrize("extra", [[], ["--hard-fraction", "0.5"], ["--progressive-resize", "0.5"]])
def test_resume_after_a_kill_gives_the_same_result(data, tmp_path, extra):
    args = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", "3", "--batch-size", "32",
            "--lr", "0.2", "--device", "cpu", "-q", "--cutmix", "1.0", "--randaugment", "1,5", *extra]
    sa, sb = check_resume(args, tmp_path)
    assert sa["steps"] == sb["steps"] == 24
    assert sa["top1"] == sb["top1"] and sa["val_loss"] == sb["val_loss"]


def test_a_resumed_run_keeps_the_precision_and_model_it_chose_by_timing(data, tmp_path, monkeypatch):
    """bf16 autocast on a CPU is chosen by a timed probe (and the model, with a budget, by timing):
    a run resumed on a busier machine must not choose again, or it would train another way or
    refuse its own checkpoint."""
    from fastvis.cli.train import build_parser
    from fastvis.train import model as model_module
    from fastvis.train.config import config_from_args
    from fastvis.train.speed import Speed

    monkeypatch.setattr(model_module, "cpu_has_fast_bf16", lambda: True)
    faster = {"bf16": True}
    monkeypatch.setattr(model_module, "measure_speed",
                        lambda *a, **k: Speed(1000.0, faster["bf16"], 2.0 if faster["bf16"] else 0.5))
    base = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--batch-size", "32", "--lr", "0.2",
            "--device", "cpu", "-q", "--out", str(tmp_path)]
    first = train(config_from_args(build_parser().parse_args([*base, "--epochs", "1"])))
    assert first["amp"] == "bf16"
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["speed"]["amp"] is True and saved["network"]["model"] == "tinynet"
    faster["bf16"] = False  # the probe would now choose fp32
    again = train(config_from_args(build_parser().parse_args([*base, "--epochs", "2", "--resume", "auto"])))
    assert again["amp"] == "bf16" and again["steps"] == 16
    # and says why as the start did (its config.json names the choices as if they had been given)
    assert first["amp_reason"].startswith("probe: bf16 steps 2.00x") and again["amp_reason"] == first["amp_reason"]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    original, steps = Criterion.__call__, []

    def poisoned(self, logits, y, targets, x):
        loss = original(self, logits, y, targets, x)
        steps.append(len(steps))
        return loss * float("nan") if steps[-1] >= 8 + 3 else loss  # 8 steps an epoch: step 3 of epoch 1

    monkeypatch.setattr(Criterion, "__call__", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1.*checkpoint\.pt"):
        train(train_config(data, tmp_path))
    state = ckpt.load(tmp_path)
    weights = [v for v in state["model"].values() if v.is_floating_point()]
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in weights)
    assert not (tmp_path / "summary.json").exists()


def test_self_distillation_from_a_checkpoint(data, tmp_path):
    train(train_config(data, tmp_path / "teacher", epochs=2))
    summary = train(train_config(data, tmp_path / "student", epochs=2, teacher=str(tmp_path / "teacher"),
                           kd_alpha=0.7, kd_temperature=3.0))
    assert summary["hyper"]["teacher"] == str(tmp_path / "teacher") and summary["top1"] > 0.25


def test_kd_loss_formula():
    torch.manual_seed(0)
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    y = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 4]), 7).float()
    a, T = 0.3, 2.5
    ce = -(y * torch.log_softmax(s, 1)).sum(1).mean()
    pt = torch.softmax(t / T, 1)
    kl = (pt * (torch.log(pt) - torch.log_softmax(s / T, 1))).sum(1).mean()
    assert torch.allclose(kd_loss(s, t, y, a, T), (1 - a) * ce + a * T * T * kl, atol=1e-6)
    assert kd_loss(s, s, y, 1.0, T).abs() < 1e-6  # a student equal to its teacher: no KD loss


def test_ema_average():
    m = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(m.weight)
    ema = EMA(m, decay=0.5)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema.update(m)  # warm-up decay min(0.5, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.model.weight, torch.full((1, 2), 1 - d))


def test_every_registered_model_builds_and_runs():
    for name in list_models():
        model = create_model(name, num_classes=10).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10), name


def test_a_model_registered_twice_is_named_in_a_warning(monkeypatch):
    from fastvis.models import register, registry

    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))

    def other_tinynet(num_classes, in_channels=3, drop_path_rate=0.0):
        return torch.nn.Linear(in_channels, num_classes)

    with pytest.warns(UserWarning, match="'tinynet' registered twice: .*other_tinynet replaces .*tinynet._tinynet"):
        register("tinynet")(other_tinynet)
    assert isinstance(create_model("tinynet", 4), torch.nn.Linear) and "tinynet" in list_models()


def test_densenets_have_their_published_sizes_and_take_one_channel():
    def params(m):
        return sum(p.numel() for p in m.parameters())

    # DenseNet-BC-100 (k = 12): 0.8 M parameters on CIFAR; DenseNet-121: 8.0 M with 1000 classes
    assert 0.75e6 < params(create_model("densenet_bc100", 100)) < 0.82e6
    assert 7.9e6 < params(create_model("densenet121", 1000)) < 8.1e6
    for name, size in (("densenet_bc40", 48), ("densenet121", 96)):
        model = create_model(name, 2, in_channels=1).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 1, size, size)).shape == (2, 2)


def test_a_beton_is_named_by_its_dataset_not_by_its_split(tmp_path):
    from fastvis.train.datasets import dataset_name

    def written(path, recorded):
        write_set(path, 8, 0)
        side = path.with_name(path.name + ".json")
        side.write_text(recorded if isinstance(recorded, str) else
                        json.dumps({**json.loads(side.read_text()), **recorded}))

    (tmp_path / "crops").mkdir()
    written(tmp_path / "train.beton", {"dataset": "cifar100", "split": "train"})
    written(tmp_path / "crops" / "train.beton", {"dataset": "train"})  # an image folder called 'train'
    written(tmp_path / "c100.beton", "not json")
    assert dataset_name(tmp_path / "train.beton") == "cifar100"
    assert dataset_name(tmp_path / "crops" / "train.beton") == "crops"
    assert dataset_name(tmp_path / "c100.beton") == "c100"


def test_cli_errors_and_help(tmp_path):
    proc = train_cli("--budget", "ten minutes", "--data", "cifar10")
    assert proc.returncode == 1 and "cannot read 'ten minutes'" in proc.stderr and "Traceback" not in proc.stderr
    proc = train_cli("--data", tmp_path / "none.beton", "--epochs", "1")
    assert proc.returncode == 1 and "no such file" in proc.stderr
    assert "tinynet" in train_cli("--list-models").stdout
    assert "--budget" in train_cli("--help").stdout


def test_ddp_two_processes_match_one(data, tmp_path):
    args = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", "1", "--batch-size", "32",
            "--lr", "0.2", "--device", "cpu", "-q", "--seed", "3", "--no-amp"]  # fp32: not a timed choice
    one = train_cli(*args, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    two = train_cli(*args, "--out", tmp_path / "two", "--nproc-per-node", "2", env={"OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "summary.json").read_text())
    b = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert b["device"].endswith("x2")
    assert a["first_step_loss"] == pytest.approx(b["first_step_loss"], rel=1e-5)
    assert a["steps"] == b["steps"]


def test_wandb_offline_run(data, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is the optional logger (the wandb extra)")
    monkeypatch.setenv("WANDB_SILENT", "true")
    summary = train(train_config(data, tmp_path, epochs=1, wandb=True, wandb_mode="offline"))
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and summary["top1"] >= 0
    assert any(runs[0].rglob("*.wandb"))


def test_compiled_model_trains(data, tmp_path):
    """--compile (torch.compile with the inductor backend; about 30 s of compilation on 2 cores)."""
    summary = train(train_config(data, tmp_path, epochs=2, compile=True))
    assert summary["hyper"]["compile"] and summary["top1"] > 0.5


def test_streaming_loader_trains(data, tmp_path):
    summary = train(train_config(data, tmp_path, loader="streaming", epochs=3))
    assert summary["loader"] == "streaming" and summary["steps"] == 24
    assert summary["top1"] > 0.5
    with pytest.raises(Exception, match="alternating"):
        train(train_config(data, tmp_path / "b", loader="streaming", flip="alternating"))


def test_streaming_reads_page_by_page_only_files_written_in_random_order(data, tmp_path):
    cfg, cpu = train_config(data, tmp_path, loader="streaming"), torch.device("cpu")
    assert build_train_data(cfg, data[0], World(), cpu).loader.order == "random"  # written class by class
    shuffled = tmp_path / "shuffled.beton"
    shuffled.write_bytes(Path(data[0]).read_bytes())
    shuffled.with_name("shuffled.beton.json").write_text(json.dumps({"num_classes": 4, "shuffled": 0}))
    assert build_train_data(cfg, str(shuffled), World(), cpu).loader.order == "quasi_random"


def test_streaming_loader_keeps_a_budget(data, tmp_path, monkeypatch):
    summary, lrs = simulated_run(data, tmp_path, monkeypatch, budget=120.0, slow_after=60.0, loader="streaming")
    assert summary["loader"] == "streaming" and abs(summary["total_seconds"] - 120.0) <= 0.02 * 120.0
    assert summary["epochs"] > 1 and lrs[-1] <= 0.02 * max(lrs)


def test_main_job_path_with_a_cached_cifar100_archive(tmp_path):
    """`fastvis-train --data cifar100`: the archive found in the cache is converted once, then trained on."""
    from tests.cifar_archive import build_cifar_archive

    cache = tmp_path / "cache"
    cache.mkdir()
    build_cifar_archive(cache, "cifar100", n_train=300, n_test=60, seed=4)
    args = ["--data", "cifar100", "--cache-dir", cache, "--no-verify", "--epochs", "1", "--model", "tinynet",
            "--batch-size", "50", "--device", "cpu", "-q"]
    proc = train_cli(*args, "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["dataset"] == "cifar100" and summary["num_classes"] == 100 and summary["train_samples"] == 300
    assert (cache / "cifar100-train.beton").exists() and (cache / "cifar100-test.beton").exists()
    proc = train_cli(*args[:-1], "--out", tmp_path / "run")  # not quiet: it says what it does
    assert proc.returncode == 0
    # without --no-verify the home-made archive is refused by its md5 (conversion is cached, so remove it)
    for f in cache.glob("*.beton*"):
        f.unlink()
    proc = train_cli(*[a for a in args if a != "--no-verify"], "--out", tmp_path / "run2")
    assert proc.returncode == 1 and "md5 mismatch" in proc.stderr


class _Exploit:
    """Unpickling this runs a shell command: a checkpoint must never be loaded that way."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("option", ["--resume", "--teacher"])
def test_a_checkpoint_that_would_run_code_is_refused(data, tmp_path, option):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "model_name": "tinynet", "payload": _Exploit(marker)}, evil)
    proc = train_cli("--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", "1", "--device", "cpu",
                     "-q", "--batch-size", "32", "--out", tmp_path / "run", option, evil)
    assert proc.returncode == 1 and "refused" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not marker.exists()  # nothing ran
