"""Loader throughput: images/s delivered to the consumer as normalised float batches, side by
side on the same .beton with the same augmentation. Two suites:

``raw``: CIFAR-sized raw images (``--beton``, or 50,000 random 32x32 images written for the
run), random crop with 4-pixel padding, horizontal flip, normalise:

- fastvis resident: the whole uint8 dataset in memory, batches gathered and augmented whole;
- fastvis streaming: ``StreamingLoader`` (memory map, background threads) + the same batch ops;
- torch DataLoader + torchvision v2 per image (num_workers = ``--workers``);
- ffcv Loader (its own decoder and per-image numba transforms), when ffcv is installed;
- DALI pipeline (``DaliLoader``: external source from the .beton; CPU without a GPU), when installed.

``jpeg``: 256 x 256 JPEG images (``--jpeg-beton``, or ``--jpeg-n`` images written for the run:
smooth random scenes with grain, quality 90), random-resized crop to 224, flip, normalise:
fastvis ``JpegLoader`` (Pillow on threads here, nvjpeg on CUDA), torch DataLoader + torchvision
v2 (Pillow decode per image), ffcv's ``RandomResizedCropRGBImageDecoder``, DALI's
``decoders.image_random_crop``.

Every loader but fastvis streaming (two threads) gets ``--workers`` worker processes or threads
(default: every core). One warm-up epoch each, then the median of ``--repeats`` epochs. ``--plot`` draws both suites.

Usage: fastvis-bench loader [--suite raw|jpeg|both] [--beton c10.beton] [--repeats 3] [--workers N]
       [--device cpu] [--json PATH] [--plot PNG]
"""
from __future__ import annotations

import argparse
import gc
import io
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
from fastvis.loader import JpegLoader, ResidentDataset, StreamingLoader, epoch_order

MEAN, STD = A.CIFAR10_MEAN, A.CIFAR10_STD
WORKERS = os.cpu_count() or 1  # worker processes or threads each loader gets (--workers)
DEVICE = "cpu"


def fastvis_resident(path, batch):
    ds = ResidentDataset.load(path, DEVICE)
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
    loader = StreamingLoader(path, batch, order="random", threads=2, prefetch=4, device=DEVICE)
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
    def __init__(self, path, transform, jpeg=False):
        self.path, self.transform, self.reader, self.jpeg = str(path), transform, None, jpeg

    def __len__(self):
        return len(BetonReader(self.path)) if self.reader is None else len(self.reader)

    def __getitem__(self, i):
        if self.reader is None:  # opened in each worker
            self.reader = BetonReader(self.path)
        if self.jpeg:  # what a folder of JPEG files gives: Pillow decodes, torchvision transforms
            from PIL import Image

            img = Image.open(io.BytesIO(self.reader.payload(i, "image").tobytes())).convert("RGB")
            return self.transform(img), int(self.reader.get(i, "label"))
        img, label = self.reader[i][:2]
        return self.transform(torch.from_numpy(img).permute(2, 0, 1)), label


def torch_dataloader(path, batch):
    from torchvision.transforms import v2

    tf = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                     v2.Normalize(MEAN, STD)])
    return _torch_loader(_BetonDataset(path, tf), batch)


def _torch_loader(dataset, batch):
    """The DataLoader users would write: shuffled, ``--workers`` worker processes (one per core)."""
    loader = torch.utils.data.DataLoader(dataset, batch, shuffle=True, drop_last=True, num_workers=WORKERS,
                                         persistent_workers=True, pin_memory=DEVICE != "cpu")
    return _delivered(loader)


def ffcv_loader(path, batch):
    from ffcv.fields.decoders import SimpleRGBImageDecoder
    from ffcv.transforms import RandomHorizontalFlip, RandomTranslate

    return _ffcv(path, batch, [SimpleRGBImageDecoder(), RandomHorizontalFlip(), RandomTranslate(padding=4)], MEAN, STD)


