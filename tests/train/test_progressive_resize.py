"""--progressive-resize: a run trains on smaller images first and on the whole size by the end
of the ramp; its evaluations and its last steps see the whole size."""
from __future__ import annotations

import pytest
import torch

from fastvis import FastvisError, InputError
from fastvis.models import create_model
from fastvis.train.config import TrainConfig
from fastvis.train.loop import Trainer
from fastvis.train.model import build_model, step_cost
from tests.helpers import train_config


def test_a_run_trains_small_first_and_whole_after_the_ramp_and_evaluates_whole(data, tmp_path):
    trained, evaluated = [], []

    class Watched(Trainer):
        def setup(self):
            super().setup()

            def seen(module, inputs):
                (trained if module.training else evaluated).append(inputs[0].shape[-1])
            self.raw_model.register_forward_pre_hook(seen)

    summary = Watched(train_config(data, tmp_path, progressive_resize=0.5, progressive_ramp="0.25,0.75")).fit()
    assert len(trained) == 24  # 3 epochs of 8 steps on 16-px images
    assert trained[:6] == [8] * 6 and trained[18:] == [16] * 6  # 0.5 of 16 for the first quarter, whole after 3/4
    assert trained == sorted(trained) and len(set(trained)) >= 3  # growing, with sizes between
    assert evaluated and set(evaluated) == {16}
    assert summary["hyper"]["progressive_resize"] == 0.5 and summary["top1"] > 0.5  # chance is 0.25


def test_a_budget_plans_more_epochs_for_smaller_images():
    model = create_model("fastnet", 100)
    whole = step_cost(TrainConfig.from_options(data="x"), model, (3, 32, 32), 100)
    small = step_cost(TrainConfig.from_options(data="x", progressive_resize=0.75), model, (3, 32, 32), 100)
    assert whole == 1.0 and 0.6 < small < 0.8  # half the run at 24/32 (0.56 of the pixels), a ramp, the end whole
    both = step_cost(TrainConfig.from_options(data="x", progressive_resize=0.75, hard_fraction=0.5), model,
                     (3, 32, 32), 100)
    half = step_cost(TrainConfig.from_options(data="x", hard_fraction=0.5), model, (3, 32, 32), 100)
    assert both == pytest.approx(small * half)


def test_a_model_that_cannot_take_the_smallest_images_is_refused_before_training():
    cfg = TrainConfig.from_options(data="x", progressive_resize=0.25, device="cpu")
    with pytest.raises(FastvisError, match=r"--progressive-resize 0.25: fastnet cannot take the run's smallest "
                                           r"images, 8 px high"):
        build_model("fastnet", cfg, 10, (3, 32, 32), torch.device("cpu"))
    build_model("fastnet", cfg.replace(progressive_resize=0.5), 10, (3, 32, 32), torch.device("cpu"))


@pytest.mark.parametrize("ramp", ["0.9,0.5", "half", "0.5,2"])
def test_a_bad_ramp_is_refused_naming_the_option(ramp):
    with pytest.raises(InputError, match="--progressive-ramp"):
        TrainConfig.from_options(data="x", progressive_ramp=ramp).check()
    with pytest.raises(InputError, match="--progressive-resize 0.1: must lie in"):
        TrainConfig.from_options(data="x", progressive_resize=0.1).check()
