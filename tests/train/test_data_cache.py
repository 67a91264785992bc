"""A folder trained on through the cache (``--data FOLDER --cache-dir C``) is converted again when
its images change: added, removed or replaced under the same name; never a stale copy."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from fastvis.beton import BetonReader
from fastvis.train.datasets import content_key, resolve


def _image(path, value: int, size: int = 16):
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def _folder(root, per_class: int):
    for split in ("train", "test"):
        for k in range(2):
            d = root / split / f"class{k}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                _image(d / f"{i}.png", 60 + 120 * k + i)
    return root


def test_images_added_or_replaced_in_a_class_folder_give_a_new_conversion(tmp_path, capsys):
    root = _folder(tmp_path / "photos", 3)
    cache = tmp_path / "cache"
    first, _, _ = resolve(str(root), cache=cache, progress=False)
    assert len(BetonReader(first)) == 6
    assert resolve(str(root), cache=cache, progress=False)[0] == first  # unchanged: the same conversion

    top = os.stat(root).st_mtime_ns
    _image(root / "train" / "class0" / "new.png", 7)  # added inside a class folder: the top folder's time stays
    assert os.stat(root).st_mtime_ns == top
    second, _, _ = resolve(str(root), cache=cache, progress=True)
    assert second != first and len(BetonReader(second)) == 7
    assert "converting it again" in capsys.readouterr().out

    path = root / "train" / "class1" / "0.png"
    stamp = os.stat(path)
    _image(path, 250, size=20)  # replaced under the same name
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # even with its old time: the size differs
    third, _, _ = resolve(str(root), cache=cache, progress=False)
    assert third not in (first, second)
    assert BetonReader(third).image_sizes().max() == 20

    (root / "train" / "class0" / "new.png").unlink()
    assert content_key(root) != content_key(root / "train")  # keyed on the path too


def test_an_archive_is_keyed_on_its_size_and_time(tmp_path):
    a = tmp_path / "a.tar"
    a.write_bytes(b"x" * 10)
    k = content_key(a)
    a.write_bytes(b"x" * 11)
    assert content_key(a) != k
