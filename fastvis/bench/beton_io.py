"""Write and read a CIFAR-100-sized .beton: fastvis against ffcv, side by side in one run.

Data: 50,000 raw 32x32 RGB images with a fine and a coarse label (the CIFAR-100 train split's
layout; pixel values are random, which does not change the cost of raw storage).

- write: fastvis ``convert`` (the code behind ``fastvis-convert``) vs ffcv ``DatasetWriter``
  (num_workers = cores).
- read: every sample once in random order, batches of 512, images and labels delivered as
  numpy arrays: fastvis ``BetonReader.read_batch`` vs ffcv ``Loader`` (RANDOM order,
  os_cache, num_workers = cores, no transforms beyond decoding). The first epoch of each is a
  warm-up (ffcv and numba compile); the table gives the median of the following epochs.

Usage: fastvis-bench beton [--n 50000] [--repeats 3] [--json bench/out/beton_io.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from fastvis.beton import BetonReader, IntField, RGBImageField
from fastvis.convert import convert
from fastvis.sources.base import Source


class ArraySource(Source):
    kind = "arrays"

    def __init__(self, images, fine, coarse):
        super().__init__()
        self.images, self.fine, self.coarse = images, fine, coarse
        self.fields = {"image": RGBImageField(), "label": IntField(), "coarse_label": IntField()}
        self.info = {"dataset": "synthetic-cifar100", "num_classes": 100}

    def __len__(self):
        return len(self.images)

    def __iter__(self):
        for img, y, c in zip(self.images, self.fine, self.coarse):
            yield img, int(y), int(c)


class ArrayDataset:
    def __init__(self, images, fine, coarse):
        self.images, self.fine, self.coarse = images, fine, coarse

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.fine[i]), int(self.coarse[i])


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def fastvis_write(src, path):
    convert(src, path, progress=False)


def ffcv_write(ds, path):
    from ffcv.fields import IntField as FI
    from ffcv.fields import RGBImageField as FR
    from ffcv.writer import DatasetWriter

    w = DatasetWriter(str(path), {"image": FR(write_mode="raw"), "label": FI(), "coarse_label": FI()},
                      num_workers=os.cpu_count())
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
        w.from_indexed_dataset(ds, chunksize=1000)


def fastvis_epoch(r, batch, seed):
    order = np.random.default_rng(seed).permutation(len(r))
    labels = r.column("label")
    out = np.empty((batch, 32, 32, 3), np.uint8)
    seen = 0
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        imgs = r.read_batch("image", idx, out=out[: len(idx)])
        ys = labels[idx]
        seen += len(imgs) + len(ys) - len(idx)
    return seen


def ffcv_loader(path, batch):
    from ffcv.fields.decoders import IntDecoder, SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption

    return Loader(str(path), batch_size=batch, num_workers=os.cpu_count(), order=OrderOption.RANDOM,
                  os_cache=True, drop_last=False,
                  pipelines={"image": [SimpleRGBImageDecoder()], "label": [IntDecoder()], "coarse_label": None})


def ffcv_epoch(loader):
    seen = 0
    for imgs, ys in loader:
        seen += len(imgs)
    return seen


def main(argv: list[str] | None = None, prog: str | None = None):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=os.path.join("bench", "out", "beton_io.json"))
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.n, 32, 32, 3), dtype=np.uint8)
    fine = rng.integers(0, 100, args.n)
    coarse = fine // 5
    src = ArraySource(images, fine, coarse)
    ds = ArrayDataset(images, fine, coarse)
    try:
        import ffcv  # noqa: F401
        have_ffcv = True
    except Exception:
        have_ffcv = False

    results = {"write": {}, "read": {}}
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp) / "ours.beton", Path(tmp) / "theirs.beton"
        w_ours, w_theirs = [], []
        for _ in range(args.repeats):  # interleaved, so that drift hits both alike
            w_ours.append(timed(lambda: fastvis_write(src, ours)))
            if have_ffcv:
                w_theirs.append(timed(lambda: ffcv_write(ds, theirs)))
        results["write"]["fastvis"] = w_ours
        if have_ffcv:
            results["write"]["ffcv"] = w_theirs

        # check both files hold the same samples before timing reads
        r = BetonReader(ours)
        assert np.array_equal(r.read_batch("image", range(100)), images[:100])
        if have_ffcv:
            r2 = BetonReader(theirs)
            assert np.array_equal(r2.read_batch("image", range(100)), images[:100])

        reader = BetonReader(ours)
        fastvis_epoch(reader, args.batch, 0)  # warm-up (numba compile, page cache)
        loader = ffcv_loader(ours, args.batch) if have_ffcv else None
        if loader is not None:
            ffcv_epoch(loader)  # warm-up (ffcv compiles its pipeline)
        r_ours, r_theirs = [], []
        for k in range(args.repeats):
            r_ours.append(timed(lambda: fastvis_epoch(reader, args.batch, k + 1)))
            if loader is not None:
                r_theirs.append(timed(lambda: ffcv_epoch(loader)))
        results["read"]["fastvis"] = r_ours
        if loader is not None:
            results["read"]["ffcv"] = r_theirs

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(f"# .beton write/read, {args.n} x 32x32x3 raw + 2 labels, batch {args.batch}; {machine}")
    print(f"# median of {args.repeats} runs (seconds, and samples/s)")
    print(f"{'task':8s} {'library':8s} {'median s':>9s} {'samples/s':>11s} {'vs ffcv':>8s}")
    for task in ("write", "read"):
        base = statistics.median(results[task]["ffcv"]) if "ffcv" in results[task] else None
        for lib, times in results[task].items():
            med = statistics.median(times)
            ratio = f"{base / med:7.2f}x" if base else "      -"
            print(f"{task:8s} {lib:8s} {med:9.3f} {args.n / med:11,.0f} {ratio:>8s}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"n": args.n, "batch": args.batch, "machine": machine, **results}, indent=1))


if __name__ == "__main__":
    main()
