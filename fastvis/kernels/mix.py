"""CutMix box paste and mixup blend over a whole batch.

Each op comes three ways, all computing the same thing:

- a CUDA kernel (``*_cuda``), launched on torch's current stream, reading torch tensors in
  place through ``__cuda_array_interface__``;
- a CPU twin (``*_cpu``), ``numba.njit(parallel=True)`` over the batch, on numpy views of
  torch tensors (no copies);
- a torch form (``*_torch``), for device tensors where numba cannot build CUDA kernels
  (``fastvis.kernels.cuda_ready``);
- the dispatch entry (``cutmix_paste``, ``mixup_blend``) that picks one by the tensor's device.

Arrays are ``(B, C, H, W)`` in logical order (any strides, so channels-last works).
``perm[i]`` is the partner of sample ``i``; ``boxes[i] = (y0, y1, x0, x1)`` is its half-open
paste box; ``lam[i]`` is the weight of sample ``i`` itself in the blend.

Every output pixel is written exactly once, from the unmodified input, so the input may not
alias the output. uint8 blends round half up: ``floor(lam*a + (1-lam)*b + 0.5)`` in float32,
the same expression in every twin.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import cuda

from .cuda_ready import use_cuda_kernels

THREADS = 256

# -- CUDA kernels -------------------------------------------------------------------------------


@cuda.jit(device=True)
def unravel(k, C, H, W):  # pragma: no cover
    """(b, c, y, x) of the k-th element of a (B, C, H, W) array in logical order."""
    return k // (W * H * C), (k // (W * H)) % C, (k // W) % H, k % W


@cuda.jit
def cutmix_paste_cuda(src, perm, boxes, out):  # pragma: no cover - runs on a device or the simulator
    B, C, H, W = out.shape
    n = B * C * H * W
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for k in range(start, n, stride):
        b, c, y, x = unravel(k, C, H, W)
        inside = boxes[b, 0] <= y and y < boxes[b, 1] and boxes[b, 2] <= x and x < boxes[b, 3]
        s = perm[b] if inside else b
        out[b, c, y, x] = src[s, c, y, x]


@cuda.jit
def mixup_blend_u8_cuda(src, perm, lam, out):  # pragma: no cover
    B, C, H, W = out.shape
    n = B * C * H * W
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for k in range(start, n, stride):
        b, c, y, x = unravel(k, C, H, W)
        w = lam[b]
        w2 = numba.float32(1.0) - w
        v = w * numba.float32(src[b, c, y, x]) + w2 * numba.float32(src[perm[b], c, y, x])
        out[b, c, y, x] = numba.uint8(numba.int32(v + numba.float32(0.5)))


@cuda.jit
def mixup_blend_float_cuda(src, perm, lam, out):  # pragma: no cover
    B, C, H, W = out.shape
    n = B * C * H * W
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for k in range(start, n, stride):
        b, c, y, x = unravel(k, C, H, W)
        w = lam[b]
        w2 = numba.float32(1.0) - w
        out[b, c, y, x] = w * src[b, c, y, x] + w2 * src[perm[b], c, y, x]


def launch_config(n: int) -> tuple[int, int]:
    """Blocks and threads for a grid-stride loop over ``n`` elements."""
    blocks = max(1, min(65535, (n + THREADS - 1) // THREADS))
    return blocks, THREADS


# -- CPU twins ----------------------------------------------------------------------------------
# Each twin is a serial body over a range of samples plus a parallel wrapper that gives every
# thread one contiguous chunk: a prange over single samples schedules too finely and keeps
# LLVM from vectorising the body.


def chunks(n: int) -> tuple[int, int]:
    """(threads, samples per thread) for the parallel wrappers; computed outside numba,
    where reading the thread count would stop the wrappers from being cached."""
    t = max(1, min(numba.get_num_threads(), n))
    return t, -(-n // t)


@numba.njit(cache=True)
def _cutmix_rows(src, perm, boxes, ones, out, b0, b1):  # pragma: no cover
    # Branch-free select with an all-ones/all-zeros bit mask: LLVM vectorises it, where a
    # branchy or segmented copy runs byte by byte. Arrays are integer views of any dtype.
    _, C, H, W = out.shape
    zero = ones ^ ones
    for b in range(b0, b1):
        y0, y1, x0, x1 = boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3]
        p = perm[b]
        for c in range(C):
            for y in range(H):
                row = ones if (y >= y0) & (y < y1) else zero
                for x in range(W):
                    m = row & (ones if (x >= x0) & (x < x1) else zero)
                    out[b, c, y, x] = (src[p, c, y, x] & m) | (src[b, c, y, x] & ~m)


@numba.njit(parallel=True, cache=True)
def _cutmix_paste_par(src, perm, boxes, ones, out, t, step):  # pragma: no cover
    B = out.shape[0]
    for k in numba.prange(t):
        _cutmix_rows(src, perm, boxes, ones, out, min(k * step, B), min((k + 1) * step, B))


def cutmix_paste_cpu(src, perm, boxes, ones, out):
    """CPU twin: the parallel numba loop, one chunk of samples per thread."""
    _cutmix_paste_par(src, perm, boxes, ones, out, *chunks(out.shape[0]))


@numba.njit(cache=True)
def word_masks(boxes, itemsize, nbytes):  # pragma: no cover
    """Per sample, the bytes of one row that lie inside its box, as 64-bit words."""
    B = boxes.shape[0]
    m = np.zeros((B, nbytes), np.uint8)
    for b in range(B):
        for i in range(boxes[b, 2] * itemsize, boxes[b, 3] * itemsize):
            m[b, i] = 255
    return m.view(np.uint64)


@numba.njit(cache=True)
def _cutmix_words_rows(src, perm, boxes, masks, out, b0, b1):  # pragma: no cover
    # rows as 64-bit words: rows outside the box are copied, rows inside blended by the mask
    _, C, H, Wd = out.shape
    for b in range(b0, b1):
        y0, y1, p = boxes[b, 0], boxes[b, 1], perm[b]
        for c in range(C):
            for y in range(H):
                if y0 <= y and y < y1:
                    for k in range(Wd):
                        m = masks[b, k]
                        out[b, c, y, k] = (src[p, c, y, k] & m) | (src[b, c, y, k] & ~m)
                else:
                    for k in range(Wd):
                        out[b, c, y, k] = src[b, c, y, k]


@numba.njit(parallel=True, cache=True)
def _cutmix_words_par(src, perm, boxes, masks, out, t, step):  # pragma: no cover
    B = out.shape[0]
    for k in numba.prange(t):
        _cutmix_words_rows(src, perm, boxes, masks, out, min(k * step, B), min((k + 1) * step, B))


def cutmix_paste_words_cpu(src, perm, boxes, itemsize, out):
    """Fast CPU path. ``src``/``out``: C-contiguous (B, C, H, W * itemsize) uint8 arrays (the
    bytes of the images) whose rows are a whole number of 64-bit words."""
    masks = word_masks(boxes, itemsize, src.shape[3])
    _cutmix_words_par(src.view(np.uint64), perm, boxes, masks, out.view(np.uint64), *chunks(src.shape[0]))


@numba.njit(cache=True)
def _mixup_u8_rows(src, perm, lam, out, b0, b1):  # pragma: no cover
    _, C, H, W = out.shape
    one = np.float32(1.0)
    half = np.float32(0.5)
    for b in range(b0, b1):
        w = lam[b]
        w2 = one - w
        p = perm[b]
        for c in range(C):
            for y in range(H):
                for x in range(W):
                    v = w * np.float32(src[b, c, y, x]) + w2 * np.float32(src[p, c, y, x])
                    out[b, c, y, x] = np.uint8(np.int32(v + half))  # v >= 0: truncation is floor


@numba.njit(parallel=True, cache=True)
def _mixup_blend_u8_par(src, perm, lam, out, t, step):  # pragma: no cover
    B = out.shape[0]
    for k in numba.prange(t):
        _mixup_u8_rows(src, perm, lam, out, min(k * step, B), min((k + 1) * step, B))


def mixup_blend_u8_cpu(src, perm, lam, out):
    """CPU twin: the parallel numba loop, one chunk of samples per thread."""
    _mixup_blend_u8_par(src, perm, lam, out, *chunks(out.shape[0]))


@numba.njit(cache=True)
def _mixup_float_rows(src, perm, lam, out, b0, b1):  # pragma: no cover
    _, C, H, W = out.shape
    one = np.float32(1.0)
    for b in range(b0, b1):
        w = lam[b]
        w2 = one - w
        p = perm[b]
        for c in range(C):
            for y in range(H):
                for x in range(W):
                    out[b, c, y, x] = w * src[b, c, y, x] + w2 * src[p, c, y, x]


@numba.njit(parallel=True, cache=True)
def _mixup_blend_float_par(src, perm, lam, out, t, step):  # pragma: no cover
    B = out.shape[0]
    for k in numba.prange(t):
        _mixup_float_rows(src, perm, lam, out, min(k * step, B), min((k + 1) * step, B))


def mixup_blend_float_cpu(src, perm, lam, out):
    """CPU twin: the parallel numba loop, one chunk of samples per thread."""
    _mixup_blend_float_par(src, perm, lam, out, *chunks(out.shape[0]))


# -- parameter helpers (tiny per-sample loops: compiled, they cost microseconds) ---------------


@numba.njit(cache=True)
def cutmix_boxes(lam, cy, cx, h, w):  # pragma: no cover
    """Boxes of side ``floor(sqrt(1 - lam) * size)`` centred at (cy, cx), clipped to the image,
    and the exact weight each sample keeps: ``1 - clipped area / (h * w)``."""
    n = lam.shape[0]
    boxes = np.empty((n, 4), np.int64)
    exact = np.empty(n, np.float64)
    for i in range(n):
        r = np.sqrt(1.0 - lam[i])
        ch, cw = np.int64(np.floor(r * h)), np.int64(np.floor(r * w))
        y0 = min(max(cy[i] - ch // 2, 0), h)
        y1 = min(max(cy[i] + ch - ch // 2, 0), h)
        x0 = min(max(cx[i] - cw // 2, 0), w)
        x1 = min(max(cx[i] + cw - cw // 2, 0), w)
        boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3] = y0, y1, x0, x1
        exact[i] = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    return boxes, exact


@numba.njit(cache=True)
def mix_onehot(labels, perm, lam, num_classes):  # pragma: no cover
    """Soft targets of a mix of class ids: ``lam`` on the own class, ``1 - lam`` on the partner's."""
    n = labels.shape[0]
    out = np.zeros((n, num_classes), np.float32)
    for i in range(n):
        w = np.float32(lam[i])
        out[i, labels[i]] += w
        out[i, labels[perm[i]]] += np.float32(1.0) - w
    return out


