"""``fastvis-inspect FILE.beton``: fields, sample count and class counts of a .beton file."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .. import InputError
from . import run


def describe(path: str, label: str | None = None) -> dict:
    from ..beton import BetonReader

    reader = BetonReader(path)
    out = {
        "path": str(reader.path),
        "samples": len(reader),
        "bytes": reader.file_size,
        "page_size": reader.page_size,
        "fields": {n: f.describe() for n, f in reader.fields.items()},
    }
    for name, field in reader.fields.items():
        if out["fields"][name]["type"] == "RGBImageField" and len(reader):
            sizes = reader.image_sizes(name)
            modes = reader.metadata[f"f{reader.names.index(name)}"]["mode"]
            same = (modes == modes[0]).all()
            out["fields"][name]["mode"] = {0: "jpeg", 1: "raw"}.get(int(modes[0]), "?") if same else "mixed"
            lo, hi = sizes.min(axis=0), sizes.max(axis=0)
            size = f"{lo[1]}x{lo[0]}"
            out["fields"][name]["size"] = size if (lo == hi).all() else f"{size} .. {hi[1]}x{hi[0]}"
    label = label or ("label" if "label" in reader.fields else None)
    if label and out["fields"].get(label, {}).get("type") == "IntField" and len(reader):
        values = reader.column(label)
        classes = reader.info.get("classes")
        if values.min() < 0:
            raise InputError(f"{path}: field {label!r} has negative values; not class ids")
        counts = np.bincount(values, minlength=len(classes or ()))
        out["class_counts"] = {
            (classes[i] if classes and i < len(classes) else str(i)): int(c) for i, c in enumerate(counts)
        }
    if reader.info:
        out["info"] = {k: v for k, v in reader.info.items() if k not in ("classes", "coarse_classes", "class_counts")}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fastvis-inspect", description="Show what a .beton file holds.")
    p.add_argument("path")
    p.add_argument("--label", help="integer field to count classes of (default: label)")
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)

    def body() -> int:
        d = describe(args.path, args.label)
        if args.json:
            print(json.dumps(d, indent=1))
            return 0
        print(f"{d['path']}: {d['samples']} samples, {d['bytes'] / 1e6:.1f} MB, page size {d['page_size']}")
        for name, f in d["fields"].items():
            extra = ", ".join(f"{k}={v}" for k, v in f.items() if k != "type")
            print(f"  {name:16s} {f['type']}" + (f" ({extra})" if extra else ""))
        if "class_counts" in d:
            counts = d["class_counts"]
            print(f"  {len(counts)} classes: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
        return 0

    return run("fastvis-inspect", body)


if __name__ == "__main__":
    sys.exit(main())
