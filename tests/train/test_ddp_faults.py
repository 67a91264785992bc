"""DDP faults: a launcher that dies (the workers end with it), a rank that stops answering (the run
ends with one line), a rank that dies under torchrun --max-restarts (the run restarts and ends as
an uninterrupted one)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(condition, limit: float = 300.0, every: float = 0.5) -> bool:
    """Poll ``condition`` until it holds or ``limit`` seconds pass (a bound against hanging, not
    a speed requirement)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(every)
    return condition()


def _start(how: list[str], data, out: Path, epochs: int = 500, stderr=subprocess.DEVNULL,
           extra: list[str] = ()) -> subprocess.Popen:
    """A two-process tinynet run into ``out``, started by ``how`` (torchrun, or fastvis-train's own
    launcher), one thread a process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    return subprocess.Popen([sys.executable, "-m", *how, "--data", data[0], "--val", data[1], "--model", "tinynet",
                             "--epochs", str(epochs), "--batch-size", "32", "--device", "cpu", "-q", "--out", str(out),
                             *extra],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)


TORCHRUN = ["torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "fastvis.cli.train"]
LAUNCHER = ["fastvis.cli.train", "--nproc-per-node", "2"]


def _end(proc: subprocess.Popen, pids: list[int]) -> None:
    if proc.poll() is None:
        proc.kill()
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_end_when_the_torchrun_agent_is_killed(data, tmp_path):
    out = tmp_path / "run"
    agent = _start(TORCHRUN, data, out)
    workers: list[int] = []
    try:
        assert _wait(lambda: (out / "checkpoint.pt").exists()), "the run never wrote its first checkpoint"
        workers = _children(agent.pid)
        assert len(workers) == 2
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        assert _wait(lambda: not any(_alive(w) for w in workers), limit=60), "workers outlived their agent"
    finally:
        _end(agent, workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and SIGSTOP")
def test_a_rank_that_stops_answering_ends_the_run_with_one_line(data, tmp_path):
    """SIGSTOP one of two workers: the other gives up after --ddp-timeout with a line that says so,
    and the run ends (non-zero) instead of blocking for ever."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    out = tmp_path / "run"
    agent = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                              "-m", "fastvis.cli.train", "--data", data[0], "--val", data[1], "--model", "tinynet",
                              "--epochs", "500", "--batch-size", "32", "--device", "cpu", "-q", "--out", str(out),
                              "--ddp-timeout", "10"],
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        assert _wait(lambda: (out / "checkpoint.pt").exists()), "the run never wrote its first checkpoint"
        workers = _children(agent.pid)
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGSTOP)
        assert _wait(lambda: not _alive(workers[0]), limit=300), "the other rank kept waiting for the stopped one"
        # the survivor has given up; torchrun would give the stopped rank 30 s to answer its SIGTERM
        # before killing it: do that now
        os.kill(workers[1], signal.SIGKILL)
        assert _wait(lambda: agent.poll() is not None, limit=120), "the run did not end"
        err = agent.stderr.read()
        assert agent.returncode != 0
        assert "another process stopped answering or died (waited up to 10 s, --ddp-timeout)" in err, err[-3000:]
    finally:
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if agent.poll() is None:
            agent.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_torchrun_restarts_a_run_whose_rank_died_and_it_ends_as_an_uninterrupted_one(data, tmp_path):
    """Elastic recovery: under torchrun --max-restarts 1 with --resume auto, one command line
    serves the first start and the restart; a worker killed mid-run (rank 1, right after the
    second epoch's checkpoint, on the first start only: tests.interrupt) makes torchrun start both
    again, they continue from the last checkpoint, and the run ends equal to one never killed."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("NUMBA_ENABLE_CUDASIM", None)

    def command(out, event):
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--max-restarts=1",
                "-m", "tests.interrupt", event, "2", "--", "--data", data[0], "--val", data[1], "--model", "tinynet",
                "--epochs", "6", "--batch-size", "32", "--device", "cpu", "-q", "--out", str(out), "--resume", "auto",
                "--ddp-timeout", "30", "--no-amp"]

    ref = subprocess.run(command(tmp_path / "ref", "none"), cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    out, marker = tmp_path / "run", tmp_path / "killed"
    run = subprocess.run(command(out, "checkpoint"), cwd=REPO, capture_output=True, text=True, timeout=600,
                         env=dict(env, INTERRUPT_RANK="1", INTERRUPT_ONCE=str(marker)))
    assert marker.exists(), "the worker was never killed"
    assert run.returncode == 0, run.stderr[-3000:]
    # torchrun's account names the first worker it found dead: the killed rank (SIGKILL, -9) or, when
    # the survivor aborted on the lost peer before torchrun polled, that one (SIGABRT, -6); a race
    assert re.search(r"failed \(exitcode: -(9|6)\) local_rank: [01]", run.stderr), run.stderr[-3000:]
    a = json.loads((out / "summary.json").read_text())
    b = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert a["steps"] == b["steps"] == 48 and a["val_loss"] == b["val_loss"] and a["top1"] == b["top1"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_killing_the_launcher_ends_torchrun_and_its_workers(data, tmp_path):
    """kill -9 of `fastvis-train --nproc-per-node 2` leaves no agent nor workers training on."""
    out = tmp_path / "run"
    launcher = _start(LAUNCHER, data, out, epochs=50000)  # long enough never to end on its own in the test
    family: list[int] = []
    try:
        assert _wait(lambda: (out / "checkpoint.pt").exists()), "the run never wrote its first checkpoint"
        (agent,) = _children(launcher.pid)
        family = [agent, *_children(agent)]
        assert len(family) == 3
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        assert _wait(lambda: not any(_alive(p) for p in family), limit=60), "torchrun or workers outlived the launcher"
    finally:
        _end(launcher, family)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_killed_agent_is_one_line_saying_how_to_continue(data, tmp_path):
    out = tmp_path / "run"
    launcher = _start(LAUNCHER, data, out, stderr=subprocess.PIPE)
    try:
        assert _wait(lambda: (out / "checkpoint.pt").exists()), "the run never wrote its first checkpoint"
        (agent,) = _children(launcher.pid)
        os.kill(agent, signal.SIGKILL)
        err = launcher.communicate(timeout=120)[1]
        assert launcher.returncode == 128 + signal.SIGKILL
        assert f"the torchrun agent (pid {agent}) was killed by SIGKILL" in err and "--resume auto" in err, err
    finally:
        _end(launcher, [])


def test_a_failed_rank_is_its_one_line_and_torchrun_s_account_goes_to_a_log(data, tmp_path):
    """Both ranks refuse a damaged --teacher: the launcher shows the ranks' line once and where
    torchrun's traceback and failure table went (OUT/torchrun.log), not those 40-odd lines."""
    junk = tmp_path / "junk.pt"
    junk.write_bytes(bytes(range(256)) * 4)
    out = tmp_path / "run"
    proc = _start(LAUNCHER, data, out, epochs=1, stderr=subprocess.PIPE, extra=["--teacher", str(junk)])
    err = proc.communicate(timeout=300)[1]
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 2, err
    assert lines[0] == f"fastvis-train: error: {junk}: not a checkpoint (neither a torch zip file nor a pickle)"
    assert "torchrun's account of the failure" in lines[1] and str(out / "torchrun.log") in lines[1]
    log = (out / "torchrun.log").read_text()
    assert "ChildFailedError" in log and log.count("fastvis-train: error:") == 2  # each rank's line, kept
