"""Whether numba can build and run CUDA kernels in this environment, checked once per process.

numba's CUDA target compiles each kernel at its first launch, so a numba-cuda release that does
not work with the installed numpy (seen: numba-cuda's typing registry calling ``np.row_stack``,
which numpy 2.5 removed) fails only then, in the middle of a training step. The dispatch entries
ask :func:`use_cuda_kernels` before the first launch: it compiles and runs a one-line kernel, and
when that fails, device tensors take the ops' torch forms (``*_torch``: the same results through
torch's own CUDA operations, slower) and one warning says why and what to install.

``FASTVIS_CUDA_KERNELS=0`` chooses the torch forms on purpose (to compare the two, or to work
around a numba problem not caught here).
"""
from __future__ import annotations

import functools
import os
import warnings

import numpy as np
from numba import cuda

ENV = "FASTVIS_CUDA_KERNELS"


def _versions() -> str:
    from importlib import metadata

    found = []
    for name in ("numba", "numba-cuda", "numpy"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def _probe(a):  # pragma: no cover - compiled (a module-level ``cuda``: numba's simulator swaps that name)
    i = cuda.grid(1)
    if i < a.shape[0]:
        a[i] = i + 1


@functools.cache
def cuda_kernels_problem() -> str | None:
    """Why numba's CUDA kernels cannot be used here, or ``None`` when they can."""
    setting = os.environ.get(ENV, "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return f"turned off by {ENV}={os.environ[ENV]}"
    try:
        arr = cuda.to_device(np.zeros(4, np.int32))
        cuda.jit(_probe)[1, 4](arr)
        got = arr.copy_to_host().tolist()
    except Exception as exc:  # any failure to compile, load or launch: the environment's, not an op's
        return f"{type(exc).__name__}: {exc} ({_versions()})"
    if got != [1, 2, 3, 4]:
        return f"a probe kernel wrote {got} instead of [1, 2, 3, 4] ({_versions()})"
    return None


@functools.cache
def _warn(problem: str) -> None:
    warnings.warn(f"fastvis: numba cannot run CUDA kernels here ({problem}); the GPU augmentations run as torch "
                  "operations instead (same results, slower). Install a numba-cuda release that supports the "
                  f"installed numpy to get the kernels back, or set {ENV}=0 to choose this on purpose.",
                  RuntimeWarning, stacklevel=3)


def use_cuda_kernels() -> bool:
    """True when device tensors should go through numba's CUDA kernels; False (after one warning,
    unless turned off on purpose) when they should take the torch forms."""
    problem = cuda_kernels_problem()
    if problem is None:
        return True
    if not problem.startswith("turned off by"):
        _warn(problem)
    return False
