"""Options checked before any work: one line naming the option, never a traceback later."""
from __future__ import annotations

import pytest
import torch

from fastvis import FastvisError, InputError
from fastvis.train.augment_plan import build_plan
from fastvis.train.config import TrainConfig
from fastvis.train.data import build_train_data
from fastvis.train.ddp import World
from tests.helpers import train_config


@pytest.mark.parametrize("options,message", [
    (dict(lr=1e308), "--lr 1e+308: must lie in (0, 100]"),
    (dict(seed=2**70), "--seed 1180591620717411303424: must lie in"),
    (dict(seed=-1), "--seed -1: must lie in"),
    (dict(randaugment="99,999"), "--randaugment 99,999: N ops per image from 1 to 16, magnitude M from 0 to 30"),
    (dict(randaugment="2,31"), "magnitude M from 0 to 30"),
    (dict(model=""), "--model '': name a model"),
    (dict(model="  "), "--model '': name a model"),
    (dict(nproc_per_node=2, batch_size=63), "--batch-size 63: must be a multiple of the 2 processes"),
])
def test_nonsense_options_are_refused_in_one_line(options, message):
    base = dict(data="d.beton", epochs=1, out="o")
    with pytest.raises(InputError) as caught:
        TrainConfig.from_options(**{**base, **options}).resolved()
    assert message in str(caught.value) and "\n" not in str(caught.value)
    TrainConfig.from_options(**base, lr=100, seed=2**62, randaugment="16,30", nproc_per_node=2,
                             batch_size=64).resolved()  # the edges themselves are fine


def test_padding_as_large_as_the_image_is_refused_before_training(data, tmp_path):
    cfg = train_config(data, tmp_path, padding=16)  # 16 px images
    train = build_train_data(cfg, data[0], World(), torch.device("cpu"))
    with pytest.raises(FastvisError, match="--padding 16: reflect padding must be smaller than the 16x16"):
        build_plan(cfg, train, World(), log=lambda m: None)
    assert build_plan(train_config(data, tmp_path, padding=15), train, World(), log=lambda m: None).names[0] == \
        "random_crop_flip"


@pytest.mark.parametrize("kind,message", [
    ("fifo", "not a regular file"), ("/dev/zero", "not a regular file"), ("folder", "is a folder"),
    ("huge", "over 1024 KiB: not a config file"), ("binary", "not a text file"),
])
def test_a_config_that_is_no_file_of_options_is_one_line_without_waiting(tmp_path, capsys, kind, message):
    import os

    from fastvis.cli.train import main

    path = tmp_path / "c.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "huge":
        path.write_text('{"lr": 0.1, "x": "' + "a" * (1 << 20) + '"}')
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe\x00garbage")
    else:
        path = kind
    assert main(["--config", str(path), "--data", "d.beton"]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and str(path) in err and len(err.splitlines()) == 1, err