def _ffcv(path, batch, decode_and_augment: list, mean, std):
    """An ffcv Loader (random order, ``--workers`` threads) whose image pipeline is ``decode_and_augment``
    then conversion to a normalised float batch."""
    from ffcv.fields.decoders import IntDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import Convert, ToTensor, ToTorchImage
    from torchvision.transforms import Normalize

    loader = Loader(str(path), batch_size=batch, num_workers=WORKERS, order=OrderOption.RANDOM, drop_last=True,
                    os_cache=True, pipelines={
                        "image": [*decode_and_augment, ToTensor(), ToTorchImage(), Convert(torch.float32),
                                  Normalize([255 * m for m in mean], [255 * s for s in std])],
                        "label": [IntDecoder(), ToTensor()]})
    return _delivered(loader)


def _delivered(loader):
    """Epochs of a CPU loader whose batches are copied to the benchmark's device."""
    def epoch():
        return sum(len(x.to(DEVICE, non_blocking=True)) for x, _ in loader)
    return epoch


def dali_loader(path, batch):
    from fastvis.loader.dali import DaliLoader

    loader = DaliLoader(path, batch, crop="pad", padding=4, mean=MEAN, std=STD, threads=WORKERS, device=DEVICE)
    return _epochs(loader)


def _epochs(loader):
    state = {"epoch": 0}

    def epoch():
        loader.set_epoch(state["epoch"])
        state["epoch"] += 1
        n = 0
        for x, _ in loader:
            n += len(x)
        return n
    return epoch


# -- the JPEG suite ---------------------------------------------------------------------------------
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CROP = 224


def jpeg_fastvis(path, batch):
    return _epochs(JpegLoader(path, batch, CROP, threads=WORKERS, prefetch=2 * WORKERS, device=DEVICE,
                              mean=IMAGENET_MEAN, std=IMAGENET_STD))


def jpeg_torch(path, batch):
    from torchvision.transforms import v2

    tf = v2.Compose([v2.PILToTensor(), v2.RandomResizedCrop(CROP, antialias=True), v2.RandomHorizontalFlip(),
                     v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return _torch_loader(_BetonDataset(path, tf, jpeg=True), batch)


def jpeg_ffcv(path, batch):
    from ffcv.fields.decoders import RandomResizedCropRGBImageDecoder
    from ffcv.transforms import RandomHorizontalFlip

    return _ffcv(path, batch, [RandomResizedCropRGBImageDecoder((CROP, CROP)), RandomHorizontalFlip()], IMAGENET_MEAN,
                 IMAGENET_STD)


def jpeg_dali(path, batch):
    from fastvis.loader.dali import DaliLoader

    return _epochs(DaliLoader(path, batch, CROP, crop="rrc", mean=IMAGENET_MEAN, std=IMAGENET_STD, threads=WORKERS,
                              device=DEVICE))


def synthetic(path, n=50_000):
    rng = np.random.default_rng(0)
    with BetonWriter(path, {"image": RGBImageField(), "label": IntField()}, capacity=n) as w:
        for i in range(n):
            w.write((rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), i % 10))
    return path


def synthetic_jpeg(path, n=2048, side=256):
    """Smooth random scenes (bicubic-upsampled 6x6 colour fields) with grain, JPEG quality 90."""
    from PIL import Image

    rng = np.random.default_rng(0)
    with BetonWriter(path, {"image": RGBImageField("jpeg", 90), "label": IntField()}, capacity=n) as w:
        for i in range(n):
            small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
            img = np.asarray(small.resize((side, side), Image.BICUBIC), np.int16)
            img = img + rng.normal(0, 6, img.shape).astype(np.int16)
            w.write((np.clip(img, 0, 255).astype(np.uint8), i % 10))
    return path


SUITES = {
    "raw": {"fastvis resident": fastvis_resident, "fastvis streaming": fastvis_streaming,
            "torch DataLoader + torchvision v2": torch_dataloader, "ffcv Loader": ffcv_loader,
            "DALI pipeline": dali_loader},
    "jpeg": {"fastvis JpegLoader": jpeg_fastvis, "torch DataLoader + torchvision v2": jpeg_torch,
             "ffcv Loader": jpeg_ffcv, "DALI pipeline": jpeg_dali},
}


def run_suite(makers: dict, path: Path, batch: int, repeats: int) -> dict:
    results = {}
    for name, make in makers.items():
        try:
            epoch = make(path, batch)
        except ImportError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        epoch()  # warm-up: workers, compilation, page cache
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            n = epoch()
            if DEVICE != "cpu":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t) / n)
        results[name] = 1 / statistics.median(times)
        # free this row's loader (its threads, worker processes, a DALI pipeline) before the next row
        # starts: DataLoader workers are forked, and a forked copy of a live DALI pipeline aborts
        # when the child collects it
        del epoch
        gc.collect()
    return results


