"""Build CIFAR archives laid out like the official "python version" (pickled dicts, tar.gz)."""
from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass
class CifarArchive:
    path: Path
    md5: str
    name: str
    train: dict  # images (N,32,32,3) uint8, labels, coarse (cifar100)
    test: dict
    classes: list
    coarse_classes: list | None


def _batch(images: np.ndarray, labels: dict, label_key_extra: dict | None = None) -> dict:
    n = len(images)
    d = {
        "batch_label": "training batch 1 of 1",
        "data": images.transpose(0, 3, 1, 2).reshape(n, 3072).copy(),
        "filenames": [f"img_{i:05d}.png" for i in range(n)],
    }
    d.update({k: list(map(int, v)) for k, v in labels.items()})
    return d


def _split(rng, n, num_classes, num_coarse):
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    coarse = labels % num_coarse if num_coarse else None
    return {"images": images, "labels": labels, "coarse": coarse}


def build_cifar_archive(root: Path, name: str, n_train: int, n_test: int, seed: int = 0,
                        bytes_keys: bool = False, protocol: int = 2) -> CifarArchive:
    """Write ``root/<official file name>`` with random images; returns the arrays it holds."""
    rng = np.random.default_rng(seed)
    enc = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    members: dict[str, dict] = {}
    if name == "cifar10":
        folder, fname = "cifar-10-batches-py", "cifar-10-python.tar.gz"
        classes, coarse_classes = CIFAR10_CLASSES, None
        train = _split(rng, n_train, 10, 0)
        test = _split(rng, n_test, 10, 0)
        chunks = np.array_split(np.arange(n_train), 5)
        for b, idx in enumerate(chunks, 1):
            members[f"data_batch_{b}"] = _batch(train["images"][idx], {"labels": train["labels"][idx]})
        members["test_batch"] = _batch(test["images"], {"labels": test["labels"]})
        members["batches.meta"] = {"label_names": classes, "num_cases_per_batch": 10000, "num_vis": 3072}
    else:
        folder, fname = "cifar-100-python", "cifar-100-python.tar.gz"
        classes = [f"fine_{i:02d}" for i in range(100)]
        coarse_classes = [f"coarse_{i:02d}" for i in range(20)]
        train = _split(rng, n_train, 100, 20)
        test = _split(rng, n_test, 100, 20)
        for key, s in (("train", train), ("test", test)):
            members[key] = _batch(s["images"], {"fine_labels": s["labels"], "coarse_labels": s["coarse"]})
        members["meta"] = {"fine_label_names": classes, "coarse_label_names": coarse_classes}
    path = Path(root) / fname
    with tarfile.open(path, "w:gz") as tar:
        for member, obj in members.items():
            obj = {enc(k): v for k, v in obj.items()}
            data = pickle.dumps(obj, protocol=protocol)
            info = tarfile.TarInfo(f"{folder}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    return CifarArchive(path, md5, name, train, test, classes, coarse_classes)
