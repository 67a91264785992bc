"""A plain PyTorch baseline for the time-to-accuracy table: a torchvision ImageFolder (or, for a
CIFAR archive in the python-pickle layout, the pickles read into arrays as torchvision's CIFAR
datasets do) + DataLoader (per-image crop/flip/normalise in worker processes) + the same CIFAR
ResNet-18 fastvis has, SGD with Nesterov momentum, learning rate decayed linearly with elapsed
time, trained until the budget (minus the measured evaluation time) is spent (or for ``--epochs``,
the rate then decayed with the steps), then evaluated on
the test split, or on the held-out part of the training split fastvis's ``--holdout`` takes.

Usage: fastvis-bench baseline --data ../shared/data/cifar10-jpeg.tar.xz --budget 10m
       fastvis-bench baseline --data ../shared/data/cifar-100-python-train.tar.gz --holdout 5000
"""
from __future__ import annotations

import argparse
import json
import os
import tarfile
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fastvis.models import create_model
from fastvis.train.budget import parse_duration


def main(argv: list[str] | None = None, prog: str | None = None):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="image-folder tree with train/ and test/, or a tar of one")
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--epochs", type=float, help="train this many epochs instead of until the budget (the learning "
                    "rate then decays with the steps)")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=os.cpu_count(),
                    help="DataLoader worker processes (0: load in the training process)")
    ap.add_argument("--holdout", type=float, default=0.0,
                    help="evaluate on this held-out part of the training split (fastvis's --holdout split)")
    ap.add_argument("--json", default=os.path.join("bench", "out", "train_baseline.json"))
    args = ap.parse_args(argv)
    start = time.perf_counter()
    budget = parse_duration(args.budget)
    from torchvision import datasets, transforms

    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), transforms.Normalize(mean, std)])
    test_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    tmp = None
    root = Path(args.data)
    arrays = _cifar_pickles(root) if root.is_file() else None
    if arrays is not None:  # read as torchvision's CIFAR datasets read their pickles
        train_set = ArrayDataset(*arrays["train"], train_tf)
        test_set = ArrayDataset(*arrays["test"], test_tf) if "test" in arrays else None
    else:
        if root.is_file():  # the extraction counts against the budget, as it would for a user
            tmp = tempfile.TemporaryDirectory()
            with tarfile.open(root) as tar:
                tar.extractall(tmp.name, filter="data")
            root = Path(tmp.name)
        train_set = datasets.ImageFolder(root / "train", train_tf)
        test_set = datasets.ImageFolder(root / "test", test_tf) if (root / "test").is_dir() else None
    num_classes = len(train_set.classes)
    split = "test"
    if args.holdout:  # the same held-out samples as fastvis-train --holdout
        from fastvis.loader.order import holdout_split

        labels = [y for _, y in train_set.samples] if hasattr(train_set, "samples") else train_set.labels
        keep, held = holdout_split(labels, args.holdout)
        test_set = _subset(train_set, held, test_tf)
        train_set = torch.utils.data.Subset(train_set, keep.tolist())
        split = "holdout"
    if test_set is None:
        ap.error(f"{args.data}: no test split; give --holdout")
    train_loader = torch.utils.data.DataLoader(train_set, args.batch_size, shuffle=True, num_workers=args.workers,
                                               drop_last=True, persistent_workers=args.workers > 0)
    test_loader = torch.utils.data.DataLoader(test_set, 512, num_workers=args.workers)
    model = create_model(args.model, num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def evaluate(limit=None):
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for k, (x, y) in enumerate(test_loader):
                if limit is not None and k >= limit:
                    break
                correct += int((model(x).argmax(1) == y).sum())
                total += len(y)
        return correct / total

    t = time.perf_counter()
    evaluate(limit=2)
    eval_time = (time.perf_counter() - t) * len(test_loader) / 2
    train_end = budget * 0.97 - eval_time
    t0 = time.perf_counter()
    begin = t0 - start
    total = max(1, round(args.epochs * len(train_loader))) if args.epochs else None
    seen = epochs = step = 0
    done = False
    while not done:
        model.train()
        for x, y in train_loader:
            elapsed = time.perf_counter() - start
            done = elapsed >= train_end if total is None else step >= total
            if done:
                break
            progress = (elapsed - begin) / (train_end - begin) if total is None else step / total
            for g in opt.param_groups:
                g["lr"] = args.lr * max(0.0, 1 - progress)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
            step += 1
        epochs += 1
    train_seconds = time.perf_counter() - t0
    top1 = evaluate()
    result = {"model": args.model, "top1": top1, "split": split, "epochs": seen / len(train_set),
              "train_seconds": train_seconds,
              "total_seconds": time.perf_counter() - start, "images_per_second": seen / train_seconds,
              "budget_seconds": budget}
    print(json.dumps(result))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))


class ArrayDataset(torch.utils.data.Dataset):
    """(N, H, W, 3) uint8 images and labels, each image a PIL image for the transforms."""

    def __init__(self, images, labels, transform, classes=None):
        self.images, self.labels, self.transform = images, [int(y) for y in labels], transform
        self.classes = classes if classes is not None else sorted(set(self.labels))

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def _subset(dataset, ids, transform):
    """The samples ``ids`` with the evaluation transform."""
    if isinstance(dataset, ArrayDataset):
        return ArrayDataset(dataset.images[ids], [dataset.labels[i] for i in ids], transform, dataset.classes)
    from torchvision import datasets

    view = datasets.ImageFolder.__new__(datasets.ImageFolder)
    view.__dict__.update(dataset.__dict__)
    view.samples = [dataset.samples[i] for i in ids]
    view.transform = transform
    return view


def _cifar_pickles(path: Path):
    """``{split: (images, labels)}`` of a CIFAR-10/100 python archive (None for anything else)."""
    import pickle

    import numpy as np

    try:
        tar = tarfile.open(path)
    except tarfile.TarError:
        return None
    parts: dict[str, dict] = {"train": {}, "test": {}}
    with tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            split = "train" if name == "train" or name.startswith("data_batch") else \
                "test" if name in ("test", "test_batch") else None
            if split is None or not member.isfile():
                continue
            d = pickle.load(tar.extractfile(member), encoding="latin1")
            images = np.asarray(d["data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            parts[split][name] = (images, list(d.get("fine_labels", d.get("labels"))))
    out = {}
    for split, files in parts.items():  # batches in name order, as the converter writes them
        if files:
            out[split] = (np.concatenate([files[k][0] for k in sorted(files)]),
                          [y for k in sorted(files) for y in files[k][1]])
    return out if "train" in out else None


if __name__ == "__main__":
    main()
