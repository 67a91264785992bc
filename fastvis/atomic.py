"""Outputs that appear whole or not at all.

Every file fastvis writes (a .beton and its sidecar, a checkpoint, a run's summary, report and
curve) is built under a temporary name beside its destination, flushed to disk, then renamed
over it. The temporary name holds the writer's process id (``.NAME.PID.XXXX.part``), so a later
writer of the same output can remove the temporaries that killed processes left behind
(:func:`remove_stale`). :func:`check_output` refuses a destination that is not a regular
file (a device node, a FIFO, a folder) before any work is done. :func:`lock_folder` gives a
folder one writer at a time (a training run's folder).
"""
from __future__ import annotations

import contextlib
import os
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from . import InputError

__all__ = ["LOCK_NAME", "atomic_path", "check_output", "lock_folder", "remove_stale", "temp_file", "write_atomic"]


def check_output(path: str | os.PathLike) -> Path:
    """``path`` may be written: it is absent or a regular file, and its folder can hold files."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if path.is_dir():
            raise InputError(f"{path}: is a folder; give a file name for the output")
        if not path.is_file():
            raise InputError(f"{path}: exists and is not a regular file (a device, a FIFO or a socket); "
                             "refusing to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise InputError(f"{path}: {parent} is not a folder")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write into {parent} (permission denied)")
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` whose writing process is gone; returns them."""
    path = Path(path)
    gone = []
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return gone
    for tmp in folder.glob(f".{path.name}.*.part"):
        parts = tmp.name[len(path.name) + 2:].split(".")
        pid = int(parts[0]) if parts and parts[0].isdigit() else None
        if pid is not None and pid != os.getpid() and not _pid_alive(pid):
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


def temp_file(path: Path, mode: str = "w+b"):
    """``(file object, temporary path)`` beside ``path``, named after it and this process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent)
    return os.fdopen(fd, mode), Path(tmp)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def finish(tmp: Path, path: Path, mode: int = 0o644) -> None:
    """Rename a flushed temporary over ``path`` (and make the rename durable)."""
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int = 0o644) -> Iterator[Path]:
    """A temporary path to write ``path`` through (for writers that take a file name, such as
    matplotlib's ``savefig``); renamed over ``path`` when the block ends without an error."""
    path = check_output(path)
    remove_stale(path)
    fp, tmp = temp_file(path)
    fp.close()
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        finish(tmp, path, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_temp(path: Path, data) -> Path:
    """``data`` (bytes, text, or a function that writes into a binary file) written and flushed to
    disk in a temporary beside ``path`` (removed if that fails, a full disk say, whose OSError then
    names ``path``); :func:`finish` renames it over ``path``."""
    remove_stale(path)
    fp, tmp = temp_file(path, "wb")
    try:
        with fp:
            if callable(data):
                data(fp)
            else:
                fp.write(data.encode() if isinstance(data, str) else data)
            fp.flush()
            os.fsync(fp.fileno())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise named(exc, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def named(exc: OSError, path) -> OSError:
    """``exc`` with the output's name: a failed write (a full disk) names no file by itself."""
    if exc.filename is not None:
        return exc
    return OSError(exc.errno, exc.strerror, str(path)) if exc.errno is not None else OSError(f"{path}: {exc}")


def write_atomic(path: str | os.PathLike, data, mode: int = 0o644) -> Path:
    """Write ``data`` (as :func:`write_temp` takes it) to ``path`` atomically."""
    path = check_output(path)
    tmp = write_temp(path, data)
    try:
        finish(tmp, path, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


LOCK_NAME = ".fastvis.lock"


def lock_folder(folder: str | os.PathLike, what: str = "fastvis-train") -> int:
    """Make ``folder`` (created if need be) this process's alone: an exclusive ``flock`` on
    ``folder/.fastvis.lock``, held by the returned descriptor until it is closed or the
    process ends (the kernel drops the lock of a dead process, so a killed run's lock is taken
    over by the next start). Another holder: ``InputError`` naming it (its process id, host and
    start time, which the holder writes into the file)."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:  # never follow a link, never wait on a FIFO
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        raise InputError(f"{path}: cannot open the run folder's lock ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{path}: the run folder's lock is not a regular file")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "a process"
        os.close(fd)
        raise InputError(f"{folder}: another {what} is writing into this folder ({holder}); wait for it to end, "
                         "or give another --out") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{what}, pid {os.getpid()} on {socket.gethostname()}, started "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
    return fd
