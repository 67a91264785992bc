"""Loader throughput: images/s delivered to the consumer as normalised float batches, with the
same augmentation (random crop with 4-pixel padding, horizontal flip, normalise), side by side:

- fastvis resident: the whole uint8 dataset in memory, batches gathered and augmented whole;
- fastvis streaming: ``StreamingLoader`` (memory map, background threads) + the same batch ops;
- torch DataLoader + torchvision v2 per image (num_workers = cores);
- ffcv Loader (its own decoder and per-image numba transforms), when ffcv is installed.

One warm-up epoch each, then the median of ``--repeats`` epochs. Data: a CIFAR-sized .beton
(``--beton``), or 50,000 random 32x32 images written for the run.

Usage: fastvis-bench loader [--beton c10.beton] [--repeats 3] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch


import fastvis.augment as A
from fastvis.beton import BetonReader, BetonWriter, IntField, RGBImageField
from fastvis.loader import ResidentDataset, StreamingLoader, epoch_order

MEAN, STD = A.CIFAR10_MEAN, A.CIFAR10_STD


def fastvis_resident(path, batch):
    ds = ResidentDataset.load(path)
    state = {"epoch": 0}

    def epoch():
        order = epoch_order(len(ds), 0, state["epoch"])
        state["epoch"] += 1
        n = 0
        for k in range(len(ds) // batch):
            x, y = ds.batch(order[k * batch : (k + 1) * batch])
            x = A.normalize(A.random_crop_flip(x, padding=4, generator=k), MEAN, STD)
            n += len(x)
        return n
    return epoch


def fastvis_streaming(path, batch):
    loader = StreamingLoader(path, batch, order="random", threads=2, prefetch=4)
    state = {"epoch": 0}

    def epoch():
        loader.set_epoch(state["epoch"])
        state["epoch"] += 1
        n = 0
        for k, (x, y) in enumerate(loader):
            x = A.normalize(A.random_crop_flip(x, padding=4, generator=k), MEAN, STD)
            n += len(x)
        return n
    return epoch


class _BetonDataset(torch.utils.data.Dataset):
    def __init__(self, path, transform):
        self.path, self.transform, self.reader = str(path), transform, None

    def __len__(self):
        return len(BetonReader(self.path)) if self.reader is None else len(self.reader)

    def __getitem__(self, i):
        if self.reader is None:  # opened in each worker
            self.reader = BetonReader(self.path)
        img, label = self.reader[i][:2]
        return self.transform(torch.from_numpy(img).permute(2, 0, 1)), label


def torch_dataloader(path, batch):
    from torchvision.transforms import v2

    tf = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                     v2.Normalize(MEAN, STD)])
    loader = torch.utils.data.DataLoader(_BetonDataset(path, tf), batch, shuffle=True, drop_last=True,
                                         num_workers=os.cpu_count(), persistent_workers=True)

    def epoch():
        return sum(len(x) for x, _ in loader)
    return epoch


def ffcv_loader(path, batch):
    from ffcv.fields.decoders import IntDecoder, SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import Convert, RandomHorizontalFlip, RandomTranslate, ToTensor, ToTorchImage
    from torchvision.transforms import Normalize

    mean = [255 * m for m in MEAN]
    std = [255 * s for s in STD]
    loader = Loader(str(path), batch_size=batch, num_workers=os.cpu_count(), order=OrderOption.RANDOM,
                    drop_last=True, os_cache=True, pipelines={
                        "image": [SimpleRGBImageDecoder(), RandomHorizontalFlip(), RandomTranslate(padding=4),
                                  ToTensor(), ToTorchImage(), Convert(torch.float32), Normalize(mean, std)],
                        "label": [IntDecoder(), ToTensor()]})

    def epoch():
        return sum(len(x) for x, _ in loader)
    return epoch


def synthetic(path, n=50_000):
    rng = np.random.default_rng(0)
    with BetonWriter(path, {"image": RGBImageField(), "label": IntField()}, capacity=n) as w:
        for i in range(n):
            w.write((rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), i % 10))
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--beton", help="a .beton of 32x32 images with image and label fields")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=os.path.join("bench", "out", "loader.json"))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    tmp = tempfile.TemporaryDirectory()
    path = Path(args.beton) if args.beton else synthetic(Path(tmp.name) / "synthetic.beton")
    makers = {"fastvis resident": fastvis_resident, "fastvis streaming": fastvis_streaming,
              "torch DataLoader + torchvision v2": torch_dataloader, "ffcv Loader": ffcv_loader}
    results = {}
    for name, make in makers.items():
        try:
            epoch = make(path, args.batch)
        except ImportError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        epoch()  # warm-up: workers, compilation, page cache
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            n = epoch()
            times.append((time.perf_counter() - t) / n)
        results[name] = 1 / statistics.median(times)
    base = results.get("torch DataLoader + torchvision v2")
    print(f"# loader throughput, {path.name}, batch {args.batch}, {os.cpu_count()} cores; images/s, median of "
          f"{args.repeats} epochs")
    print(f"{'loader':36s} {'images/s':>12s} {'vs DataLoader':>14s}")
    for name, rate in results.items():
        print(f"{name:36s} {rate:12,.0f} {rate / base if base else float('nan'):13.1f}x")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
