"""Checkpoints: written atomically (a temporary file named after the writing process, fsync,
rename), read with ``torch.load(weights_only=True)``, so that a checkpoint holds tensors and plain
values only and a file crafted to run code when unpickled is refused instead."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from .. import InputError
from ..atomic import check_output, finish, remove_stale, temp_file


def save_atomic(obj, path: str | os.PathLike) -> Path:
    path = check_output(path)
    remove_stale(path)  # a kill during an earlier save leaves its temporary behind
    fp, tmp = temp_file(path)
    try:
        with fp:
            torch.save(obj, fp)
            fp.flush()
            os.fsync(fp.fileno())
        finish(tmp, path, 0o600)  # not tuning: owner-only file mode
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: refused: the checkpoint holds more than tensors and plain values (a crafted "
                         f"file could run code when loaded): {first}") from None
    except Exception as exc:
        raise InputError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise InputError(f"{path}: not a fastvis checkpoint (no model weights)")
    return state
