"""``python -m tests.zygote SOCKET``: a warm starter for the suite's command-line runs.

A run of ``python -m fastvis.cli.train`` on a tiny data set spends about two thirds of its life
importing (torch, torch._dynamo, which any torch optimiser pulls in, matplotlib, numba): some 6 s
on a 2-core machine, paid again by each of the suite's many command-line runs. This process pays
it once: it imports those modules, runs nothing, and then forks one child per request; the child
takes the request's working folder, environment, argument list and standard streams and runs the
module as ``python -m`` would (``runpy``), then exits as the interpreter would (non-daemon threads
joined, ``atexit`` handlers run, streams flushed; the exit status of ``SystemExit``, 1 after an
uncaught exception). The child is a real process: it can be killed, it can fork, and its exit
status (a signal as ``-N``) is reported back exactly.

What a fork cannot give a fresh interpreter is what was read at import time: the environment
variables that the imported libraries read as they load (OpenMP's thread count, numba's settings,
Python's own). :func:`tests.helpers.run_cli` therefore keeps one starter per distinct set of such
variables (:data:`IMPORT_TIME`) and starts a fresh interpreter for requests it should not take.
The children also share the starter's string-hash seed; the resume tests start their resumed run as
a fresh interpreter, so that a result that depended on hash order would show there.

Protocol (one ``SOCK_SEQPACKET`` connection per run): the client sends a JSON request (``module``,
``args``, ``cwd``, ``env``) with three file descriptors (stdin, stdout, stderr); the starter answers
with the child's pid, then with its exit status when it ends.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import sys
import threading
import traceback

#: environment variables read while modules load: a starter serves only requests that agree with
#: its own values of these (prefixes, and whole names)
IMPORT_TIME = ("NUMBA_", "OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "DNNL_", "ONEDNN_", "TORCH", "PYTORCH_",
               "CUDA_", "PYTHON", "LD_", "MALLOC_", "MPLBACKEND", "MPLCONFIGDIR", "LANG", "LC_")

#: what the children run: imported here so that they start warm
WARM = ("torch", "torch._dynamo", "torch.utils.flop_counter", "torch.distributed", "matplotlib.pyplot",
        "matplotlib.backends.backend_pdf", "matplotlib.backends.backend_agg", "fastvis.train.loop",
        "fastvis.train.report", "fastvis.train.config", "fastvis.incremental.runner", "fastvis.convert",
        "fastvis.ablate.analysis", "fastvis.bench")


def import_time_env(env: dict) -> tuple:
    """The part of ``env`` that modules read as they load (the starter's key)."""
    return tuple(sorted((k, v) for k, v in env.items() if k.startswith(IMPORT_TIME)))


def _exit_status(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become ``python -m MODULE ARGS`` and never return."""
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()
    sys.argv = [request["module"], *request["args"]]
    sys.modules.pop(request["module"], None)
    import runpy

    status = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        status = 1
    _finish()
    os._exit(status)


def _finish() -> None:
    """What the interpreter does on its way out."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def serve(path: str) -> None:
    import importlib

    for name in WARM:
        importlib.import_module(name)
    if threading.active_count() != 1:  # (OpenBLAS's own pool is fork-safe: it stops before a fork)
        raise SystemExit("tests.zygote: a Python thread was started while importing; forking would not be safe")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    parent = os.getppid()
    print("ready", flush=True)
    children: dict[int, socket.socket] = {}
    while os.getppid() == parent:  # the suite has ended (or died): so do we
        ready, _, _ = select.select([listener], [], [], 0.05)
        if ready:
            conn, _ = listener.accept()
            try:
                data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
                request = json.loads(data)
            except (OSError, ValueError):
                conn.close()
                continue
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                listener.close()
                conn.close()
                for other in children.values():
                    other.close()
                _run_child(request, fds)
            for fd in fds:
                os.close(fd)
            conn.send(str(pid).encode())
            children[pid] = conn
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                try:
                    conn.send(str(code).encode())
                except OSError:  # the client gave up (its timeout) and left
                    pass
                conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
