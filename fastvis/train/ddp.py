"""Where a run computes: the device, and distributed data parallel through torchrun (process
group, rank facts, reductions)."""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .. import FastvisError


@dataclass
class World:
    """This process's place among the ``size`` processes of a run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when there is a device, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FastvisError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def setup_device(name: str, timeout: float) -> tuple[torch.device, World]:
    """The device of this process (its own GPU under torchrun) and its place in the world."""
    device = pick_device(name)
    world = setup(device.type, timeout)
    if world.distributed and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
    return device, world


def exit_with_parent() -> None:
    """Linux: SIGKILL this process when the process that started it dies (PR_SET_PDEATHSIG), so
    that killing fastvis-train's launcher or torchrun's agent leaves no orphans training on and
    writing outputs: the launcher's torchrun asks for it before it runs (``preexec_fn``), each
    worker as it starts. SIGKILL, not SIGTERM: a worker waiting in a collective for a peer runs no
    Python signal handler until the collective times out (minutes); what it was writing is a
    temporary that the next start removes. Elsewhere: nothing."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before we asked
            os.kill(os.getpid(), signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def setup(device_type: str, timeout: float) -> World:
    """Join the process group torchrun describes (RANK, WORLD_SIZE); a lone process is world 1.
    A collective that waits longer than ``timeout`` seconds for a peer (a rank that died or
    stopped answering) fails instead of blocking forever."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return World()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    exit_with_parent()
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
        if restart and "MASTER_ADDR" in os.environ:
            # a restart by torchrun (--max-restarts): the agent's store still holds the addresses
            # the dead attempt's processes published, and a worker that read one of them failed
            # to connect ("connectFullMesh ... Connection refused"); each attempt keys its own
            agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
            store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                                  is_master=not agent and rank == 0, timeout=timedelta(seconds=timeout))
            dist.init_process_group(backend, store=dist.PrefixStore(f"fastvis/attempt{restart}", store), rank=rank,
                                    world_size=world, timeout=timedelta(seconds=timeout))
        else:
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
    if device_type == "cuda":
        torch.cuda.set_device(local)
    return World(rank, world, local)


def wrap(model: torch.nn.Module, w: World, device: torch.device) -> torch.nn.Module:
    """``model`` under DistributedDataParallel in a run of several processes, else itself."""
    if not w.distributed:
        return model
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[w.local_rank] if device.type == "cuda"
                                                     else None)


def teardown(w: World) -> None:
    """Leave the group together: rank 0 may still be writing the report when the others finish."""
    if w.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_sum(w: World, values: list[float], device) -> list[float]:
    if not w.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_float(w: World, value: float, device) -> float:
    """Rank 0's value on every rank."""
    if not w.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return float(t.item())


def broadcast_int(w: World, value: int, device) -> int:
    if not w.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(t, 0)
    return int(t.item())


def broadcast_tensor(w: World, t: torch.Tensor) -> torch.Tensor:
    """Rank 0's tensor on every rank (``t`` has the same shape and dtype on each)."""
    if not w.distributed:
        return t
    t = t.contiguous()
    dist.broadcast(t, 0)
    return t


def all_cat(w: World, values):
    """A 1-D numpy array concatenated over the processes, in rank order."""
    if not w.distributed:
        return values
    import numpy as np

    parts = [None] * w.size
    dist.all_gather_object(parts, values)
    return np.concatenate(parts)


PEER_FAILURES = ("timed out", "timeout", "connection closed", "connection reset", "broken pipe", "connectfullmesh")


def peer_failure(exc: BaseException, rank: int, size: int, timeout: float) -> FastvisError | None:
    """One line for a collective that failed because another process died or stopped answering
    (gloo/NCCL raise a RuntimeError with a long backend message); None for any other error."""
    text = str(exc)
    if not isinstance(exc, RuntimeError) or not any(k in text.lower() for k in PEER_FAILURES):
        return None
    first = text.strip().splitlines()[0][:160] if text.strip() else type(exc).__name__  # not tuning: a line
    return FastvisError(f"process {rank} of {size}: another process stopped answering or died (waited up to "
                        f"{timeout:g} s, --ddp-timeout): {first}")
