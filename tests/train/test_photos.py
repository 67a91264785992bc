"""Training on photos: JPEG images of differing sizes through the jpeg loader (random-resized
crops, nvjpeg on CUDA, Pillow here) and the DALI pipeline (CPU here)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fastvis.beton import BetonWriter, IntField, RGBImageField
from fastvis.train.config import TrainConfig
from fastvis.train.data import crop_size
from fastvis.train.loop import train
from tests.helpers import check_resume, write_set
from tests.helpers import train_cli as cli


def write_photos(path, n: int, seed: int):
    """The 4 colour-and-stripe classes of the trainer tests as JPEGs of 24 to 44 pixels a side."""
    rng = np.random.default_rng(seed)
    colours = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]], np.int16)
    with BetonWriter(path, {"image": RGBImageField("jpeg", 90), "label": IntField()}, capacity=n) as w:
        for i in range(n):
            y = i % 4
            h, wd = (int(v) for v in rng.integers(24, 45, 2))
            img = colours[y] + rng.integers(-50, 50, (h, wd, 3))
            band = slice(h * (2 + y) // 10, h * (3 + y) // 10)
            img[band] = 255 - img[band]
            w.write((np.clip(img, 0, 255).astype(np.uint8), y))
    path.with_name(path.name + ".json").write_text(json.dumps({"classes": list("abcd"), "num_classes": 4}))
    return str(path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    return write_photos(root / "train.beton", 256, 0), write_photos(root / "val.beton", 64, 1)


def config(data, out, **kw):
    base = dict(data=data[0], val=data[1], model="tinynet", epochs=4, batch_size=32, lr=0.2, out=str(out),
                quiet=True, device="cpu", rrc_scale=0.35)
    base.update(kw)
    return TrainConfig.from_options(**base)


def test_crop_size_default():
    assert crop_size(np.array([[500, 375], [300, 400]]), None) == 224
    assert crop_size(np.array([[30, 41], [35, 33], [44, 40]]), None) == 32  # median shorter side 35 -> 32
    assert crop_size(np.array([[30, 41]]), 20) == 20


def test_differing_sizes_train_through_the_jpeg_loader(photos, tmp_path):
    summary = train(config(photos, tmp_path, image_size=24))
    assert summary["loader"] == "jpeg" and summary["image_size"] == [3, 24, 24]
    assert summary["steps"] == 32 and summary["val_samples"] == 64
    assert summary["top1"] > 0.5  # chance is 0.25
    # with a uint8 policy the loader hands over uint8 crops, normalised after the policy
    policy = train(config(photos, tmp_path / "ra", image_size=24, epochs=1, randaugment="1,5"))
    assert policy["loader"] == "jpeg" and policy["steps"] == 8 and np.isfinite(policy["val_loss"])


@pytest.mark.parametrize("data_kind", ["photos", "raw"])
def test_dali_loader_trains(dali, photos, tmp_path, data_kind):
    data = photos if data_kind == "photos" else (str(write_set(tmp_path / "t.beton", 256, 0)),
                                                 str(write_set(tmp_path / "v.beton", 64, 1)))
    summary = train(config(data, tmp_path / "run", loader="dali", image_size=24 if data_kind == "photos" else None))
    assert summary["loader"] == "dali" and summary["steps"] == 32
    assert summary["image_size"] == ([3, 24, 24] if data_kind == "photos" else [3, 16, 16])
    assert summary["top1"] > 0.5
    with pytest.raises(Exception, match="policies"):
        train(config(data, tmp_path / "bad", loader="dali", randaugment="1,5"))


def test_resident_loader_refuses_differing_sizes(photos, tmp_path):
    with pytest.raises(Exception, match="differ in size"):
        train(config(photos, tmp_path, loader="resident"))
    with pytest.raises(Exception, match="no whole batch"):  # rather than epochs without a step
        train(config(photos, tmp_path, batch_size=512))


def test_resume_with_the_jpeg_loader_gives_the_same_result(photos, tmp_path):
    args = ["--data", photos[0], "--val", photos[1], "--model", "tinynet", "--epochs", "3", "--batch-size", "32",
            "--lr", "0.2", "--device", "cpu", "-q", "--image-size", "24", "--rrc-scale", "0.35"]
    sa, sb = check_resume(args, tmp_path)
    assert sa["steps"] == sb["steps"] == 24 and sb["loader"] == "jpeg"
    assert sa["top1"] == sb["top1"] and sa["val_loss"] == sb["val_loss"]


def test_ddp_with_the_jpeg_loader(photos, tmp_path):
    """Two processes, each reading its half of every epoch through its own JpegLoader threads."""
    args = ["--data", photos[0], "--val", photos[1], "--model", "tinynet", "--epochs", "2", "--batch-size", "32",
            "--lr", "0.2", "--device", "cpu", "-q", "--image-size", "24", "--out", tmp_path,
            "--nproc-per-node", "2"]
    two = cli(*args, env={"OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr[-3000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["device"].endswith("x2") and s["loader"] == "jpeg" and s["steps"] == 16
    assert s["val_samples"] == 64 and np.isfinite(s["val_loss"])
