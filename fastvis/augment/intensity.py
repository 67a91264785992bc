"""Stored radiograph values to float in [0, 1], on the device, per sample.

``params`` rows are ``(slope, intercept, low, high, invert)``: the modality rescale
``v = raw * slope + intercept``, then ``(v - low) / (high - low)`` clipped to [0, 1], then
``1 - value`` where ``invert`` (MONOCHROME1, where larger values are darker). A NaN ``low``
means the image's own minimum and maximum (of ``v``) are the range.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .base import module_form

__all__ = ["ToUnit", "to_unit", "window_params"]

WINDOW_MODES = ("auto", "window", "minmax")


def window_params(metas: Sequence[dict], mode: str = "auto") -> torch.Tensor:
    """(N, 5) float64 parameters from the ``meta`` of DICOM samples.

    ``mode``: ``window`` uses the file's window (center, width; an error where it has none),
    ``minmax`` each image's own range, ``auto`` the window where there is one, else the range.
    """
    if mode not in WINDOW_MODES:
        raise ValueError(f"window mode must be one of {WINDOW_MODES}, got {mode!r}")
    rows = []
    for k, m in enumerate(metas):
        slope = float(m.get("rescale_slope") or 1.0)
        intercept = float(m.get("rescale_intercept") or 0.0)
        c, w = m.get("window_center"), m.get("window_width")
        has_window = c is not None and w is not None and w > 0
        if mode == "window" and not has_window:
            raise ValueError(f"sample {k} ({m.get('path', '?')}) has no window center/width")
        lo, hi = (c - w / 2, c + w / 2) if has_window and mode != "minmax" else (math.nan, math.nan)
        invert = 1.0 if m.get("photometric") == "MONOCHROME1" else 0.0
        rows.append((slope, intercept, lo, hi, invert))
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 5)


def to_unit(raw: torch.Tensor, params: torch.Tensor, unsigned16: bool = False) -> torch.Tensor:
    """``raw`` (B, 1, H, W) integers (int16 holding uint16 bits when ``unsigned16``), ``params``
    (B, 5) on any device; returns float32 (B, 1, H, W) in [0, 1] on ``raw``'s device."""
    if unsigned16:
        v = (raw.to(torch.int32) & 0xFFFF).to(torch.float32)
    else:
        v = raw.to(torch.float32)
    p = params.to(device=raw.device, dtype=torch.float32)
    slope, intercept, lo, hi, invert = (p[:, k].view(-1, 1, 1, 1) for k in range(5))
    v = v * slope + intercept
    own = torch.isnan(lo)
    if bool(own.any()):
        vmin = v.amin((1, 2, 3), keepdim=True)
        vmax = v.amax((1, 2, 3), keepdim=True)
        lo = torch.where(own, vmin, lo)
        hi = torch.where(own, vmax, hi)
    out = ((v - lo) / (hi - lo).clamp_min(1e-6)).clamp_(0, 1)
    return torch.where(invert > 0, 1 - out, out)


ToUnit = module_form(to_unit, "ToUnit", inputs=("raw", "params"))
