"""Poisson image editing: solve the discrete Poisson equation on a masked patch.

The problem, per patch ``p`` (one channel of one pasted source patch)::

    4 f[y, x] - f[y-1, x] - f[y+1, x] - f[y, x-1] - f[y, x+1] = lap[y, x]   where mask[y, x]
    f[y, x] = fixed                                                          elsewhere

``f`` arrives holding the destination's values outside the mask (the Dirichlet boundary) and
an initial guess inside it; ``lap`` is the 4-neighbour Laplacian of the guidance (the source
patch, for a normal clone). The mask never touches the patch border, so every unknown has its
four neighbours inside the patch.

The solver is red-black successive over-relaxation with Chebyshev acceleration (the
relaxation factor starts at 1 and approaches the optimum ``2 / (1 + sqrt(1 - rho^2))`` for the
Jacobi radius ``rho`` of the patch's box), in float64. Every ``CHECK`` iterations the max-norm
of the residual is measured and the patch stops once it is at most ``tol``; the iteration
count and the last residual are written out per patch.

Same three forms as the other kernels:

- ``poisson_sor_cuda``: one thread block per patch (many patches in one launch), the sweeps
  and the residual reduction inside the kernel, synchronised with ``syncthreads``;
- ``poisson_sor_cpu``: the CPU twin, the same arithmetic in the same order, patches in parallel;
- ``poisson_reference``: the exact solution by a direct sparse solve (scipy), for tests and benchmarks.

Arrays: ``f``, ``lap`` (P, h, w) float64; ``mask`` (P, h, w) uint8; ``rho`` (P,) float64;
``iters`` (P,) int32 and ``resid`` (P,) float64 outputs. Patches of different sizes are padded
to a common (h, w) with ``mask = 0``.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda

CHECK = 8  # iterations between residual checks
BLOCK = 128  # threads per patch on the device


def jacobi_radius(h: int, w: int) -> float:
    """Spectral radius of the Jacobi iteration for the 5-point Laplacian on an h x w box of unknowns."""
    return 0.5 * (math.cos(math.pi / (h + 1)) + math.cos(math.pi / (w + 1)))


# -- CPU twin ---------------------------------------------------------------------------------------
# The twin keeps each patch split by column parity, E[y, j] = f[y, 2j] and O[y, j] = f[y, 2j + 1],
# so that a half sweep over one colour reads and writes contiguous rows (which LLVM vectorises),
# and it multiplies the update by the mask (0 or 1) instead of branching. The arithmetic of each
# update is the device kernel's, term by term, so both give the same numbers.


@numba.njit(cache=True)
def _split(a, out_e, out_o):  # pragma: no cover - compiled
    h, w = a.shape
    for y in range(h):
        for x in range(w):
            if x % 2 == 0:
                out_e[y, x // 2] = a[y, x]
            else:
                out_o[y, x // 2] = a[y, x]


@numba.njit(cache=True)
def _half_sweep(E, O, lE, lO, mE, mO, w, color, omega):  # pragma: no cover - compiled
    h = E.shape[0]
    for y in range(1, h - 1):
        if (y + color) % 2 == 0:  # this colour sits in the even columns of row y
            for j in range(1, (w - 2) // 2 + 1):
                g = 0.25 * (E[y - 1, j] + E[y + 1, j] + O[y, j - 1] + O[y, j] + lE[y, j])
                E[y, j] += omega * (mE[y, j] * (g - E[y, j]))
        else:
            for j in range(0, (w - 3) // 2 + 1):
                g = 0.25 * (O[y - 1, j] + O[y + 1, j] + E[y, j] + E[y, j + 1] + lO[y, j])
                O[y, j] += omega * (mO[y, j] * (g - O[y, j]))


@numba.njit(cache=True)
def _residual(E, O, lE, lO, mE, mO, w):  # pragma: no cover - compiled
    h = E.shape[0]
    r = 0.0
    for y in range(1, h - 1):
        for j in range(1, (w - 2) // 2 + 1):
            v = mE[y, j] * abs(lE[y, j] - (4.0 * E[y, j] - E[y - 1, j] - E[y + 1, j] - O[y, j - 1] - O[y, j]))
            r = max(r, v)
        for j in range(0, (w - 3) // 2 + 1):
            v = mO[y, j] * abs(lO[y, j] - (4.0 * O[y, j] - O[y - 1, j] - O[y + 1, j] - E[y, j] - E[y, j + 1]))
            r = max(r, v)
    return r


@numba.njit(cache=True)
def _solve_one(f, lap, mask, rho, tol, max_iter):  # pragma: no cover - compiled
    """Chebyshev-accelerated red-black SOR on one patch, in place; returns (iterations, residual)."""
    h, w = f.shape
    hw = (w + 1) // 2
    E = np.zeros((h, hw))
    O = np.zeros((h, hw))
    lE = np.zeros((h, hw))
    lO = np.zeros((h, hw))
    mE = np.zeros((h, hw))
    mO = np.zeros((h, hw))
    _split(f, E, O)
    _split(lap, lE, lO)
    _split(mask.astype(np.float64), mE, mO)
    r2 = rho * rho
    omega = 1.0
    res = _residual(E, O, lE, lO, mE, mO, w)
    it = 0
    while res > tol and it < max_iter:
        for _ in range(CHECK):
            _half_sweep(E, O, lE, lO, mE, mO, w, 0, omega)
            omega = 1.0 / (1.0 - 0.5 * r2) if it == 0 else 1.0 / (1.0 - 0.25 * r2 * omega)
            _half_sweep(E, O, lE, lO, mE, mO, w, 1, omega)
            omega = 1.0 / (1.0 - 0.25 * r2 * omega)
            it += 1
        res = _residual(E, O, lE, lO, mE, mO, w)
    for y in range(h):
        for x in range(w):
            f[y, x] = E[y, x // 2] if x % 2 == 0 else O[y, x // 2]
    return it, res


@numba.njit(parallel=True, cache=True)
def _solve_par(f, lap, mask, rho, tol, max_iter, iters, resid):  # pragma: no cover - compiled
    for p in numba.prange(f.shape[0]):
        it, res = _solve_one(f[p], lap[p], mask[p], rho[p], tol, max_iter)
        iters[p] = it
        resid[p] = res


def poisson_sor_cpu(f, lap, mask, rho, tol, max_iter, iters, resid):
    """CPU twin: every patch solved in place in ``f``, patches spread over the cores."""
    _solve_par(f, lap, mask, rho, float(tol), int(max_iter), iters, resid)


# -- CUDA kernel ------------------------------------------------------------------------------------


@cuda.jit
def poisson_sor_cuda(f, lap, mask, rho, tol, max_iter, iters, resid):  # pragma: no cover - device/simulator
    p = cuda.blockIdx.x
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    _, h, w = f.shape
    n = h * w
    part = cuda.shared.array(BLOCK, numba.float64)
    r2 = rho[p] * rho[p]
    omega = 1.0
    it = 0
    while True:
        # residual check, reduced over the block; every thread then sees the same decision
        local = 0.0
        for k in range(t, n, nt):
            y = k // w
            x = k % w
            if mask[p, y, x]:
                v = abs(lap[p, y, x] - (4.0 * f[p, y, x] - f[p, y - 1, x] - f[p, y + 1, x]
                                        - f[p, y, x - 1] - f[p, y, x + 1]))
                if v > local:
                    local = v
        part[t] = local
        cuda.syncthreads()
        s = nt // 2
        while s > 0:
            if t < s and part[t + s] > part[t]:
                part[t] = part[t + s]
            cuda.syncthreads()
            s //= 2
        res = part[0]
        cuda.syncthreads()
        if res <= tol or it >= max_iter:
            break
        for _ in range(CHECK):
            for color in range(2):
                for k in range(t, n, nt):
                    y = k // w
                    x = k % w
                    if (y + x + color) % 2 == 0 and mask[p, y, x]:
                        g = 0.25 * (f[p, y - 1, x] + f[p, y + 1, x] + f[p, y, x - 1] + f[p, y, x + 1] + lap[p, y, x])
                        f[p, y, x] += omega * (g - f[p, y, x])
                cuda.syncthreads()
                if color == 0 and it == 0:
                    omega = 1.0 / (1.0 - 0.5 * r2)
                else:
                    omega = 1.0 / (1.0 - 0.25 * r2 * omega)
            it += 1
    if t == 0:
        iters[p] = it
        resid[p] = res


def launch_sor(f, lap, mask, rho, tol, max_iter, iters, resid, stream=0):
    """One block of ``BLOCK`` threads per patch; arguments are device arrays."""
    poisson_sor_cuda[f.shape[0], BLOCK, stream](f, lap, mask, rho, float(tol), int(max_iter), iters, resid)


# -- reference --------------------------------------------------------------------------------------


def poisson_reference(f, lap, mask):
    """The exact solution of one patch's equations by a direct sparse solve (scipy; tests and
    benchmarks). Returns a new float64 array: ``f`` outside the mask, the solution inside."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as sla

    f = np.asarray(f, np.float64).copy()
    m = np.asarray(mask) != 0
    ys, xs = np.nonzero(m)
    n = len(ys)
    if n == 0:
        return f
    ids = -np.ones(m.shape, np.int64)
    ids[ys, xs] = np.arange(n)
    rows, cols, vals = [np.arange(n)], [np.arange(n)], [np.full(n, 4.0)]
    b = np.asarray(lap, np.float64)[ys, xs].copy()
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        inside = m[ny, nx]
        rows.append(np.nonzero(inside)[0])
        cols.append(ids[ny[inside], nx[inside]])
        vals.append(np.full(int(inside.sum()), -1.0))
        b[~inside] += f[ny[~inside], nx[~inside]]
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    f[ys, xs] = sla.spsolve(A, b)
    return f
