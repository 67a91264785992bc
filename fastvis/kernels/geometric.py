"""Fused random crop (with zero or reflect padding) and horizontal flip over a batch.

``out[b, c, y, x] = src[b, c, sy, sx]`` with ``sy = y + oy[b] - pad``,
``sx = (W_out - 1 - x if flip[b] else x) + ox[b] - pad``; a source index outside the image is
zero (``reflect=False``) or mirrored without repeating the edge (``reflect=True``, as
``torch.nn.functional.pad(mode="reflect")``). One pass, no padded copy of the batch.

Same forms as ``mix``: CUDA kernel, CPU twin, torch form, numpy reference, and a dispatch entry.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import cuda

from .cuda_ready import use_cuda_kernels
from .mix import _launch_into, chunks, unravel

# -- shared index arithmetic --------------------------------------------------------------------


@numba.njit(inline="always", cache=True)
def _reflect(i, n):  # pragma: no cover - compiled
    # mirror without repeating the edge: -1 -> 1, n -> n - 2 (n >= 2); n == 1 -> 0
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = abs(i) % period
    return period - i if i >= n else i


_reflect_dev = cuda.jit(device=True)(_reflect.py_func)


@cuda.jit
def crop_flip_cuda(src, oy, ox, flip, pad, reflect, out):  # pragma: no cover
    B, C, H, W = out.shape
    Hs = src.shape[2]
    Ws = src.shape[3]
    n = B * C * H * W
    for k in range(cuda.grid(1), n, cuda.gridsize(1)):
        b, c, y, x = unravel(k, C, H, W)
        xx = W - 1 - x if flip[b] else x
        sy = y + oy[b] - pad
        sx = xx + ox[b] - pad
        if 0 <= sy < Hs and 0 <= sx < Ws:
            out[b, c, y, x] = src[b, c, sy, sx]
        elif reflect:
            out[b, c, y, x] = src[b, c, _reflect_dev(sy, Hs), _reflect_dev(sx, Ws)]
        else:
            out[b, c, y, x] = 0


@numba.njit(cache=True)
def _crop_flip_rows(src, oy, ox, flip, pad, reflect, out, b0, b1):  # pragma: no cover
    _, C, H, W = out.shape
    Hs = src.shape[2]
    Ws = src.shape[3]
    for b in range(b0, b1):
        for c in range(C):
            for y in range(H):
                sy = y + oy[b] - pad
                if 0 <= sy < Hs:
                    ry = sy
                elif reflect:
                    ry = _reflect(sy, Hs)
                else:
                    for x in range(W):
                        out[b, c, y, x] = 0
                    continue
                for x in range(W):
                    xx = W - 1 - x if flip[b] else x
                    sx = xx + ox[b] - pad
                    if 0 <= sx < Ws:
                        out[b, c, y, x] = src[b, c, ry, sx]
                    elif reflect:
                        out[b, c, y, x] = src[b, c, ry, _reflect(sx, Ws)]
                    else:
                        out[b, c, y, x] = 0


@numba.njit(parallel=True, cache=True)
def _crop_flip_par(src, oy, ox, flip, pad, reflect, out, t, step):  # pragma: no cover
    B = out.shape[0]
    for k in numba.prange(t):
        _crop_flip_rows(src, oy, ox, flip, pad, reflect, out, min(k * step, B), min((k + 1) * step, B))


def crop_flip_cpu(src, oy, ox, flip, pad, reflect, out):
    """CPU twin: the parallel numba loop, one chunk of samples per thread."""
    _crop_flip_par(src, oy, ox, flip, pad, reflect, out, *chunks(out.shape[0]))


def crop_flip_reference(src, oy, ox, flip, pad, reflect, out_hw):
    """numpy: pad, crop, flip, one sample at a time."""
    H, W = out_hw
    mode = "reflect" if reflect else "constant"
    padded = np.pad(src, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode=mode)
    out = np.empty((src.shape[0], src.shape[1], H, W), src.dtype)
    for b in range(src.shape[0]):
        crop = padded[b, :, oy[b] : oy[b] + H, ox[b] : ox[b] + W]
        out[b] = crop[:, :, ::-1] if flip[b] else crop
    return out


def _reflect_torch(i, n: int):
    if n == 1:
        return i * 0
    period = 2 * (n - 1)
    i = i.abs() % period
    return (period - i).where(i >= n, i)


def crop_flip_torch(images, oy, ox, flip, pad: int, reflect: bool, out):
    """``crop_flip`` into ``out`` through torch operations (a gather by source index), on any
    device: the form device tensors take where numba cannot build CUDA kernels."""
    import torch

    B, _, Hs, Ws = images.shape
    _, _, H, W = out.shape
    dev = images.device
    y = torch.arange(H, device=dev)
    x = torch.arange(W, device=dev)
    sy = y[None] + oy[:, None] - pad  # (B, H)
    sx = torch.where(flip[:, None].bool(), W - 1 - x[None], x[None]) + ox[:, None] - pad  # (B, W)
    if reflect:
        ry, rx = _reflect_torch(sy, Hs), _reflect_torch(sx, Ws)
    else:
        ry, rx = sy.clamp(0, Hs - 1), sx.clamp(0, Ws - 1)
    b = torch.arange(B, device=dev)[:, None, None]
    v = images[b, :, ry[:, :, None], rx[:, None, :]]  # (B, H, W, C)
    if not reflect:
        inside = ((sy >= 0) & (sy < Hs))[:, :, None] & ((sx >= 0) & (sx < Ws))[:, None, :]
        v = torch.where(inside[..., None], v, torch.zeros((), dtype=v.dtype, device=dev))
    out.copy_(v.permute(0, 3, 1, 2))
    return out


def crop_flip(images, oy, ox, flip, pad: int, reflect: bool, out_hw=None):
    """Dispatch: crop every sample at its offset in the (virtually) padded image, then flip.

    ``oy``/``ox``: (B,) int64 offsets in ``[0, H + 2*pad - H_out]``; ``flip``: (B,) uint8/bool.
    ``out_hw``: output size (default: the input size). Returns a new tensor of the input's
    dtype and memory format.
    """
    import torch

    B, C, H, W = images.shape
    Ho, Wo = out_hw or (H, W)
    if reflect and pad >= min(H, W):
        raise ValueError(f"reflect padding {pad} must be smaller than the image ({H}x{W})")
    fmt = torch.channels_last if images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last) \
        and not images.is_contiguous() else torch.contiguous_format
    out = torch.empty((B, C, Ho, Wo), dtype=images.dtype, device=images.device, memory_format=fmt)
    flip = flip.to(torch.uint8)
    if images.is_cuda:
        if not use_cuda_kernels():
            return crop_flip_torch(images, oy, ox, flip, int(pad), bool(reflect), out)
        return _launch_into(crop_flip_cuda, out, images, oy, ox, flip, int(pad), bool(reflect))
    src, dst = images, out
    if images.dtype in (torch.float16, torch.bfloat16):
        src, dst = images.view(torch.int16), out.view(torch.int16)
    crop_flip_cpu(src.numpy(), oy.numpy(), ox.numpy(), flip.numpy(), int(pad), bool(reflect), dst.numpy())
    return out
