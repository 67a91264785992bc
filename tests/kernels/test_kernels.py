"""Every kernel three ways: the CUDA kernel (numba's simulator without a GPU, tiny shapes), the
CPU twin and the numpy reference must agree exactly."""
from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import cuda

from fastvis.kernels import geometric as G
from fastvis.kernels import mix as M
from tests.helpers import require_cuda_kernels

SIM_LAUNCH = (2, 16)  # small grid: the grid-stride loops cover any size


def run_cuda(kernel, *args):
    """Run a kernel on host arrays: in the simulator as they are, on a GPU through copies."""
    require_cuda_kernels()
    if numba.config.ENABLE_CUDASIM:
        kernel[SIM_LAUNCH](*args)
        return args[-1]
    dev = [cuda.to_device(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a for a in args]
    kernel[SIM_LAUNCH](*dev)
    return dev[-1].copy_to_host()


def cases(rng, dtype):
    shape = (3, 2, 4, 5)
    if dtype == np.uint8:
        src = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        src = rng.standard_normal(shape).astype(dtype)
    perm = np.array([2, 0, 1], np.int64)
    boxes = np.array([[0, 4, 0, 5], [1, 3, 2, 4], [2, 2, 0, 5]], np.int64)  # whole, inner, empty
    lam = np.array([0.25, 0.5, 0.9], np.float32)
    return src, perm, boxes, lam


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_cutmix_kernel_twin_and_reference_agree(rng, dtype):
    src, perm, boxes, _ = cases(rng, dtype)
    ref = M.cutmix_paste_reference(src, perm, boxes)
    cpu = np.empty_like(src)
    view = src.view({1: np.uint8, 4: np.int32}[src.itemsize])
    M.cutmix_paste_cpu(view, perm, boxes, np.array(-1).astype(view.dtype)[()], cpu.view(view.dtype))
    sim = run_cuda(M.cutmix_paste_cuda, src, perm, boxes, np.zeros_like(src))
    assert np.array_equal(cpu, ref) and np.array_equal(sim, ref)
    # pixels outside each box come from the sample itself
    assert np.array_equal(ref[2], src[2])  # empty box
    assert np.array_equal(ref[0], src[2])  # whole image from the partner


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_mixup_kernel_twin_and_reference_agree(rng, dtype):
    src, perm, _, lam = cases(rng, dtype)
    ref = M.mixup_blend_reference(src, perm, lam)
    cpu = np.empty_like(src)
    twin = M.mixup_blend_u8_cpu if dtype == np.uint8 else M.mixup_blend_float_cpu
    kern = M.mixup_blend_u8_cuda if dtype == np.uint8 else M.mixup_blend_float_cuda
    twin(src, perm, lam, cpu)
    sim = run_cuda(kern, src, perm, lam, np.zeros_like(src))
    assert np.array_equal(cpu, ref) and np.array_equal(sim, ref)


def test_mixup_rounds_half_up():
    src = np.array([[[[0, 1, 2]]], [[[1, 2, 3]]]], np.uint8)  # (2,1,1,3)
    out = M.mixup_blend_reference(src, np.array([1, 0]), np.array([0.5, 0.5], np.float32))
    assert out.ravel().tolist() == [1, 2, 3, 1, 2, 3]  # 0.5 -> 1, 1.5 -> 2, 2.5 -> 3


@pytest.mark.parametrize("reflect", [False, True])
def test_crop_flip_kernel_twin_and_reference_agree(rng, reflect):
    src = rng.integers(0, 256, (3, 2, 5, 6), dtype=np.uint8)
    pad = 3
    oy = np.array([0, 3, 6], np.int64)
    ox = np.array([6, 0, 2], np.int64)
    flip = np.array([1, 0, 1], np.uint8)
    ref = G.crop_flip_reference(src, oy, ox, flip, pad, reflect, (5, 6))
    cpu = np.empty_like(src)
    G.crop_flip_cpu(src, oy, ox, flip, pad, reflect, cpu)
    sim = run_cuda(G.crop_flip_cuda, src, oy, ox, flip, pad, reflect, np.zeros_like(src))
    assert np.array_equal(cpu, ref) and np.array_equal(sim, ref)


def test_kernels_on_strided_arrays(rng):
    """Channels-last memory: the kernels index logically, so strides do not matter."""
    nhwc = rng.integers(0, 256, (3, 4, 5, 2), dtype=np.uint8)
    src = nhwc.transpose(0, 3, 1, 2)  # logical (B, C, H, W), channels-last strides
    _, perm, boxes, lam = cases(rng, np.uint8)
    ref = M.cutmix_paste_reference(np.ascontiguousarray(src), perm, boxes)
    out = np.zeros((3, 4, 5, 2), np.uint8).transpose(0, 3, 1, 2)
    M.cutmix_paste_cpu(src, perm, boxes, np.uint8(255), out)
    assert np.array_equal(out, ref)
    out2 = np.zeros((3, 4, 5, 2), np.uint8).transpose(0, 3, 1, 2)
    M.mixup_blend_u8_cpu(src, perm, lam, out2)
    assert np.array_equal(out2, M.mixup_blend_reference(np.ascontiguousarray(src), perm, lam))


def test_reflect_matches_numpy_for_every_offset():
    src = np.arange(2 * 1 * 3 * 4, dtype=np.uint8).reshape(2, 1, 3, 4)
    for oy in range(0, 5):
        for ox in range(0, 5):
            o = np.array([oy, oy]), np.array([ox, ox])
            ref = G.crop_flip_reference(src, *o, np.array([0, 1]), 2, True, (3, 4))
            out = np.empty_like(src)
            G.crop_flip_cpu(src, o[0].astype(np.int64), o[1].astype(np.int64), np.array([0, 1], np.uint8), 2,
                            True, out)
            assert np.array_equal(out, ref), (oy, ox)
