"""The real CIFAR-100 training split (``../shared/data``): conversion, and the held-out split
tuning runs use."""
from __future__ import annotations

import numpy as np
import pytest

from fastvis.beton import BetonReader
from fastvis.loader import holdout_split
from tests.helpers import run_cli as cli

pytestmark = pytest.mark.slow


def test_convert_real_cifar100_and_hold_out_a_balanced_part(cifar100_train_tar, tmp_path):
    out = tmp_path / "c100.beton"
    refused = cli("convert", cifar100_train_tar, out, "-q")
    assert refused.returncode == 1 and "md5" in refused.stderr and not out.exists()  # not the official archive
    proc = cli("convert", cifar100_train_tar, out, "--no-verify", "-q", check=0)
    assert proc.returncode == 0, proc.stderr
    r = BetonReader(out)
    labels, coarse = r.column("label"), r.column("coarse_label")
    assert len(r) == 50_000 and np.bincount(labels).tolist() == [500] * 100
    assert np.bincount(coarse).tolist() == [2500] * 20 and len(r.info["classes"]) == 100
    images = r.read_batch("image", np.arange(0, 50_000, 97))
    assert images.shape[1:] == (32, 32, 3) and 100 < images.mean() < 150  # real photos, not noise
    train_ids, held = holdout_split(labels, 5000)
    assert np.bincount(labels[held]).tolist() == [50] * 100 and len(train_ids) == 45_000
