"""Radiographs end to end: DICOM folder -> .beton (--size, masks) -> resident float batches ->
training with defect synthesis -> report."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from fastvis.loader import ResidentDataset
from tests.conftest import _missing


@pytest.fixture(scope="module")
def xray(tmp_path_factory):
    from tests.radiographs import build_xray_folder

    root = tmp_path_factory.mktemp("xray")
    try:
        train, train_csv = build_xray_folder(root / "train", 24, tile=96, seed=0)
        val, val_csv = build_xray_folder(root / "val", 12, tile=96, seed=1)
    except FileNotFoundError as exc:
        _missing(str(exc))
    for name, folder, csv_path in (("train", train, train_csv), ("val", val, val_csv)):
        proc = subprocess.run([sys.executable, "-m", "fastvis.cli.convert", folder, root / f"{name}.beton",
                               "--size", "48", "--labels", csv_path, "-q"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    return root


def test_resident_radiographs_are_float_batches_with_masks(xray):
    ds = ResidentDataset.load(xray / "train.beton")
    assert ds.images.dtype == torch.int16 and ds.unsigned16  # 2 bytes a pixel on the device
    assert ds.image_shape == (1, 48, 48) and ds.classes == ["defect", "normal"]
    x, y = ds.batch(torch.arange(len(ds)))
    assert x.dtype == torch.float32 and x.shape == (24, 1, 48, 48)
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and float(x.std()) > 0.01
    assert ds.masks.shape == (24, 48, 48)
    assert (ds.masks.flatten(1).amax(1) > 0).tolist() == (y == 0).tolist()  # defects have masks
    mean, std = ds.mean_std()
    assert len(mean) == 1 and 0 < mean[0] < 1 and std[0] > 0


def test_training_with_defect_synthesis_writes_the_report(xray, tmp_path):
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run(
        [sys.executable, "-m", "fastvis.cli.train", "--data", xray / "train.beton", "--val", xray / "val.beton",
         "--model", "tinynet", "--epochs", "2", "--batch-size", "8", "--defect-paste", "0.5", "--out", out, "-q"],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["image_size"] == [1, 48, 48] and summary["num_classes"] == 2
    assert summary["defect_pastes"] > 0 and summary["hyper"]["defect_paste"] == 0.5
    assert (out / "report.pdf").stat().st_size > 0
    assert 0 <= summary["top1"] <= 1


def test_radiograph_configuration_errors(xray, tmp_path):
    from fastvis import FastvisError
    from fastvis.train.config import TrainConfig
    from fastvis.train.loop import Trainer

    cfg = TrainConfig.from_options(data=str(xray / "val.beton"), val=str(xray / "val.beton"), model="tinynet",
                                   epochs=1, defect_paste=0.5, defect_class="nothing", out=str(tmp_path / "r"),
                                   batch_size=4,
                                   quiet=True)
    with pytest.raises(FastvisError, match="not one of the classes"):
        Trainer(cfg).setup()
    cfg = cfg.replace(defect_class=None, randaugment="2,9")
    with pytest.raises(FastvisError, match="RGB"):
        Trainer(cfg).setup()
