"""The torch forms that device tensors take where numba cannot build CUDA kernels: each agrees
exactly with its op's reference, the probe names what failed, and (on a GPU) the dispatch
entries and Poisson blending take these forms when told to."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from fastvis.kernels import cuda_ready
from fastvis.kernels import geometric as G
from fastvis.kernels import mix as M

CASES = 12


@pytest.fixture
def fresh_probe():
    cuda_ready.cuda_kernels_problem.cache_clear()
    cuda_ready._warn.cache_clear()
    yield
    cuda_ready.cuda_kernels_problem.cache_clear()
    cuda_ready._warn.cache_clear()


def images(rng, dtype, shape):
    if dtype == torch.uint8:
        return torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8))
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(dtype)


def as_layout(x, channels_last):
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.bfloat16])
def test_crop_flip_torch_agrees_with_the_reference(rng, dtype):
    for case in range(CASES):
        B, C, H, W = int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(2, 9)), int(rng.integers(2, 9))
        reflect = bool(case % 2)
        pad = int(rng.integers(0, min(H, W))) if reflect else int(rng.integers(0, 6))
        Ho, Wo = (H, W) if case % 3 else (int(rng.integers(1, H + 1)), int(rng.integers(1, W + 1)))
        x = as_layout(images(rng, dtype, (B, C, H, W)), case % 4 == 0)
        oy = torch.from_numpy(rng.integers(0, H + 2 * pad - Ho + 1, B))
        ox = torch.from_numpy(rng.integers(0, W + 2 * pad - Wo + 1, B))
        flip = torch.from_numpy(rng.integers(0, 2, B).astype(np.uint8))
        out = torch.empty((B, C, Ho, Wo), dtype=dtype)
        got = G.crop_flip_torch(x, oy, ox, flip, pad, reflect, out)
        src = x.view(torch.int16) if dtype == torch.bfloat16 else x  # numpy has no bf16: compare the bits
        want = G.crop_flip_reference(src.numpy(), oy.numpy(), ox.numpy(), flip.numpy(), pad, reflect, (Ho, Wo))
        got = got.view(torch.int16) if dtype == torch.bfloat16 else got
        assert np.array_equal(got.numpy(), want), (case, B, C, H, W, pad, reflect, Ho, Wo)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_cutmix_and_mixup_torch_agree_with_their_references(rng, dtype):
    for case in range(CASES):
        B, C, H, W = int(rng.integers(1, 6)), 3, int(rng.integers(1, 9)), int(rng.integers(1, 9))
        x = as_layout(images(rng, dtype, (B, C, H, W)), case % 2 == 0)
        perm = torch.from_numpy(rng.permutation(B))
        y0, x0 = rng.integers(0, H + 1, B), rng.integers(0, W + 1, B)
        boxes = np.stack([y0, rng.integers(y0, H + 1), x0, rng.integers(x0, W + 1)], 1)
        got = M.cutmix_paste_torch(x, perm, torch.from_numpy(boxes))
        assert got.stride() == x.stride()
        assert np.array_equal(got.numpy(), M.cutmix_paste_reference(x.numpy(), perm.numpy(), boxes))
        lam = rng.random(B).astype(np.float32)
        lam[0] = 0.5  # ties of uint8 rounding
        got = M.mixup_blend_torch(x, perm, torch.from_numpy(lam))
        assert np.array_equal(got.numpy(), M.mixup_blend_reference(x.numpy(), perm.numpy(), lam))


def test_the_probe_can_be_turned_off_on_purpose_without_a_warning(monkeypatch, fresh_probe):
    monkeypatch.setenv(cuda_ready.ENV, "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cuda_ready.use_cuda_kernels() is False
    assert cuda_ready.ENV in cuda_ready.cuda_kernels_problem()


def test_a_failing_compile_is_named_with_the_versions_and_warned_once(monkeypatch, fresh_probe):
    from numba import cuda

    def broken_jit(*args, **kwargs):
        raise AttributeError("module 'numpy' has no attribute 'row_stack'")

    monkeypatch.delenv(cuda_ready.ENV, raising=False)
    monkeypatch.setattr(cuda, "jit", broken_jit)
    with pytest.warns(RuntimeWarning, match="row_stack") as record:
        assert cuda_ready.use_cuda_kernels() is False
        assert cuda_ready.use_cuda_kernels() is False
    assert len(record) == 1
    problem = cuda_ready.cuda_kernels_problem()
    assert problem.startswith("AttributeError") and "numpy " in problem and "numba " in problem


def test_the_probe_passes_where_kernels_run(monkeypatch, fresh_probe):
    # numba's simulator without a GPU (see conftest), the device's kernels with one
    monkeypatch.delenv(cuda_ready.ENV, raising=False)
    problem = cuda_ready.cuda_kernels_problem()
    if torch.cuda.is_available() and problem is not None:
        pytest.skip(f"numba cannot run CUDA kernels on this GPU machine: {problem}")
    assert problem is None and cuda_ready.use_cuda_kernels() is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_dispatch_entries_take_the_torch_forms_when_told(monkeypatch, fresh_probe, rng):
    from fastvis.augment.poisson import poisson_blend_batch

    monkeypatch.setenv(cuda_ready.ENV, "0")
    src = rng.integers(0, 256, (4, 3, 9, 9), dtype=np.uint8)
    perm, lam = np.array([1, 2, 3, 0]), np.array([0.2, 0.5, 1.0, 0.7], np.float32)
    boxes = np.array([[0, 3, 0, 3], [1, 9, 2, 4], [0, 0, 0, 0], [2, 5, 1, 9]])
    oy, ox, flip = np.array([0, 1, 2, 4]), np.array([4, 3, 0, 1]), np.array([0, 1, 1, 0], np.uint8)
    d = [torch.from_numpy(a).cuda() for a in (src, perm, boxes, lam, oy, ox, flip)]
    assert np.array_equal(M.cutmix_paste(d[0], d[1], d[2]).cpu().numpy(), M.cutmix_paste_reference(src, perm, boxes))
    assert np.array_equal(M.mixup_blend(d[0], d[1], d[3]).cpu().numpy(), M.mixup_blend_reference(src, perm, lam))
    assert np.array_equal(G.crop_flip(d[0], d[4], d[5], d[6], 2, True).cpu().numpy(),
                          G.crop_flip_reference(src, oy, ox, flip, 2, True, (9, 9)))
    dst = torch.from_numpy(rng.integers(0, 256, (2, 3, 16, 16), dtype=np.uint8))
    pats = [torch.from_numpy(rng.integers(0, 256, (3, 6, 6), dtype=np.uint8)) for _ in range(2)]
    masks = [torch.zeros(6, 6, dtype=torch.bool) for _ in range(2)]
    for m in masks:
        m[1:5, 1:5] = True  # a one-pixel margin
    args = ([(3, 4), (8, 2)], [0, 1])
    want = poisson_blend_batch(dst, pats, masks, *args)
    got = poisson_blend_batch(dst.cuda(), [p.cuda() for p in pats], [m.cuda() for m in masks], *args)
    assert torch.equal(got.cpu(), want)


def test_numpy_aliases_are_put_back_only_where_missing(monkeypatch):
    vstack = np.vstack
    if hasattr(np, "row_stack"):
        monkeypatch.setattr(np, "row_stack", lambda *a: "kept")
        assert cuda_ready.restore_numpy_aliases() == []
        assert np.row_stack() == "kept"
    monkeypatch.delattr(np, "row_stack", raising=False)
    assert cuda_ready.restore_numpy_aliases() == ["row_stack"]
    assert np.row_stack is vstack
    assert cuda_ready.restore_numpy_aliases() == []


def test_the_aliases_are_put_back_before_the_probe_only_when_asked(monkeypatch, fresh_probe):
    monkeypatch.delattr(np, "row_stack", raising=False)
    monkeypatch.delenv(cuda_ready.ENV, raising=False)
    monkeypatch.delenv(cuda_ready.ALIASES_ENV, raising=False)
    cuda_ready.cuda_kernels_problem()
    assert not hasattr(np, "row_stack")
    cuda_ready.cuda_kernels_problem.cache_clear()
    monkeypatch.setenv(cuda_ready.ALIASES_ENV, "1")
    cuda_ready.cuda_kernels_problem()
    assert np.row_stack is np.vstack
