"""JPEG fields decoded in batches, then random-resized-cropped on the device.

:func:`decode_jpeg_batch` hands the stored JPEG bytes of a batch to nvjpeg
(``torchvision.io.decode_jpeg(..., device="cuda")``, one call for the whole batch) on a CUDA
device, and to Pillow on threads (the reader's own path) on the CPU. :func:`random_resized_crop`
draws Inception-style boxes (area fraction ``scale``, aspect ``ratio``, ten tries then a centre
crop, as torchvision does) and resamples every box to ``size x size`` in one batched
``torchvision.ops.roi_align`` call (bilinear, 2 x 2 samples averaged per output pixel).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..augment._random import GeneratorLike, rng
from ..beton import BetonReader, RGBImageField
from ..beton.format import MODE_JPEG

__all__ = ["decode_jpeg_batch", "random_resized_crop", "rrc_boxes"]


def decode_jpeg_batch(reader: BetonReader, indices, device: torch.device | str = "cpu",
                      name: str = "image") -> list[torch.Tensor]:
    """Images ``indices`` of a JPEG (or raw) RGB field as a list of (3, H, W) uint8 tensors on ``device``."""
    device = torch.device(device)
    field = reader.fields[name]
    if not isinstance(field, RGBImageField):
        raise TypeError(f"{reader.path}: field {name!r} is not an RGB image field")
    idx = [int(i) for i in np.asarray(indices).reshape(-1)]
    modes = reader.metadata[f"f{reader.names.index(name)}"]["mode"][idx] if idx else np.zeros(0)
    if device.type == "cuda" and len(idx) and (modes == MODE_JPEG).all():
        from torchvision.io import decode_jpeg

        data = [torch.from_numpy(reader.payload(i, name).copy()) for i in idx]
        return decode_jpeg(data, device=device)
    out = []
    for i in idx:
        img = reader.get(i, name)  # (H, W, 3) uint8, decoded by Pillow
        if not img.flags.writeable:  # a raw image is a view of the file
            img = img.copy()
        out.append(torch.from_numpy(img).permute(2, 0, 1).to(device))
    return out


def rrc_boxes(sizes, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), generator: GeneratorLike = None) -> np.ndarray:
    """(B, 4) boxes ``(y0, x0, h, w)`` for images of ``sizes`` (B, 2) = (H, W)."""
    r = rng(generator)
    boxes = np.zeros((len(sizes), 4), np.int64)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for b, (H, W) in enumerate(sizes):
        area = H * W
        for _ in range(10):
            target = area * r.uniform(*scale)
            aspect = math.exp(r.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= W and 0 < h <= H:
                boxes[b] = (r.integers(0, H - h + 1), r.integers(0, W - w + 1), h, w)
                break
        else:  # centre crop at the nearest allowed aspect
            in_ratio = W / H
            if in_ratio < ratio[0]:
                w, h = W, int(round(W / ratio[0]))
            elif in_ratio > ratio[1]:
                h, w = H, int(round(H * ratio[1]))
            else:
                h, w = H, W
            boxes[b] = ((H - h) // 2, (W - w) // 2, h, w)
    return boxes


def random_resized_crop(images, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_p: float = 0.5,
                        generator: GeneratorLike = None, boxes: np.ndarray | None = None) -> torch.Tensor:
    """``images``: a list of (3, H, W) uint8 tensors (sizes may differ) or a (B, 3, H, W) batch,
    on one device. Returns (B, 3, size, size) uint8 there, each a random box resampled, then
    mirrored with probability ``flip_p``."""
    from torchvision.ops import roi_align

    imgs = list(images) if not isinstance(images, torch.Tensor) else list(images.unbind(0))
    if not imgs:
        raise ValueError("no images")
    sizes = np.array([tuple(t.shape[-2:]) for t in imgs])
    r = rng(generator)
    if boxes is None:
        boxes = rrc_boxes(sizes, scale, ratio, r)
    flips = r.random(len(imgs)) < flip_p
    H, W = sizes.max(0)
    dev = imgs[0].device
    batch = torch.zeros(len(imgs), 3, int(H), int(W), dtype=torch.float32, device=dev)
    for b, t in enumerate(imgs):
        batch[b, :, : t.shape[1], : t.shape[2]] = t
    y0, x0, h, w = (torch.from_numpy(boxes[:, k]).to(torch.float32) for k in range(4))
    rois = torch.stack([torch.arange(len(imgs), dtype=torch.float32), x0, y0, x0 + w, y0 + h], 1).to(dev)
    out = roi_align(batch, rois, (size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    flip_t = torch.from_numpy(flips).to(dev).view(-1, 1, 1, 1)
    out = torch.where(flip_t, out.flip(-1), out)
    return out.round_().clamp_(0, 255).to(torch.uint8)
