"""End to end on the real CIFAR-10 images (JPEG copies in ../shared/data)."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from fastvis.beton import BetonReader
from tests.helpers import run_cli as cli

pytestmark = pytest.mark.slow


def test_convert_real_cifar10_train_split(cifar10_jpeg_tar, tmp_path):
    out = tmp_path / "cifar10-train.beton"
    proc = cli("convert", cifar10_jpeg_tar, out, "-q", check=0)
    assert "50000 samples, 10 classes" in proc.stdout
    r = BetonReader(out)
    assert len(r) == 50_000
    assert np.bincount(r.column("label")).tolist() == [5000] * 10
    assert r.info["classes"] == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                 "truck"]
    images = r.read_batch("image", np.arange(len(r)))
    assert images.shape == (50_000, 32, 32, 3)
    # pixels equal a direct decode of the archive member; find a few by their label order
    with tarfile.open(cifar10_jpeg_tar) as tar:
        members = {}
        for info in tar:
            if info.isfile() and info.name.startswith("train/") and info.name.endswith(("0000.jpg", "0001.jpg")):
                members[info.name] = np.asarray(Image.open(io.BytesIO(tar.extractfile(info).read())).convert("RGB"))
    assert len(members) == 20
    as_bytes = {img.tobytes() for img in images}
    assert all(img.tobytes() in as_bytes for img in members.values())
    labels = r.column("label")
    for name, img in members.items():
        cls = r.info["classes"].index(name.split("/")[1])
        assert any(np.array_equal(images[i], img) for i in np.flatnonzero(labels == cls)[:2] )
