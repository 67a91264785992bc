"""Area resizing of grayscale images of any integer or float dtype (16-bit radiographs included),
as two matrix products: each output pixel is the mean of the input area it covers."""
from __future__ import annotations

import numpy as np

__all__ = ["area_resize"]


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size x size`` by area interpolation (each output pixel the mean of the input
    area it covers), rounded and clipped to the input's dtype; float64 in between."""
    h, w = image.shape
    out = _area_matrix(h, size) @ image.astype(np.float64) @ _area_matrix(w, size).T
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(image.dtype)


def _area_matrix(n: int, m: int) -> np.ndarray:
    """(m, n) weights: row i averages the input interval [i n/m, (i+1) n/m)."""
    edges = np.arange(m + 1) * (n / m)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0, None)
    return overlap / (n / m)
