"""The Poisson solver three ways: the CUDA kernel (numba's simulator without a GPU, tiny
patches), the CPU twin and the exact sparse solve."""
from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import cuda

from fastvis.kernels import poisson as K
from tests.helpers import require_cuda_kernels


def patches(rng):
    P, h, w = 3, 7, 9
    f = rng.random((P, h, w)) * 100
    lap = rng.standard_normal((P, h, w)) * 5
    mask = np.zeros((P, h, w), np.uint8)
    mask[0, 1:6, 1:8] = 1  # the whole interior
    mask[1, 2:5, 2:6] = 1
    mask[1, 1, 3] = 1  # a ragged shape
    mask[2, 3, 4] = 1  # a single pixel
    rho = np.array([K.jacobi_radius(5, 7), K.jacobi_radius(4, 4), K.jacobi_radius(1, 1)])
    return f, lap, mask, rho


def solve_cuda(f, lap, mask, rho, tol, max_iter):
    require_cuda_kernels()
    iters, resid = np.zeros(len(f), np.int32), np.zeros(len(f))
    if numba.config.ENABLE_CUDASIM:
        out = f.copy()
        K.launch_sor(out, lap, mask, rho, tol, max_iter, iters, resid)
        return out, iters, resid
    dev = [cuda.to_device(np.ascontiguousarray(a)) for a in (f, lap, mask, rho, iters, resid)]
    K.launch_sor(*dev[:4], tol, max_iter, *dev[4:])
    return dev[0].copy_to_host(), dev[4].copy_to_host(), dev[5].copy_to_host()


def test_cuda_kernel_twin_and_exact_solve_agree(rng):
    f, lap, mask, rho = patches(rng)
    tol = 1e-7
    cpu, it_c, res_c = f.copy(), np.zeros(3, np.int32), np.zeros(3)
    K.poisson_sor_cpu(cpu, lap, mask, rho, tol, 10_000, it_c, res_c)
    dev, it_d, res_d = solve_cuda(f, lap, mask, rho, tol, 10_000)
    # the same updates in the same order: the same numbers, the same iteration counts
    assert np.array_equal(cpu, dev)
    assert np.array_equal(it_c, it_d) and np.array_equal(res_c, res_d)
    assert (res_c <= tol).all() and (it_c > 0).all()
    for p in range(3):
        exact = K.poisson_reference(f[p], lap[p], mask[p])
        assert np.abs(cpu[p] - exact).max() < 1e-5
        assert np.array_equal(cpu[p][mask[p] == 0], f[p][mask[p] == 0])  # the boundary never moves


def test_solver_stops_on_the_residual_not_a_count(rng):
    f, lap, mask, rho = patches(rng)
    counts = []
    for tol in (1.0, 1e-3, 1e-9):
        out, it, res = f.copy(), np.zeros(3, np.int32), np.zeros(3)
        K.poisson_sor_cpu(out, lap, mask, rho, tol, 10_000, it, res)
        assert (res <= tol).all()
        counts.append(int(it[0]))
    assert counts[0] < counts[1] < counts[2]
    # a cap on iterations is honoured and reported as unconverged
    out, it, res = f.copy(), np.zeros(3, np.int32), np.zeros(3)
    K.poisson_sor_cpu(out, lap, mask, rho, 1e-12, 8, it, res)
    assert it[0] == 8 and res[0] > 1e-12


def test_already_solved_patch_takes_no_iteration(rng):
    f, lap, mask, rho = patches(rng)
    exact = np.stack([K.poisson_reference(f[p], lap[p], mask[p]) for p in range(3)])
    it, res = np.zeros(3, np.int32), np.zeros(3)
    K.poisson_sor_cpu(exact, lap, mask, rho, 1e-6, 100, it, res)
    assert (it == 0).all()


@pytest.mark.parametrize("h,w", [(5, 5), (40, 3), (128, 128)])
def test_jacobi_radius_is_below_one(h, w):
    assert 0 < K.jacobi_radius(h, w) < 1
