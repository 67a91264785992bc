"""Shared fixtures: real-data location, the ffcv reference reader, CIFAR archive builders."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# Without a GPU, numba's CUDA simulator runs the @cuda.jit kernels on the CPU (tiny shapes
# only). It must be chosen before numba.cuda is first imported.
HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from tests.cifar_archive import build_cifar_archive  # noqa: E402
from tests.helpers import SHARED_DATA, close_zygotes, missing, write_set  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    close_zygotes()  # the warm starters of the command-line runs (tests.zygote)


@pytest.fixture(autouse=True)
def fp32_unless_a_test_asks(monkeypatch):
    """Runs in the test process train in fp32 on every CPU. Where the CPU computes bf16 natively
    the precision is otherwise a timed choice (:func:`fastvis.train.model.choose_amp`), which a
    busy machine can tip either way between two runs of one test. The tests of that choice patch
    ``cpu_has_fast_bf16`` themselves; command-line runs that compare results give ``--no-amp``."""
    from fastvis.train import model

    monkeypatch.setattr(model, "cpu_has_fast_bf16", lambda: False)


@pytest.fixture(scope="session")
def cifar10_jpeg_tar() -> Path:
    path = SHARED_DATA / "cifar10-jpeg.tar.xz"
    if not path.exists():
        missing(f"real CIFAR-10 copy not found at {path}")
    return path


@pytest.fixture(scope="session")
def cifar100_train_tar() -> Path:
    path = SHARED_DATA / "cifar-100-python-train.tar.gz"
    if not path.exists():
        missing(f"real CIFAR-100 training split not found at {path}")
    return path


@pytest.fixture(scope="session")
def ffcv():
    try:
        import ffcv  # noqa: F401
        import ffcv.loader  # noqa: F401
    except Exception as exc:  # ImportError, or its compiled part failing to load
        missing(f"ffcv (the reference reader) is not importable: {exc}")
    return ffcv


@pytest.fixture(scope="session")
def dali():
    """NVIDIA DALI (the ``dali`` extra): the DALI loader and the benchmark's DALI rows."""
    try:
        import nvidia.dali  # noqa: F401
    except Exception as exc:
        missing(f"NVIDIA DALI is not importable (pip install 'fastvis[dali]'): {exc}")
    return nvidia.dali


@pytest.fixture(scope="session")
def cifar_archives(tmp_path_factory):
    """Small CIFAR-10 and CIFAR-100 archives in the official pickle format, with their arrays."""
    root = tmp_path_factory.mktemp("cifar")
    return {
        name: build_cifar_archive(root, name, n_train=n_train, n_test=n_test, seed=seed)
        for name, n_train, n_test, seed in (("cifar10", 60, 20, 1), ("cifar100", 250, 50, 2))
    }


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> tuple[str, str]:
    """(train, val) .beton files of the 4-class colour-and-stripe set (256 and 64 images of 16 px)."""
    root = tmp_path_factory.mktemp("data")
    return str(write_set(root / "train.beton", 256, 0)), str(write_set(root / "val.beton", 64, 1))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


#: what makes a test slow: it starts a training in another process (or torchrun, or an
#: ablation), kills a run, or compiles a model; such tests are marked ``slow`` here, whether or
#: not their module says so, and ``make test-fast`` (``-m "not slow"``) leaves them out
SLOW_CALLS = ("train_cli(", "warm_runs_cli(", "train_killed(", "train_exact(", "check_resume(", "torch.distributed.run",
              "compile=True", "_ablate(", "--nproc-per-node", "fastvis.cli.train")


def _starts_slow_work(item) -> bool:
    import inspect

    fn = getattr(item, "function", None)
    try:
        source = inspect.getsource(fn) if fn is not None else ""
    except (OSError, TypeError):
        return False
    return any(call in source for call in SLOW_CALLS)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "slow" not in item.keywords and _starts_slow_work(item):
            item.add_marker(pytest.mark.slow)
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
