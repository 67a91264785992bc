"""Helpers shared by the tests: small learnable datasets, trainer configurations, the command-line
tools run as a user would, and a run stopped at a chosen moment (:mod:`tests.interrupt`)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fastvis.beton import BetonWriter, IntField, RGBImageField
from fastvis.train import checkpoint as ckpt
from fastvis.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
COLOURS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]], np.int16)


def write_set(path: Path, n: int, seed: int) -> Path:
    """4 classes told apart by colour and a stripe, with noise: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    with BetonWriter(path, {"image": RGBImageField(), "label": IntField()}, capacity=n) as w:
        for y in labels:
            img = COLOURS[y] + rng.integers(-60, 60, (16, 16, 3))
            img[4 + 2 * y : 6 + 2 * y] = 255 - img[4 + 2 * y : 6 + 2 * y]
            w.write((np.clip(img, 0, 255).astype(np.uint8), int(y)))
    path.with_name(path.name + ".json").write_text(json.dumps({"classes": list("abcd"), "num_classes": 4}))
    return path


def train_config(data, out, **kw) -> TrainConfig:
    """A small run on ``data`` (train, val): tinynet, 3 epochs of batch 32, CPU, quiet."""
    base = dict(data=data[0], val=data[1], model="tinynet", epochs=3, batch_size=32, lr=0.2, out=str(out),
                quiet=True, device="cpu")
    base.update(kw)
    return TrainConfig.from_options(**base)


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ, **(extra or {}))
    env.pop("NUMBA_ENABLE_CUDASIM", None)  # the conftest's simulator is for the kernel tests only
    return env


def run_cli(tool: str, *args, check: int | None = None, env: dict | None = None, timeout: float = 600,
            module: str | None = None) -> subprocess.CompletedProcess:
    """``fastvis-<tool> args`` in a subprocess (from the repository root); ``check``: the exit
    status it must end with."""
    target = module or f"fastvis.cli.{tool}"
    proc = subprocess.run([sys.executable, "-m", target, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=_env(env))
    if check is not None:
        assert proc.returncode == check, proc.stderr[-3000:]
    return proc


def train_cli(*args, **kw) -> subprocess.CompletedProcess:
    return run_cli("train", *args, **kw)


#: runs whose weights are compared bit for bit: the same sums in the same order in every process
#: (one thread, no oneDNN; see tests.interrupt)
EXACT = {"OMP_NUM_THREADS": "1", "TEST_EXACT": "1"}


def train_killed(*args, at: str = "checkpoint", n: int = 1, env: dict | None = None,
                 timeout: float = 600, check: int | None = -9) -> subprocess.CompletedProcess:
    """fastvis-train killed (SIGKILL) at the ``n``-th ``at`` event (see :mod:`tests.interrupt`;
    ``at="none"``: not killed)."""
    proc = subprocess.run([sys.executable, "-m", "tests.interrupt", at, str(n), "--", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO, env=_env(env))
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stderr[-3000:])
    return proc


def train_exact(*args, check: int | None = 0) -> subprocess.CompletedProcess:
    """fastvis-train computing the same sums in every process (:data:`EXACT`)."""
    return train_killed(*args, at="none", n=0, env=EXACT, check=check)


def check_resume(args, tmp_path) -> tuple[dict, dict]:
    """Run ``args`` whole, then killed after its first checkpoint and resumed; the weights must
    be equal (one thread each: :data:`EXACT`). Returns both summaries."""
    train_exact(*args, "--out", tmp_path / "whole")
    train_killed(*args, "--out", tmp_path / "part", at="checkpoint", n=1, env=EXACT)
    assert not (tmp_path / "part" / "summary.json").exists()
    assert ckpt.load(tmp_path / "part")["epoch"] == 1
    train_exact(*args, "--out", tmp_path / "part", "--resume", tmp_path / "part")
    a, b = ckpt.load(tmp_path / "whole"), ckpt.load(tmp_path / "part")
    assert a["step"] == b["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    return (json.loads((tmp_path / "whole" / "summary.json").read_text()),
            json.loads((tmp_path / "part" / "summary.json").read_text()))


def missing(reason: str):
    """Skip for users without the resource; under CI a missing resource is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


def extract_tar(archive: Path, dest: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest


class FakeClock:
    """A clock the test moves: simulated seconds."""

    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, seconds: float) -> None:
        self.t += seconds