# -- numpy references (for tests; slow but obviously right) -------------------------------------


def cutmix_paste_reference(src: np.ndarray, perm: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    out = src.copy()
    for b, (y0, y1, x0, x1) in enumerate(boxes):
        out[b, :, y0:y1, x0:x1] = src[perm[b], :, y0:y1, x0:x1]
    return out


def mixup_blend_reference(src: np.ndarray, perm: np.ndarray, lam: np.ndarray) -> np.ndarray:
    w = lam.astype(np.float32)[:, None, None, None]
    w2 = np.float32(1) - w
    if src.dtype == np.uint8:
        v = w * src.astype(np.float32) + w2 * src[perm].astype(np.float32)
        return np.floor(v + np.float32(0.5)).astype(np.uint8)
    return (w * src + w2 * src[perm]).astype(src.dtype)


# -- torch forms (device tensors when numba cannot build CUDA kernels here: see cuda_ready) -------


def cutmix_paste_torch(images, perm, boxes):
    """``cutmix_paste`` through torch operations, on any device."""
    torch = _torch()
    _, _, H, W = images.shape
    ys = torch.arange(H, device=images.device)
    xs = torch.arange(W, device=images.device)
    rows = (boxes[:, 0, None] <= ys) & (ys < boxes[:, 1, None])  # (B, H)
    cols = (boxes[:, 2, None] <= xs) & (xs < boxes[:, 3, None])  # (B, W)
    inside = (rows[:, :, None] & cols[:, None, :])[:, None]  # (B, 1, H, W)
    out = torch.empty_like(images)
    out.copy_(torch.where(inside, images[perm], images))
    return out


def mixup_blend_torch(images, perm, lam):
    """``mixup_blend`` through torch operations, on any device and dtype: the kernels' float32
    arithmetic, uint8 rounded half up, other dtypes cast from float32."""
    torch = _torch()
    w = lam.to(torch.float32).view(-1, 1, 1, 1)
    v = w * images.to(torch.float32) + (1 - w) * images[perm].to(torch.float32)
    out = torch.empty_like(images)
    if images.dtype == torch.uint8:
        v = (v + 0.5).to(torch.int32)  # v >= 0: truncation is floor
    out.copy_(v)
    return out


# -- dispatch -----------------------------------------------------------------------------------

_CPU_DTYPES = (np.uint8, np.float32, np.float64)


def _torch():
    import torch

    return torch


def supported(images) -> bool:
    """Whether the numba kernels handle this tensor (uint8, float32; float64 on CPU)."""
    torch = _torch()
    if images.dtype == torch.uint8 or images.dtype == torch.float32:
        return True
    return images.dtype == torch.float64 and not images.is_cuda


def _launch_into(kernel, out, *args):
    """Launch ``kernel(*args, out)`` on torch's current stream of ``out``'s device; tensors go
    through ``__cuda_array_interface__`` (no copies), scalars as they are."""
    torch = _torch()
    if out.numel() == 0:
        return out
    blocks, threads = launch_config(out.numel())
    with cuda.gpus[out.device.index or 0]:
        stream = cuda.external_stream(torch.cuda.current_stream(out.device).cuda_stream)
        dev = [cuda.as_cuda_array(a) if isinstance(a, torch.Tensor) else a for a in (*args, out)]
        kernel[blocks, threads, stream](*dev)
    return out


def _launch(kernel, images, *args):
    return _launch_into(kernel, _torch().empty_like(images), images, *args)


_INT_VIEWS = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


def int_view(t):
    """The tensor reinterpreted as integers of the same width (for bitwise copies)."""
    torch = _torch()
    return t.view(getattr(torch, _INT_VIEWS[t.element_size()]))


def cutmix_paste(images, perm, boxes):
    """Batch with ``boxes[i]`` of sample ``i`` replaced by the same region of ``images[perm[i]]``.

    ``images``: (B, C, H, W) tensor of any dtype; ``perm``: (B,) int64; ``boxes``: (B, 4)
    int64, all on the images' device. Returns a new tensor (same dtype, strides and device).
    """
    torch = _torch()
    if images.is_cuda:
        if not use_cuda_kernels():
            return cutmix_paste_torch(images, perm, boxes)
        return _launch(cutmix_paste_cuda, images, perm, boxes)
    out = torch.empty_like(images)
    if images.is_contiguous() and (images.shape[3] * images.element_size()) % 8 == 0:
        src, dst = images.view(torch.uint8).numpy(), out.view(torch.uint8).numpy()
        cutmix_paste_words_cpu(src, perm.numpy(), boxes.numpy(), images.element_size(), dst)
        return out
    src, dst = int_view(images).numpy(), int_view(out).numpy()
    ones = np.array(-1).astype(src.dtype)[()]  # all bits set
    cutmix_paste_cpu(src, perm.numpy(), boxes.numpy(), ones, dst)
    return out


def mixup_blend(images, perm, lam):
    """``lam[i] * images[i] + (1 - lam[i]) * images[perm[i]]`` for every sample, in float32;
    uint8 results rounded half up. ``lam`` is a (B,) float32 tensor on the images' device."""
    torch = _torch()
    if not supported(images):
        return mixup_blend_torch(images, perm, lam)
    uint8 = images.dtype == torch.uint8
    if images.is_cuda:
        if not use_cuda_kernels():
            return mixup_blend_torch(images, perm, lam)
        return _launch(mixup_blend_u8_cuda if uint8 else mixup_blend_float_cuda, images, perm, lam)
    out = torch.empty_like(images)
    fn = mixup_blend_u8_cpu if uint8 else mixup_blend_float_cpu
    fn(images.numpy(), perm.numpy(), lam.numpy().astype(np.float32), out.numpy())
    return out
