"""``python -m tests.warm_runs MODULE ARGS``: run ``python -m MODULE ARGS`` (fastvis-ablate) with
the ablation's runs (or fastvis-bench defects' runs) forked from this process instead of started
as new interpreters.

An ablation starts one ``python -m fastvis.cli.train`` per run; on a tiny data set each spends most
of its life importing torch and the trainer (about 6 s on a 2-core machine, for a training of a
second). Here the ablation's launcher (``fastvis.ablate.runner``) gets a stand-in for
``subprocess.Popen`` that forks this process, which has imported all of that already, and runs the
trainer in the child as :mod:`tests.zygote` runs its requests: the same module, arguments,
environment, working folder and streams, the same exit status. What an imported library read from
the environment while loading cannot change in a fork; the one such setting the launcher passes,
``OMP_NUM_THREADS`` (runs side by side share the cores), becomes ``torch.set_num_threads``.

Only for a launcher that has computed nothing itself: a process whose OpenMP pool has run (a
training, as in ``fastvis-train --ablate``) leaves a forked child stuck in that pool's locks.

Everything else is the product's own code: the launcher's queue, its stop handling (SIGTERM to the
runs in flight), its reading of each run's ``stderr.log`` and summary.
"""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import threading
import types

from tests import zygote


class ForkedRun:
    """The part of ``subprocess.Popen`` the ablation's launcher uses, for ``python -m MODULE``."""

    def __init__(self, cmd, env=None, stdout=None, stderr=None, **_):
        if cmd[1] != "-m" or threading.active_count() != 1:  # not a module, or unsafe to fork: a real process
            self._proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr)
            self.pid = self._proc.pid
            return
        self._proc = None
        env = dict(os.environ if env is None else env)
        fds = [os.open(os.devnull, os.O_RDONLY), _fd(stdout), _fd(stderr)]
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            if env.get("OMP_NUM_THREADS", "").isdigit():
                import torch

                torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
            zygote._run_child({"module": cmd[2], "args": [str(a) for a in cmd[3:]], "cwd": os.getcwd(), "env": env},
                              fds)
        for fd in fds:
            os.close(fd)
        self.pid, self.returncode = pid, None

    def poll(self):
        if self._proc is not None:
            self.returncode = self._proc.poll()
        elif self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        if self._proc is not None:
            self.returncode = self._proc.wait(timeout)
        elif self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def terminate(self):
        if self.poll() is None:
            os.kill(self.pid, signal.SIGTERM)


def _fd(stream) -> int:
    """A descriptor of its own for the child's stream: the file given, or /dev/null."""
    if stream is None:
        return os.dup(sys.stdout.fileno())
    if stream == subprocess.DEVNULL:
        return os.open(os.devnull, os.O_WRONLY)
    return os.dup(stream if isinstance(stream, int) else stream.fileno())


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m tests.warm_runs MODULE ARGS")
    for name in zygote.WARM:  # what the forked runs will use (already there when started by tests.zygote)
        importlib.import_module(name)
    import tqdm

    tqdm.tqdm.monitor_interval = 0  # no monitor thread (a progress bar before the runs would start one)
    from fastvis.ablate import runner

    runner.subprocess = types.SimpleNamespace(Popen=ForkedRun, DEVNULL=subprocess.DEVNULL)
    sys.argv = list(argv)
    import runpy

    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
