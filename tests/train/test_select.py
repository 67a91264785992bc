"""--hard-fraction: the model trains on the share of each batch that a small proxy finds hardest
(its exact resume: the resume test of tests/train/test_trainer.py)."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from fastvis import FastvisError, InputError
from fastvis.models import create_model
from fastvis.train import recipe
from fastvis.train.config import TrainConfig
from fastvis.train.loop import Trainer
from fastvis.train.loss import sample_losses
from fastvis.train.model import step_cost
from tests.helpers import train_cli, train_config


def _set_up(data, out, **kw):
    trainer = Trainer(train_config(data, out, **kw))
    trainer.setup()
    trainer.recorder.release()
    return trainer


def test_the_selector_keeps_the_samples_its_proxy_finds_hardest_and_trains_it_one_step_in_every(data, tmp_path):
    trainer = _set_up(data, tmp_path, hard_fraction=0.25)
    selector = trainer.selector
    assert selector.name == recipe.get("hard_proxy") and selector.every == recipe.get("hard_proxy_every") > 1
    batch = next(iter(trainer.data.batches(0, 0)))
    x, y, targets = trainer.plan(batch, 0, 0)
    proxy = copy.deepcopy(selector.raw_model).train()
    with torch.no_grad():
        losses = sample_losses(proxy(x), y, None, trainer.cfg.optim.label_smoothing)
    expected = losses.topk(8).indices  # a quarter of 32
    before = [p.detach().clone() for p in selector.raw_model.parameters()]
    px, py, pt = selector(x, y, None, step=1, factor=1.0, whiten=0.0)  # a ranking step
    assert pt is None and len(px) == len(py) == 8
    assert torch.equal(px, x[expected]) and torch.equal(py, y[expected])
    assert sorted(losses[expected].tolist(), reverse=True) == sorted(losses.tolist(), reverse=True)[:8]
    assert all(torch.equal(a, b) for a, b in zip(before, selector.raw_model.parameters()))  # ranking only
    soft = torch.nn.functional.one_hot(y, 4).float()
    _, _, picked_targets = selector(x, y, soft, step=4, factor=1.0, whiten=0.0)  # a learning step
    assert picked_targets.shape == (8, 4)
    assert any(not torch.equal(a, b) for a, b in zip(before, selector.raw_model.parameters()))


def test_soft_targets_and_label_smoothing_give_the_same_sample_losses_as_labels():
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    for eps in (0.0, 0.1):
        a = sample_losses(logits, y, None, eps)
        b = sample_losses(logits, y, torch.nn.functional.one_hot(y, 4).float(), eps)
        assert torch.allclose(a, b, atol=1e-6) and a.shape == (6,)
        assert a.mean() == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y, label_smoothing=eps)))


def test_a_run_trains_on_the_hardest_half_at_the_half_batchs_rate(data, tmp_path):
    sizes = []

    class Watched(Trainer):
        def loss(self, logits, labels, targets, images):
            sizes.append(len(logits))
            return super().loss(logits, labels, targets, images)

    half = Watched(train_config(data, tmp_path / "half", hard_fraction=0.5, lr=None)).fit()
    whole = Watched(train_config(data, tmp_path / "whole", lr=None, epochs=1)).fit()
    assert sizes[:24] == [16] * 24 and sizes[24:] == [32] * 8  # 3 epochs of 8 steps, then 1 epoch
    assert half["hyper"]["hard_fraction"] == 0.5 and half["steps"] == 24
    assert half["hyper"]["peak_lr"] == pytest.approx(whole["hyper"]["peak_lr"] / 2)  # linear in the trained batch
    assert half["top1"] > 0.5  # chance is 0.25
    saved = torch.load(tmp_path / "half" / "checkpoint.pt", weights_only=False)
    assert set(saved["hard_proxy"]) == {"model", "optimizer"}


def test_a_run_resumed_with_another_hard_fraction_is_refused(data, tmp_path):
    Trainer(train_config(data, tmp_path, epochs=1)).fit()
    with pytest.raises(FastvisError, match="whole batches; resume it without --hard-fraction"):
        Trainer(train_config(data, tmp_path, epochs=2, hard_fraction=0.5, resume=str(tmp_path))).fit()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["optim"]["hard_fraction"] == 1.0  # the run folder is left as it was


def test_class_incremental_runs_refuse_a_hard_fraction(data):
    with pytest.raises(InputError, match="--hard-fraction 0.5: not in incremental runs"):
        TrainConfig.from_options(data=data[0], incremental="B0-2", hard_fraction=0.5).check()


def test_a_budget_plans_more_epochs_when_a_step_trains_on_less():
    model = create_model("fastnet", 100)
    cfg = TrainConfig.from_options(data="x", hard_fraction=0.5)
    cost = step_cost(cfg, model, (3, 32, 32), 100)
    assert 0.5 < cost < 0.6  # the proxy's ranking costs a few percent of fastnet's step
    assert step_cost(TrainConfig.from_options(data="x"), model, (3, 32, 32), 100) == 1.0
    small = step_cost(cfg, create_model("fastnet_s", 100), (3, 32, 32), 100)
    assert cost < small < 1  # the smaller the model, the larger the proxy's share


def test_two_processes_train_on_the_hardest_share_of_their_parts(data, tmp_path):
    args = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", "1", "--batch-size", "32",
            "--lr", "0.2", "--device", "cpu", "-q", "--seed", "3", "--no-amp", "--hard-fraction", "0.5"]
    two = train_cli(*args, "--out", tmp_path / "two", "--nproc-per-node", "2", env={"OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr[-3000:]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["device"].endswith("x2") and summary["steps"] == 8 and summary["hyper"]["hard_fraction"] == 0.5
    saved = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=False)
    assert set(saved["hard_proxy"]) == {"model", "optimizer"}
