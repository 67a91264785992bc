"""The trainer's augmentation plan, built from the transform registry."""
from __future__ import annotations

import pytest
import torch

from fastvis import FastvisError
from fastvis.train.augment_plan import build_plan
from fastvis.train.data import build_train_data
from fastvis.train.ddp import World
from tests.helpers import train_config


def _plan(data, tmp_path, **options):
    cfg = train_config(data, tmp_path, **options)
    return build_plan(cfg, build_train_data(cfg, data[0], World(), torch.device("cpu")), World(), log=lambda m: None)


def test_the_options_turn_stages_on_in_the_registry_order(data, tmp_path):
    assert _plan(data, tmp_path).names == ["random_crop_flip", "normalize"]
    plan = _plan(data, tmp_path, cutmix=1.0, randaugment="2,9", cutout=4, flip="alternating", crop=False)
    assert plan.names == ["alternating_flip", "randaugment", "normalize", "cutout", "mix"]
    batch = next(iter(build_train_data(train_config(data, tmp_path), data[0], World(),
                                       torch.device("cpu")).batches(0, 0)))
    x, y, targets = plan(batch, 0, 0)
    assert x.dtype == torch.float32 and targets.shape == (len(y), 4)
    again = plan(batch, 0, 0)  # the same step draws the same augmentations
    assert torch.equal(x, again[0]) and torch.equal(targets, again[2])


def test_a_stage_whose_needs_the_run_does_not_meet_is_refused_with_its_option(data, tmp_path):
    with pytest.raises(FastvisError, match="--flip alternating: alternating_flip needs the resident loader.*"
                                           "not the streaming loader"):
        _plan(data, tmp_path, flip="alternating", loader="streaming")
    with pytest.raises(FastvisError, match="--randaugment takes N,M"):
        _plan(data, tmp_path, randaugment="two")
