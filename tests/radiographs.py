"""A small DICOM folder built from real CR radiographs (pydicom-data): tiles of RG1/RG3, half of
them with a synthetic defect (a dark elongated void with soft edges) and its mask."""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np


def _radiographs():
    import pydicom
    from pydicom.data import get_testdata_file

    out = []
    for name in ("RG1_UNCR.dcm", "RG3_UNCR.dcm"):
        path = get_testdata_file(name, download=False)
        if path is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
        out.append((ds, ds.pixel_array))
    return out


def build_xray_folder(root: Path, n: int = 24, tile: int = 96, seed: int = 0) -> tuple[Path, Path]:
    """Write ``n`` tiles as DICOM files (``root/normal``, ``root/defect``) and a labels CSV with
    the defect masks (PNG). Returns (root, labels.csv)."""
    from PIL import Image

    sources = _radiographs()
    if sources is None:
        raise FileNotFoundError("pydicom-data radiographs RG1_UNCR/RG3_UNCR not installed")
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n):
        ds, px = sources[k % 2]
        h, w = px.shape
        y, x = int(rng.integers(h // 4, 3 * h // 4 - tile)), int(rng.integers(w // 4, 3 * w // 4 - tile))
        img = px[y : y + tile, x : x + tile].astype(np.float64)
        label = "defect" if k % 2 else "normal"
        mask_rel = ""
        if label == "defect":
            yy, xx = np.mgrid[:tile, :tile]
            cy, cx = rng.uniform(0.3, 0.7, 2) * tile
            a, b = rng.uniform(0.12, 0.2) * tile, rng.uniform(0.03, 0.06) * tile
            t = rng.uniform(0, np.pi)
            u = ((xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)) / a
            v = (-(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)) / b
            r = u**2 + v**2
            depth = 0.25 * (img.max() - img.min() + 1)
            img = img + depth * np.exp(-r * 2) * (r < 2)  # MONOCHROME1: larger is darker
            mask = (r < 1.5).astype(np.uint8) * 255
            mask_rel = f"masks/{k:03d}.png"
            (root / "masks").mkdir(exist_ok=True)
            Image.fromarray(mask).save(root / mask_rel)
        tile_px = np.clip(img, 0, 2 ** int(ds.BitsStored) - 1).astype(np.uint16)
        out = ds.copy()
        out.Rows, out.Columns = tile, tile
        out.PixelData = tile_px.tobytes()
        rel = f"{label}/{k:03d}.dcm"
        (root / label).mkdir(exist_ok=True)
        out.save_as(root / rel, enforce_file_format=True)
        rows.append((rel, label, mask_rel))
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as fp:
        w = csv.writer(fp)
        w.writerow(["path", "label", "mask"])
        w.writerows(rows)
    return root, labels
