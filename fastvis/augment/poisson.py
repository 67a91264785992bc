"""Poisson image editing (normal clone): blend a source patch into an image in the gradient domain.

Inside the mask the result keeps the source's 4-neighbour Laplacian; on the mask's outer
boundary it meets the destination (Dirichlet). The equations are solved by the red-black SOR
kernels of ``fastvis.kernels.poisson`` (a CUDA kernel for device tensors, its CPU twin
otherwise) until the max-norm residual is at most ``tol``.

- :func:`poisson_blend` blends one patch into one image: 2-D grayscale or ``H x W x C``,
  numpy arrays or torch tensors (CPU or CUDA), uint8, uint16 or float; it returns a new array of
  the destination's type and dtype (integers rounded and clipped to the dtype's range).
- :func:`poisson_blend_batch` blends many patches into a ``(B, C, H, W)`` batch in one kernel
  launch (what :class:`fastvis.augment.DefectPaste` uses).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..kernels import poisson as poisson_kernels
from ..kernels.cuda_ready import use_cuda_kernels

__all__ = ["BlendStats", "poisson_blend", "poisson_blend_batch", "poisson_blend_reference"]


@dataclass
class BlendStats:
    """What the solver did for each (patch, channel): iterations and final residual."""

    iterations: np.ndarray
    residual: np.ndarray
    tol: float

    @property
    def converged(self) -> bool:
        return bool((self.residual <= self.tol).all())


def default_tol(dtype: torch.dtype) -> float:
    """Residual tolerance: 0.1 grey level for integer images, 0.1/255 for float images (taken to
    be in [0, 1]). Measured on 128 px patches, it leaves the result within 0.55 of a level of
    the exact solve before rounding (``fastvis-bench poisson``)."""
    return 0.1 if not dtype.is_floating_point else 0.1 / 255


def laplacian(a):
    """``4 a[y, x]`` minus its 4 neighbours over the last two axes (numpy or torch); a neighbour
    outside the array counts as 0, so the border values are only meaningful inside."""
    lap = 4 * a
    lap[..., 1:, :] -= a[..., :-1, :]
    lap[..., :-1, :] -= a[..., 1:, :]
    lap[..., :, 1:] -= a[..., :, :-1]
    lap[..., :, :-1] -= a[..., :, 1:]
    return lap


def mask_box(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """Half-open bounding box ``(y0, y1, x0, x1)`` of a 2-D mask's nonzero pixels, or None if empty."""
    m = mask != 0
    rows, cols = m.any(1).nonzero().flatten().tolist(), m.any(0).nonzero().flatten().tolist()
    if not rows:
        return None
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def _check_patch(mask: torch.Tensor, shape: tuple[int, int], offset: tuple[int, int], image_hw: tuple[int, int],
                 where: str) -> None:
    h, w = shape
    if tuple(mask.shape) != (h, w):
        raise ValueError(f"{where}: mask {tuple(mask.shape)} and source {h}x{w} differ in size")
    if h < 3 or w < 3:
        raise ValueError(f"{where}: the source patch must be at least 3x3, got {h}x{w}")
    m = mask != 0
    if bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()):
        raise ValueError(f"{where}: the mask touches the border of the source patch (leave a one-pixel margin)")
    y, x = offset
    H, W = image_hw
    if y < 0 or x < 0 or y + h > H or x + w > W:
        raise ValueError(f"{where}: a {h}x{w} patch at offset {(y, x)} does not fit in the {H}x{W} image")


