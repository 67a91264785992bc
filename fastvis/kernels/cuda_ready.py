"""Whether numba can build and run CUDA kernels in this environment, checked once per process.

numba's CUDA target compiles each kernel at its first launch, so a numba-cuda release that does
not work with the installed numpy (seen: numba-cuda's typing registry calling ``np.row_stack``,
which numpy 2.5 removed) fails only then, in the middle of a training step. The dispatch entries
ask :func:`use_cuda_kernels` before the first launch: it compiles and runs a one-line kernel, and
when that fails, device tensors take the ops' torch forms (``*_torch``: the same results through
torch's own CUDA operations, slower) and one warning says why and what to install.

``FASTVIS_CUDA_KERNELS=0`` chooses the torch forms on purpose (to compare the two, or to work
around a numba problem not caught here). ``FASTVIS_NUMPY_ALIASES=1`` puts back, before the probe,
the numpy names that numba-cuda still uses and numpy has removed (:data:`NUMPY_ALIASES`), for
environments that cannot take ``numpy<2.5`` (the ``gpu`` extra's pin); it changes the numpy module
of the whole process, so it is never done unasked.
"""
from __future__ import annotations

import functools
import os
import warnings

import numpy as np
from numba import cuda

ENV = "FASTVIS_CUDA_KERNELS"
ALIASES_ENV = "FASTVIS_NUMPY_ALIASES"
# numpy names numba-cuda (0.30.4) calls at its first compile that numpy has removed, and what they were
NUMPY_ALIASES = {"row_stack": "vstack"}  # np.row_stack: an alias of np.vstack, removed in numpy 2.5


def restore_numpy_aliases() -> list[str]:
    """Put back each missing name of :data:`NUMPY_ALIASES` as the function it aliased; the names
    put back."""
    restored = []
    for name, target in NUMPY_ALIASES.items():
        if not hasattr(np, name):
            setattr(np, name, getattr(np, target))
            restored.append(name)
    return restored


def _on(name: str) -> bool | None:
    setting = os.environ.get(name, "").strip().lower()
    return True if setting in ("1", "true", "yes", "on") else False if setting in ("0", "false", "no", "off") \
        else None


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
    if _on(ENV) is False:
        return f"turned off by {ENV}={os.environ[ENV]}"
    if _on(ALIASES_ENV):
        restore_numpy_aliases()
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
                  "installed numpy (numba-cuda 0.30.4 needs numpy<2.5) to get the kernels back, or set "
                  f"{ALIASES_ENV}=1 to let fastvis put back the numpy names it still calls; {ENV}=0 chooses the "
                  "torch forms on purpose.",
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
