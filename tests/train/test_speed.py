"""The speed probe times a model in the precision its run will train in: a budget's model and
epochs come from it, and a step under bf16 can take half the time of one in fp32."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from fastvis.models import create_model
from fastvis.train import model as model_module
from fastvis.train import recipe, speed
from fastvis.train.model import pick_model, planned_epochs, run_precision
from tests.helpers import train_config

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def timed(monkeypatch):
    """Each step timed by the probe is recorded as its precision (True: bf16) and takes 1 s in
    fp32 and ``seconds["bf16"]`` under bf16; nothing is run."""
    calls, seconds = [], {"bf16": 0.5}

    def fake(model, x, y, amp, repeats):
        calls.append(amp)
        return seconds["bf16"] if amp else 1.0

    monkeypatch.setattr(speed, "_step_seconds", fake)
    return calls, seconds


def _speed(amp):
    net = create_model("tinynet", 4, in_channels=3)
    return speed.measure_speed(net, (3, 16, 16), 4, CPU, channels_last=False, amp=amp, batch=64)


def test_one_precision_is_timed_when_it_is_known(timed):
    calls, _ = timed
    bf16 = _speed(True)
    assert calls == [True] and bf16.images_per_second == 128 and bf16.amp is True and bf16.ratio is None
    calls.clear()
    fp32 = _speed(False)
    assert calls == [False] and fp32.images_per_second == 64 and fp32.amp is False


def test_both_are_timed_when_the_probe_decides_and_the_speed_is_the_chosen_ones(timed):
    calls, seconds = timed
    s = _speed(None)
    assert sorted(calls) == [False, True] and s.amp is True and s.ratio == 2.0 and s.images_per_second == 128
    seconds["bf16"] = 1 / (recipe.get("bf16_min_gain") - 0.1)  # faster, but not by enough to be taken
    s = _speed(None)
    assert s.amp is False and s.images_per_second == 64  # the run trains in fp32: its speed, not bf16's


def test_the_run_precision_follows_the_choice_of_amp(monkeypatch):
    monkeypatch.setattr(model_module, "cpu_has_fast_bf16", lambda: True)
    assert run_precision(True, CPU)[0] is True and run_precision(False, CUDA)[0] is False
    assert run_precision(None, CUDA)[0] is True  # CUDA runs train under bf16 unless told otherwise
    assert run_precision(None, CPU)[0] is None  # the probe of both decides
    monkeypatch.setattr(model_module, "cpu_has_fast_bf16", lambda: False)
    assert run_precision(None, CPU)[0] is False


@pytest.mark.parametrize("amp", [True, False])
def test_a_budget_chooses_its_model_at_the_speed_of_the_precision_asked(data, tmp_path, timed, monkeypatch, amp):
    """``--amp`` with a budget: every candidate of the ladder is timed under bf16, not in fp32
    (which made a run at bf16 speed choose the model of half its speed)."""
    calls, _ = timed
    monkeypatch.setattr(model_module, "cpu_has_fast_bf16", lambda: True)
    cfg = train_config(data, tmp_path, model=None, epochs=None, budget=600.0, amp=amp)
    name, s, why = pick_model(cfg, CPU, (3, 16, 16), 4, 256, 600.0, log=lambda *a: None)
    assert calls and set(calls) == {amp} and s.amp is amp
    assert s.images_per_second == recipe.get("speed_probe_batch")[0] / (0.5 if amp else 1.0)


def test_a_named_model_plans_its_epochs_at_the_speed_of_its_precision(data, tmp_path, timed):
    calls, _ = timed
    cfg = train_config(data, tmp_path, epochs=None, budget=600.0, lr=None, optimizer="muon", amp=True)
    shape = SimpleNamespace(image_shape=(3, 16, 16), num_classes=4, n=256)
    net = create_model("tinynet", 4, in_channels=3)
    epochs = planned_epochs(cfg, net, None, shape, CPU, 100.0, log=lambda *a: None)
    assert calls == [True]
    fp32 = planned_epochs(cfg.replace(amp=False), net, None, shape, CPU, 100.0, log=lambda *a: None)
    assert calls == [True, False] and epochs == pytest.approx(2 * fp32) and fp32 > 0


def test_a_named_model_probed_for_its_precision_is_not_timed_again_for_its_plan(data, tmp_path, timed, monkeypatch):
    from fastvis.train.loop import Trainer
    from tests.helpers import FakeClock

    calls, _ = timed
    monkeypatch.setattr(model_module, "cpu_has_fast_bf16", lambda: True)
    t = Trainer(train_config(data, tmp_path, epochs=None, budget=600.0, lr=None, optimizer="muon", amp=None),
                FakeClock())
    t.setup()
    assert sorted(calls) == [False, True]  # the precision's probe, once each way; the plan reuses its speed
    assert t.amp is True and t.planned_epochs is not None


def test_the_ladder_s_largest_net_is_taken_only_for_sets_as_large_as_it_was_measured_on(monkeypatch):
    """fastnet_l leads on CIFAR-100's 45,000 images at 12 epochs; a set under the rung's size keeps
    the nets below it however long the budget, and a budget too short for its epochs does too."""
    (top, epochs, images), (below, _, _) = recipe.get("ladder_cpu")[:2]
    size = sum(p.numel() for p in create_model(top, 100).parameters())
    # the probe's step: 1 s for the largest net (64 images/s), a tenth of that for every other
    monkeypatch.setattr(speed, "_step_seconds",
                        lambda model, *a: 1.0 if sum(p.numel() for p in model.parameters()) == size else 0.1)
    assert images > 0
    seconds = epochs * images / 64

    def choose(samples, budget, log=lambda *a: None):
        return speed.choose_model((3, 32, 32), 100, samples, budget, CPU, False, False, log=log)[0]

    assert choose(images, seconds) == top
    lines = []
    assert choose(images - 1, 100 * seconds, lines.append) == below
    assert any(f"{top} not timed" in line for line in lines)
    assert choose(images, 0.99 * seconds) == below  # large enough, but given fewer epochs than it needs
