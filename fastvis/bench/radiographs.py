"""DICOM folders of radiograph crops with synthetic defects, from the real CR radiographs of
pydicom-data (RG1_UNCR: 15-bit 1955x1841, RG3_UNCR), for tests and the defect benchmark.

Each crop comes from a random place in the middle of a randomly chosen radiograph (so that the
radiograph says nothing about the label); a defect crop gets a dark elongated void with soft
edges (``depth``: its darkness in standard deviations of the crop's values) and its pixel mask, or with
``boxes`` the void's bounding box, as a box label would give it.
"""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

__all__ = ["load_radiographs", "write_xray_folder"]


def load_radiographs() -> list | None:
    """[(dataset, pixels)] of RG1_UNCR and RG3_UNCR, or None without pydicom-data."""
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


def _void(rng, tile: int, img: np.ndarray, depth: float):
    yy, xx = np.mgrid[:tile, :tile]
    cy, cx = rng.uniform(0.3, 0.7, 2) * tile
    a, b = rng.uniform(0.12, 0.2) * tile, rng.uniform(0.03, 0.06) * tile
    t = rng.uniform(0, np.pi)
    u = ((xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)) / a
    v = (-(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)) / b
    r = u**2 + v**2
    dark = depth * (img.std() + 1)  # in units of the crop's own spread: as visible on a busy crop as on a flat one
    return img + dark * np.exp(-r * 2) * (r < 2), r < 1.5  # MONOCHROME1: larger is darker


def write_xray_folder(root: Path, normal: int, defect: int, tile: int = 96, depth: float = 2.0, seed: int = 0,
                      boxes: bool = False) -> tuple[Path, Path]:
    """Write ``normal`` + ``defect`` crops as DICOM files (``root/normal``, ``root/defect``,
    interleaved while both last) and ``root/labels.csv`` (path,label,mask: a PNG mask file, or
    with ``boxes`` the box ``y0 x0 y1 x1``). Returns (root, labels.csv)."""
    from PIL import Image

    sources = load_radiographs()
    if sources is None:
        raise FileNotFoundError("pydicom-data radiographs RG1_UNCR/RG3_UNCR not installed (pip install pydicom-data)")
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    labels = ["normal"] * normal + ["defect"] * defect
    order = sorted(range(len(labels)), key=lambda k: (k if k < normal else k - normal, k >= normal))
    rows = []
    for k, i in enumerate(order):
        label = labels[i]
        ds, px = sources[int(rng.integers(len(sources)))]
        h, w = px.shape
        y, x = int(rng.integers(h // 4, 3 * h // 4 - tile)), int(rng.integers(w // 4, 3 * w // 4 - tile))
        img = px[y : y + tile, x : x + tile].astype(np.float64)
        mask_spec = ""
        if label == "defect":
            img, mask = _void(rng, tile, img, depth)
            if boxes:
                ys, xs = np.nonzero(mask)
                mask_spec = f"{ys.min()} {xs.min()} {ys.max() + 1} {xs.max() + 1}"
            else:
                mask_spec = f"masks/{k:04d}.png"
                (root / "masks").mkdir(exist_ok=True)
                Image.fromarray(mask.astype(np.uint8) * 255).save(root / mask_spec)
        out = ds.copy()
        out.Rows, out.Columns = tile, tile
        out.PixelData = np.clip(img, 0, 2 ** int(ds.BitsStored) - 1).astype(np.uint16).tobytes()
        rel = f"{label}/{k:04d}.dcm"
        (root / label).mkdir(exist_ok=True)
        out.save_as(root / rel, enforce_file_format=True)
        rows.append((rel, label, mask_spec))
    path = root / "labels.csv"
    with open(path, "w", newline="") as fp:
        w = csv.writer(fp)
        w.writerow(["path", "label", "mask"])
        w.writerows(rows)
    return root, path
