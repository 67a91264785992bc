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


@pytest.mark.parametrize("options,message", [
    (dict(holdout=1.0), "--holdout 1: below 1 it is a fraction"),
    (dict(holdout=2.5), "--holdout 2.5: below 1 it is a fraction"),
    (dict(budget="100000h"), "--budget 100000h: over 31 days; give --epochs"),
])
def test_options_that_mean_nothing_sensible_are_refused(options, message):
    base = dict(data="d.beton", out="o")
    with pytest.raises(InputError) as caught:
        TrainConfig.from_options(**{**base, **options}).resolved()
    assert message in str(caught.value)
    TrainConfig.from_options(**base, holdout=2).resolved()
    TrainConfig.from_options(**base, holdout=0.99, budget="744h").resolved()


@pytest.mark.parametrize("extra,message", [
    (["--epochs", "1e-9"], "--epochs 1e-09: less than one step (an epoch of this data is 8 steps of 32)"),
    (["--epochs", "1", "--defect-class", "nosuch"], "--defect-class 'nosuch' is not one of the classes"),
])
def test_a_run_that_would_train_nothing_or_watch_no_class_is_refused(data, tmp_path, capsys, extra, message):
    from fastvis.cli.train import main

    args = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--device", "cpu", "-q", "--batch-size", "32",
            "--out", str(tmp_path / "run"), *extra]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_a_validation_file_of_another_image_size_is_refused_not_resized(data, tmp_path, capsys):
    import json

    import numpy as np

    from fastvis.beton import BetonWriter, IntField, RGBImageField
    from fastvis.cli.train import main

    small = tmp_path / "small.beton"  # 8 px images for a 16 px training set
    with BetonWriter(small, {"image": RGBImageField(), "label": IntField()}, capacity=8) as w:
        for y in range(8):
            w.write((np.full((8, 8, 3), 30 * y, np.uint8), y % 4))
    (tmp_path / "small.beton.json").write_text(json.dumps({"classes": list("abcd"), "num_classes": 4}))
    for loader in ("resident", "streaming"):
        args = ["--data", data[0], "--val", str(small), "--model", "tinynet", "--device", "cpu", "-q", "--epochs",
                "1", "--batch-size", "32", "--loader", loader, "--out", str(tmp_path / loader)]
        assert main(args) == 1
        err = capsys.readouterr().err.strip()
        assert "small.beton: its images are 3x8x8, the training images 3x16x16" in err, err
