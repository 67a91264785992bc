"""Helpers shared by the tests: small learnable datasets, trainer configurations, the command-line
tools run as a user would, and a run stopped at a chosen moment (:mod:`tests.interrupt`)."""
from __future__ import annotations

import io
import json
import locale
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
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


#: ``FASTVIS_TEST_FRESH=1``: every command-line run in a fresh interpreter, none from :mod:`tests.zygote`
FRESH = os.environ.get("FASTVIS_TEST_FRESH", "") not in ("", "0")


def run_cli(tool: str, *args, check: int | None = None, env: dict | None = None, timeout: float = 600,
            module: str | None = None, fresh: bool = False) -> subprocess.CompletedProcess:
    """``fastvis-<tool> args`` as its own process, run from the repository root as ``python -m``
    would; ``check``: the exit status it must end with. The process is forked from a warm
    starter (:mod:`tests.zygote`: the imports paid once per suite) unless ``fresh`` (or
    ``FASTVIS_TEST_FRESH=1``) asks for a new interpreter."""
    target = module or f"fastvis.cli.{tool}"
    argv = [str(a) for a in args]
    full_env = _env(env)
    if fresh or FRESH:
        proc = subprocess.run([sys.executable, "-m", target, *argv], capture_output=True, text=True,
                              timeout=timeout, cwd=REPO, env=full_env)
    else:
        proc = _zygote_run(target, argv, full_env, timeout)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stderr[-3000:])
    return proc


class _Zygote:
    def __init__(self, env: dict):
        self.folder = tempfile.mkdtemp(prefix="fastvis-zygote-")
        self.path = os.path.join(self.folder, "socket")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.zygote", self.path], cwd=REPO, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"tests.zygote did not start (said {line!r}, exit {self.proc.wait()})")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        for name in os.listdir(self.folder):
            os.unlink(os.path.join(self.folder, name))
        os.rmdir(self.folder)


_ZYGOTES: dict[tuple, _Zygote] = {}
_ZYGOTES_LOCK = threading.Lock()


def close_zygotes() -> None:
    with _ZYGOTES_LOCK:
        while _ZYGOTES:
            _ZYGOTES.popitem()[1].close()


def _zygote_for(env: dict) -> _Zygote:
    from tests.zygote import import_time_env

    key = import_time_env(env)
    with _ZYGOTES_LOCK:
        if key not in _ZYGOTES or _ZYGOTES[key].proc.poll() is not None:
            _ZYGOTES[key] = _Zygote(env)
        return _ZYGOTES[key]


def _text(data: bytes) -> str:
    """As ``subprocess.run(text=True)`` decodes: the locale's encoding, universal newlines."""
    return io.TextIOWrapper(io.BytesIO(data), encoding=locale.getpreferredencoding(False)).read()


def _zygote_run(module: str, args: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    zygote = _zygote_for(env)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}

    def drain(fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as f:
            while block := f.read(1 << 16):
                chunks[fd].append(block)

    readers = [threading.Thread(target=drain, args=(fd,), daemon=True) for fd in (out_r, err_r)]
    request = json.dumps({"module": module, "args": args, "cwd": str(REPO), "env": env}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
        conn.connect(zygote.path)
        try:
            socket.send_fds(conn, [request], [0, out_w, err_w])
        finally:
            os.close(out_w)
            os.close(err_w)
        for t in readers:
            t.start()
        pid = int(conn.recv(64))
        conn.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            answer = conn.recv(64)
        except TimeoutError:
            os.kill(pid, 9)
            raise subprocess.TimeoutExpired([module, *args], timeout) from None
        if not answer:
            raise RuntimeError("tests.zygote ended while a run was in flight")
        code = int(answer)
    for t in readers:  # the child's streams close when it (and anything it started) is gone
        t.join(max(1.0, deadline - time.monotonic()))
    return subprocess.CompletedProcess([sys.executable, "-m", module, *args], code,
                                       _text(b"".join(chunks[out_r])), _text(b"".join(chunks[err_r])))


def train_cli(*args, **kw) -> subprocess.CompletedProcess:
    return run_cli("train", *args, **kw)


def warm_runs_cli(tool: str, *args, **kw) -> subprocess.CompletedProcess:
    """``fastvis-<tool> args`` whose ablation runs are forked from it, warm (:mod:`tests.warm_runs`),
    rather than started as new interpreters."""
    return run_cli(tool, f"fastvis.cli.{tool}", *args, module="tests.warm_runs", **kw)


#: runs whose weights are compared bit for bit: the same sums in the same order in every process
#: (one thread, no oneDNN; see tests.interrupt)
EXACT = {"OMP_NUM_THREADS": "1", "TEST_EXACT": "1"}


def train_killed(*args, at: str = "checkpoint", n: int = 1, env: dict | None = None,
                 timeout: float = 600, check: int | None = -9, fresh: bool = False) -> subprocess.CompletedProcess:
    """fastvis-train killed (SIGKILL) at the ``n``-th ``at`` event (see :mod:`tests.interrupt`;
    ``at="none"``: not killed)."""
    return run_cli("train", at, str(n), "--", *args, module="tests.interrupt", check=check, env=env, timeout=timeout,
                   fresh=fresh)


def train_exact(*args, check: int | None = 0, fresh: bool = False) -> subprocess.CompletedProcess:
    """fastvis-train computing the same sums in every process (:data:`EXACT`); ``fresh``: in a new
    interpreter (see :func:`run_cli`)."""
    return train_killed(*args, at="none", n=0, env=EXACT, check=check, fresh=fresh)


def check_resume(args, tmp_path) -> tuple[dict, dict]:
    """Run ``args`` whole, then killed after its first checkpoint and resumed; the weights (and
    ``--hard-fraction``'s proxy's) must be equal (one thread each: :data:`EXACT`). The resumed run
    is a fresh interpreter (its own string-hash seed, as a user's resume would be). Returns both
    summaries."""
    train_exact(*args, "--out", tmp_path / "whole")
    train_killed(*args, "--out", tmp_path / "part", at="checkpoint", n=1, env=EXACT)
    assert not (tmp_path / "part" / "summary.json").exists()
    assert ckpt.load(tmp_path / "part")["epoch"] == 1
    train_exact(*args, "--out", tmp_path / "part", "--resume", tmp_path / "part", fresh=True)
    a, b = ckpt.load(tmp_path / "whole"), ckpt.load(tmp_path / "part")
    assert a["step"] == b["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert (a.get("hard_proxy") is None) == (b.get("hard_proxy") is None)
    for k in (a.get("hard_proxy") or {}).get("model", {}):  # --hard-fraction's proxy too
        assert torch.equal(a["hard_proxy"]["model"][k], b["hard_proxy"]["model"][k]), k
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


def require_cuda_kernels() -> None:
    """Skip, naming the reason, where numba cannot build CUDA kernels (the simulator can)."""
    from fastvis.kernels.cuda_ready import cuda_kernels_problem

    problem = cuda_kernels_problem()
    if problem is not None:
        pytest.skip(f"numba cannot run CUDA kernels here: {problem}")
