"""A plain PyTorch baseline for the time-to-accuracy table: torchvision ImageFolder + DataLoader
(per-image crop/flip/normalise in worker processes) + the same CIFAR ResNet-18 fastvis has,
SGD with Nesterov momentum, learning rate decayed linearly with elapsed time, trained until
the budget (minus the measured evaluation time) is spent, then evaluated on the test split.

Usage: fastvis-bench baseline --data ../shared/data/cifar10-jpeg.tar.xz --budget 10m
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
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--json", default=os.path.join("bench", "out", "train_baseline.json"))
    args = ap.parse_args(argv)
    start = time.perf_counter()
    budget = parse_duration(args.budget)
    from torchvision import datasets, transforms

    tmp = None
    root = Path(args.data)
    if root.is_file():  # the extraction counts against the budget, as it would for a user
        tmp = tempfile.TemporaryDirectory()
        with tarfile.open(root) as tar:
            tar.extractall(tmp.name, filter="data")
        root = Path(tmp.name)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), transforms.Normalize(mean, std)])
    test_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    train_set = datasets.ImageFolder(root / "train", train_tf)
    test_set = datasets.ImageFolder(root / "test", test_tf)
    train_loader = torch.utils.data.DataLoader(train_set, args.batch_size, shuffle=True, num_workers=args.workers,
                                               drop_last=True, persistent_workers=True)
    test_loader = torch.utils.data.DataLoader(test_set, 512, num_workers=args.workers)
    model = create_model(args.model, len(train_set.classes))
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
    seen = epochs = 0
    done = False
    while not done:
        model.train()
        for x, y in train_loader:
            elapsed = time.perf_counter() - start
            if elapsed >= train_end:
                done = True
                break
            for g in opt.param_groups:
                g["lr"] = args.lr * max(0.0, 1 - (elapsed - begin) / (train_end - begin))
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
        epochs += 1
    train_seconds = time.perf_counter() - t0
    top1 = evaluate()
    result = {"model": args.model, "top1": top1, "epochs": seen / len(train_set), "train_seconds": train_seconds,
              "total_seconds": time.perf_counter() - start, "images_per_second": seen / train_seconds,
              "budget_seconds": budget}
    print(json.dumps(result))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
