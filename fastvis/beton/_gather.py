"""Parallel copy of fixed-size payloads out of the memory map (the batch fast path)."""
import numba
import numpy as np


@numba.njit(parallel=True, nogil=True, cache=True)
def gather_rows(src, ptrs, nbytes, out):  # pragma: no cover - compiled
    for i in numba.prange(ptrs.shape[0]):
        p = ptrs[i]
        out[i, :] = src[p : p + nbytes]


@numba.njit(nogil=True, cache=True)
def gather_rows_serial(src, ptrs, nbytes, out):  # pragma: no cover - compiled
    """The same copy on the calling thread only (safe to call from many threads at once)."""
    for i in range(ptrs.shape[0]):
        p = ptrs[i]
        out[i, :] = src[p : p + nbytes]


__all__ = ["gather_rows", "gather_rows_serial", "np"]
