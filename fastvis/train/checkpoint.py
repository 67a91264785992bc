"""Checkpoints: written atomically (a temporary file named after the writing process, fsync,
rename), read with ``torch.load(weights_only=True)``, so that a checkpoint holds tensors and plain
values only and a file crafted to run code when unpickled is refused instead."""
from __future__ import annotations

import os
import pickle
import reprlib
import textwrap
from pathlib import Path

import torch

from .. import InputError
from ..atomic import write_atomic


class _Writes:
    """The file torch.save writes into, keeping the first OSError of a write: torch's zip writer
    turns it into a RuntimeError of its own ("unexpected pos ..."), which says nothing of a full disk."""

    def __init__(self, fp):
        self.fp, self.error = fp, None

    def write(self, data) -> int:
        try:
            return self.fp.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.fp.flush()


def save_atomic(obj, path: str | os.PathLike) -> Path:
    def write(fp) -> None:
        out = _Writes(fp)
        try:
            torch.save(obj, out)
        except RuntimeError:
            if out.error is not None:  # the disk is full (or the file too large): that, in one line
                raise out.error from None
            raise

    return write_atomic(path, write, 0o600)  # not tuning: owner-only file mode


#: what a fastvis checkpoint holds, and the type of each (``load`` checks them before any use)
REQUIRED = {"model": dict, "model_name": str, "num_classes": int}
#: the rest of a training run's state, for ``--resume``
RESUMABLE = {"optimizer": dict, "step": int, "rng": torch.Tensor, "history": list}


def load(path: str | os.PathLike, map_location="cpu", resumable: bool = False) -> dict:
    """A fastvis checkpoint (a run folder's ``checkpoint.pt``), read without running code and
    checked to be one: ``InputError`` naming what the file is not. ``resumable``: it also holds
    a run's state (``--resume``), not only weights (``--teacher``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    with open(path, "rb") as fp:
        magic = fp.read(4)
    if magic[:2] != b"PK" and magic[:1] != b"\x80":  # torch.save writes a zip (older versions a pickle)
        raise InputError(f"{path}: not a checkpoint (neither a torch zip file nor a pickle)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc).strip()
        if "weights only" not in text.lower() and "weights_only" not in text:
            raise InputError(f"{path}: unreadable checkpoint ({text.splitlines()[0] if text else 'damaged'})") \
                from None
        first = next((line for line in text.splitlines() if line.strip().startswith("WeightsUnpickler error")),
                     text.splitlines()[0])
        raise InputError(f"{path}: refused: the checkpoint holds more than tensors and plain values (a crafted "
                         f"file could run code when loaded): {first.strip()}") from None
    except Exception as exc:
        raise InputError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    problem = not_fastvis(state, resumable)
    if problem:
        raise InputError(f"{path}: not a fastvis checkpoint ({problem})")
    return state


def not_fastvis(state, resumable: bool = False) -> str | None:
    """What makes ``state`` something other than a fastvis checkpoint, or None."""
    from ..beton.integrity import MAX_CLASSES
    from ..models import list_models

    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a dict"
    problem = _missing(state, REQUIRED)
    if problem:
        return problem
    if state["model_name"] not in list_models():
        return f"model {reprlib.repr(state['model_name'])} is none of fastvis's models"
    if not 1 <= state["num_classes"] <= MAX_CLASSES:
        return f"{state['num_classes']} classes"
    channels = state.get("in_channels", 3)
    if not isinstance(channels, int) or not 1 <= channels <= 4:
        return f"{channels!r} input channels"
    if not all(isinstance(v, torch.Tensor) for v in state["model"].values()):
        return "its weights are not all tensors"
    if resumable:
        problem = _missing(state, RESUMABLE)
        if problem or state["step"] >= 0:
            return problem
        return f"step {state['step']}"
    return None


def _missing(state: dict, need: dict) -> str | None:
    for key, kind in need.items():
        if key not in state:
            return f"no {key!r}"
        if not isinstance(state[key], kind) or (kind is int and isinstance(state[key], bool)):
            return f"{key!r} is a {type(state[key]).__name__}, not a {kind.__name__}"
    return None


def mismatch(exc: BaseException) -> str:
    """The line of a ``load_state_dict`` error that says what does not fit (a size mismatch,
    a missing or unexpected key), shortened."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    telling = next((line for line in lines if line.startswith(("size mismatch", "Missing key", "Unexpected key"))),
                   lines[0])
    return textwrap.shorten(telling, width=160, placeholder=" ...")  # not tuning: the length of a message
