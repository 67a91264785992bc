"""Pack a CIFAR training archive into a .beton small enough to carry to a GPU machine (64 MiB):
the images stored as JPEG of the given quality instead of raw pixels, every sample kept. A lossy
copy: say so when quoting numbers measured on it.

Usage: python bench/pack_cifar100.py ../shared/data/cifar-100-python-train.tar.gz bench/data/c100-q85.beton \
           --quality 85 --no-verify
"""
from __future__ import annotations

import argparse
import json

from fastvis.beton import BetonWriter, IntField, RGBImageField
from fastvis.sources import open_source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("archive")
    ap.add_argument("out")
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()
    src = open_source(args.archive, split="train", verify=not args.no_verify, progress=False)
    # pages of 1 MiB rather than the default 8 MiB: the file ends within a page of its data
    with BetonWriter(args.out, {"image": RGBImageField("jpeg", args.quality), "label": IntField()},
                     capacity=len(src), page_size=1 << 20) as w:
        for image, label, *_ in src:
            w.write((image, int(label)))
    info = {k: v for k, v in src.info.items() if k in ("classes", "num_classes", "shuffled")}
    info["source"] = f"{args.archive} (JPEG quality {args.quality})"
    with open(args.out + ".json", "w") as fp:
        json.dump(info, fp)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
