"""A small learnable dataset of 8 classes (colour x stripe position) for class-incremental tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fastvis.beton import BetonWriter, IntField, RGBImageField

COLOURS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]], np.int16)


def write_classes(path: Path, per_class: int, seed: int, classes: int = 8) -> Path:
    rng = np.random.default_rng(seed)
    labels = np.arange(per_class * classes) % classes
    rng.shuffle(labels)
    coarse = labels // 2
    fields = {"image": RGBImageField(), "label": IntField(), "coarse_label": IntField()}
    with BetonWriter(path, fields, capacity=len(labels)) as w:
        for y, c in zip(labels, coarse):
            img = COLOURS[y % 4] + rng.integers(-50, 50, (16, 16, 3))
            row = 2 + 3 * (y // 4) * 2
            img[row:row + 3] = 255 - img[row:row + 3]
            w.write((np.clip(img, 0, 255).astype(np.uint8), int(y), int(c)))
    path.with_name(path.name + ".json").write_text(json.dumps({"classes": [f"c{k}" for k in range(classes)],
                                                                 "num_classes": classes}))
    return path
