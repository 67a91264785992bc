"""A small DICOM folder built from real CR radiographs (pydicom-data): crops of RG1/RG3, half of
them with a synthetic defect (a dark elongated void with soft edges) and its mask."""
from __future__ import annotations

from pathlib import Path

from fastvis.bench.radiographs import write_xray_folder


def build_xray_folder(root: Path, n: int = 24, tile: int = 96, seed: int = 0, **options) -> tuple[Path, Path]:
    """``n`` crops, half of them defects (``root/normal``, ``root/defect``) and a labels CSV with
    the defect masks (PNG). Returns (root, labels.csv)."""
    return write_xray_folder(root, n - n // 2, n // 2, tile=tile, seed=seed, **options)