def print_table(title: str, results: dict) -> None:
    base = results.get("torch DataLoader + torchvision v2")
    print(title)
    print(f"{'loader':36s} {'images/s':>12s} {'vs DataLoader':>14s}")
    for name, rate in results.items():
        print(f"{name:36s} {rate:12,.0f} {rate / base if base else float('nan'):13.1f}x")


def plot(suites: dict, titles: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(suites), 1, figsize=(7, 1.2 + 1.1 * sum(len(r) for r in suites.values()) / 2),
                             squeeze=False)
    for ax, (suite, results) in zip(axes[:, 0], suites.items()):
        names = list(results)[::-1]
        rates = [results[n] for n in names]
        colours = ["#1f77b4" if n.startswith("fastvis") else "#999999" for n in names]
        ax.barh(names, rates, color=colours)
        for y, r in enumerate(rates):
            ax.text(r, y, f" {r:,.0f}", va="center", fontsize=8)
        ax.set_xlim(0, max(rates) * 1.25)
        ax.set_title(titles[suite], fontsize=9)
        ax.set_xlabel("images/s delivered (normalised float batches)", fontsize=8)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None, prog: str | None = None):
    global DEVICE, WORKERS
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--suite", choices=["raw", "jpeg", "both"], default="both")
    ap.add_argument("--beton", help="raw suite: a .beton of 32x32 images with image and label fields")
    ap.add_argument("--jpeg-beton", help="jpeg suite: a .beton of JPEG images with image and label fields")
    ap.add_argument("--jpeg-n", type=int, default=2048, help="jpeg suite: images written for the run")
    ap.add_argument("--batch", type=int, default=512, help="raw suite batch")
    ap.add_argument("--jpeg-batch", type=int, default=256, help="jpeg suite batch")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=WORKERS,
                    help="worker processes or threads each loader gets (default: every core, %(default)s here)")
    ap.add_argument("--device", default="cpu", help="where fastvis and DALI deliver batches: cpu | cuda")
    ap.add_argument("--json", default=os.path.join("bench", "out", "loader.json"))
    ap.add_argument("--plot", help="write a bar chart of the results to this PNG")
    args = ap.parse_args(argv)
    DEVICE = args.device
    if args.workers < 1:
        ap.error(f"--workers must be at least 1 (got {args.workers})")
    WORKERS = args.workers
    warnings.simplefilter("ignore")
    tmp = tempfile.TemporaryDirectory()
    out, titles = {}, {}
    if args.suite in ("raw", "both"):
        path = Path(args.beton) if args.beton else synthetic(Path(tmp.name) / "synthetic.beton")
        out["raw"] = run_suite(SUITES["raw"], path, args.batch, args.repeats)
        titles["raw"] = f"{path.name}: 32x32 raw, pad-crop + flip + normalise, batch {args.batch}"
        print_table(f"# loader throughput, {titles['raw']}, {WORKERS} workers, {DEVICE}; images/s, median of "
                    f"{args.repeats} epochs", out["raw"])
    if args.suite in ("jpeg", "both"):
        path = Path(args.jpeg_beton) if args.jpeg_beton else synthetic_jpeg(Path(tmp.name) / "jpeg.beton", args.jpeg_n)
        r = BetonReader(path)
        size = np.mean([len(r.payload(i, "image")) for i in range(len(r))])
        out["jpeg"] = run_suite(SUITES["jpeg"], path, args.jpeg_batch, args.repeats)
        titles["jpeg"] = f"{path.name}: JPEG, random-resized crop {CROP} + flip + normalise, batch {args.jpeg_batch}"
        print_table(f"# loader throughput, {titles['jpeg']} (mean {size / 1024:.1f} KiB an image), {WORKERS} workers, "
                    f"{DEVICE}; images/s, median of {args.repeats} epochs", out["jpeg"])
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    if args.plot:
        plot(out, titles, Path(args.plot))


if __name__ == "__main__":
    main()