def poisson_blend_batch(
    images: torch.Tensor,
    patches: Sequence[torch.Tensor] | torch.Tensor,
    masks: Sequence[torch.Tensor] | torch.Tensor,
    offsets: Sequence[tuple[int, int]] | torch.Tensor,
    index: Sequence[int] | torch.Tensor,
    tol: float | None = None,
    max_iter: int = 20_000,
    clip: tuple[float, float] | None = None,
    return_stats: bool = False,
):
    """Blend patch ``p`` (``(C, h, w)``, mask ``(h, w)``) into ``images[index[p]]`` with its
    top-left corner at ``offsets[p] = (y, x)``; all patches are solved in one call.

    ``images``: ``(B, C, H, W)`` of any dtype, on the CPU or a CUDA device (patches and masks are
    moved there). Returns a new tensor; patches aimed at the same image are each solved against
    the original image, and where their masks overlap the later patch wins. ``clip``: the value
    range of the result (default: the dtype's range for integers, none for floats).
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    B, C, H, W = images.shape
    dev = images.device
    n = len(index)
    if not (len(patches) == len(masks) == len(offsets) == n):
        raise ValueError("patches, masks, offsets and index must have the same length")
    out = images.clone()
    tol = default_tol(images.dtype) if tol is None else float(tol)
    if n == 0:
        stats = BlendStats(np.zeros(0, np.int32), np.zeros(0), tol)
        return (out, stats) if return_stats else out
    idx = [int(i) for i in (index.tolist() if isinstance(index, torch.Tensor) else index)]
    offs = [tuple(int(v) for v in o) for o in (offsets.tolist() if isinstance(offsets, torch.Tensor) else offsets)]
    pats = [torch.as_tensor(p, device=dev) for p in patches]
    msks = [torch.as_tensor(m, device=dev) != 0 for m in masks]
    for p in range(n):
        if not 0 <= idx[p] < B:
            raise ValueError(f"patch {p}: image index {idx[p]} outside the batch of {B}")
        if pats[p].dim() != 3 or pats[p].shape[0] != C:
            raise ValueError(f"patch {p}: expected ({C}, h, w), got {tuple(pats[p].shape)}")
        _check_patch(msks[p], tuple(pats[p].shape[1:]), offs[p], (H, W), f"patch {p}")
    # solve on each mask's bounding box plus a one-pixel ring (the boundary), not the whole patch
    boxes = []
    for p in range(n):
        box = mask_box(msks[p])
        if box is not None:
            boxes.append((box[0] - 1, box[1] + 1, box[2] - 1, box[3] + 1))
        else:
            boxes.append((0, 3, 0, 3))  # empty mask: nothing to solve
    hm = max(b[1] - b[0] for b in boxes)
    wm = max(b[3] - b[2] for b in boxes)

    f = torch.zeros(n, C, hm, wm, dtype=torch.float64, device=dev)
    src = torch.zeros_like(f)
    mask = torch.zeros(n, 1, hm, wm, dtype=torch.bool, device=dev)
    rho = torch.empty(n, dtype=torch.float64)
    for p in range(n):
        y0, y1, x0, x1 = boxes[p]
        h, w = y1 - y0, x1 - x0
        y, x = offs[p][0] + y0, offs[p][1] + x0
        f[p, :, :h, :w] = _f64(images[idx[p], :, y : y + h, x : x + w])
        src[p, :, :h, :w] = _f64(pats[p][:, y0:y1, x0:x1])
        mask[p, 0, :h, :w] = msks[p][y0:y1, x0:x1]
        rho[p] = poisson_kernels.jacobi_radius(h - 2, w - 2)

    # guidance: the source's Laplacian; the mask never reaches the padding, so its edges do not matter
    lap = laplacian(src)
    # initial guess: the source, shifted by its mean offset from the destination on the boundary
    near = torch.zeros_like(mask)
    near[..., 1:, :] |= mask[..., :-1, :]
    near[..., :-1, :] |= mask[..., 1:, :]
    near[..., :, 1:] |= mask[..., :, :-1]
    near[..., :, :-1] |= mask[..., :, 1:]
    edge = (near & ~mask).to(torch.float64)
    shift = ((f - src) * edge).sum((2, 3)) / edge.sum((2, 3)).clamp_min(1)
    f = torch.where(mask, src + shift[..., None, None], f)

    P = n * C
    f = f.reshape(P, hm, wm).contiguous()
    lap = lap.reshape(P, hm, wm).contiguous()
    m8 = mask.expand(n, C, hm, wm).reshape(P, hm, wm).to(torch.uint8).contiguous()
    rho_p = rho.repeat_interleave(C)
    iters = torch.zeros(P, dtype=torch.int32, device=dev)
    resid = torch.zeros(P, dtype=torch.float64, device=dev)
    if dev.type == "cuda" and not use_cuda_kernels():
        # numba cannot build CUDA kernels here: the CPU twin on host copies, the result back
        host = [a.cpu() for a in (f, lap, m8, rho_p, iters, resid)]
        poisson_kernels.poisson_sor_cpu(*(a.numpy() for a in host[:4]), tol, max_iter, host[4].numpy(),
                                        host[5].numpy())
        f, iters, resid = host[0].to(dev), host[4].to(dev), host[5].to(dev)
    elif dev.type == "cuda":
        from numba import cuda

        with cuda.gpus[dev.index or 0]:
            stream = cuda.external_stream(torch.cuda.current_stream(dev).cuda_stream)
            args = [cuda.as_cuda_array(a) for a in (f, lap, m8, rho_p.to(dev))]
            outs = cuda.as_cuda_array(iters), cuda.as_cuda_array(resid)
            poisson_kernels.launch_sor(*args, tol, max_iter, *outs, stream)
    else:
        poisson_kernels.poisson_sor_cpu(f.numpy(), lap.numpy(), m8.numpy(), rho_p.numpy(), tol, max_iter, iters.numpy(),
                          resid.numpy())

    f = f.reshape(n, C, hm, wm)
    if clip is None and not images.dtype.is_floating_point:
        clip = _int_range(images.dtype)
    if not images.dtype.is_floating_point:
        f = f.round()
    if clip is not None:
        f = f.clamp(*clip)
    if images.dtype == torch.uint16:  # few torch kernels take uint16: write its bits as int16
        f, view = f.to(torch.int32).to(torch.int16), out.view(torch.int16)
    else:
        f, view = f.to(images.dtype), out
    for p in range(n):
        y0, y1, x0, x1 = boxes[p]
        h, w = y1 - y0, x1 - x0
        y, x = offs[p][0] + y0, offs[p][1] + x0
        region = view[idx[p], :, y : y + h, x : x + w]
        region.copy_(torch.where(msks[p][y0:y1, x0:x1], f[p, :, :h, :w], region))
    if return_stats:
        stats = BlendStats(iters.cpu().numpy(), resid.cpu().numpy(), tol)
        return out, stats
    return out


def _int_range(dtype: torch.dtype) -> tuple[float, float]:
    if dtype == torch.uint16:
        return 0.0, 65535.0
    info = torch.iinfo(dtype)
    return float(info.min), float(info.max)


def _f64(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.uint16:
        return (t.view(torch.int16).to(torch.int32) & 0xFFFF).to(torch.float64)
    return t.to(torch.float64)


def poisson_blend(dst, src, mask, offset: tuple[int, int], tol: float | None = None, max_iter: int = 20_000,
                  return_stats: bool = False):
    """Blend ``src`` into ``dst`` with its top-left corner at ``offset = (y, x)`` (normal clone).

    ``dst``: ``H x W`` or ``H x W x C``; ``src``: ``h x w`` (``x C``); ``mask``: ``h x w``, nonzero
    where the result follows ``src``'s gradients. numpy arrays or torch tensors (CPU or CUDA).
    A mask touching ``src``'s border, or a placement outside ``dst``, is a ValueError.
    Returns a new array like ``dst`` (same type, dtype and device).
    """
    is_np = isinstance(dst, np.ndarray)
    d = torch.from_numpy(np.ascontiguousarray(dst)) if is_np else dst
    s = torch.from_numpy(np.ascontiguousarray(src)) if isinstance(src, np.ndarray) else src
    m = torch.from_numpy(np.ascontiguousarray(mask)) if isinstance(mask, np.ndarray) else mask
    if d.dim() not in (2, 3) or s.dim() != d.dim():
        raise ValueError(f"dst and src must both be H x W or H x W x C, got {tuple(d.shape)} and {tuple(s.shape)}")
    if d.dim() == 3 and d.shape[2] != s.shape[2]:
        raise ValueError(f"dst has {d.shape[2]} channels, src {s.shape[2]}")
    if m.dim() != 2:
        raise ValueError(f"mask must be h x w, got {tuple(m.shape)}")
    d4 = d[None, None] if d.dim() == 2 else d.permute(2, 0, 1)[None]
    s3 = s[None] if s.dim() == 2 else s.permute(2, 0, 1)
    res = poisson_blend_batch(d4, [s3.to(d.device)], [m.to(d.device)], [tuple(offset)], [0], tol=tol,
                              max_iter=max_iter, return_stats=return_stats)
    out, stats = res if return_stats else (res, None)
    out = out[0, 0] if d.dim() == 2 else out[0].permute(1, 2, 0).contiguous()
    if is_np:
        out = out.numpy()
    return (out, stats) if return_stats else out


def poisson_blend_reference(dst, src, mask, offset: tuple[int, int]) -> np.ndarray:
    """The exact (unrounded, float64) result of :func:`poisson_blend` by a direct sparse solve
    (needs scipy; for tests and benchmarks). numpy arrays, ``H x W`` or ``H x W x C``."""
    dst = np.asarray(dst, np.float64)
    src = np.asarray(src, np.float64)
    out = dst.copy()
    y, x = offset
    h, w = np.asarray(mask).shape
    if dst.ndim == 2:
        planes = [(out, dst, src)]
    else:
        planes = [(out[..., c], dst[..., c], src[..., c]) for c in range(dst.shape[2])]
    for o, d, s in planes:
        o[y : y + h, x : x + w] = poisson_kernels.poisson_reference(d[y : y + h, x : x + w], laplacian(s), mask)
    return out
