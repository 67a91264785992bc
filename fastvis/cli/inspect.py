"""``fastvis-inspect FILE.beton``: fields, sample count and class counts of a .beton file."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from . import run


def describe(path: str, label: str | None = None) -> dict:
    from ..beton import BetonReader
    from ..beton.integrity import checksum_source

    reader = BetonReader(path)
    out = {
        "path": str(reader.path),
        "samples": len(reader),
        "bytes": reader.file_size,
        "page_size": reader.page_size,
        "fields": {n: f.describe() for n, f in reader.fields.items()},
        "checksums": checksum_source(reader),  # "file", "sidecar" (older files) or None
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
        values = reader.labels(label)  # damaged ids are named here, not counted into huge arrays
        classes = reader.info.get("classes")
        counts = np.bincount(values, minlength=len(classes or ()))
        out["class_counts"] = {
            (classes[i] if classes and i < len(classes) else str(i)): int(c) for i, c in enumerate(counts)
        }
        empty = [name for name, c in out["class_counts"].items() if c == 0]
        if empty:
            out["empty_classes"] = empty  # a misspelt label in a CSV, or a class whose files were all bad
    if reader.info:
        out["info"] = {k: v for k, v in reader.info.items()
                       if k not in ("classes", "coarse_classes", "class_counts", "checksums", "integrity")}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fastvis-inspect", description="Show what a .beton file holds.")
    p.add_argument("path")
    p.add_argument("--label", help="integer field to count classes of (default: label)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--verify", action="store_true",
                   help="check every sample against the checksums recorded when the file was written")
    args = p.parse_args(argv)

    def body() -> int:
        d = describe(args.path, args.label)
        if args.verify:
            from ..beton import BetonReader

            bad = BetonReader(args.path).verify()
            d["verified"] = not bad
            if bad:
                shown = ", ".join(map(str, bad[:10])) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
                print(f"fastvis-inspect: error: {args.path}: {len(bad)} sample(s) changed since the file was "
                      f"written (checksum mismatch): {shown}", file=sys.stderr)
                return 1
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
        if d.get("empty_classes"):
            print(f"  warning: classes with no sample: {', '.join(d['empty_classes'])}")
        where = {"file": "in the file (header checked on open)", "sidecar": "in the sidecar"}
        print(f"  checksums: {where.get(d['checksums'], 'none (written by another program): damage may pass unseen')}")
        if d.get("verified"):
            print(f"  verified: all {d['samples']} samples match their checksums")
        return 0

    return run("fastvis-inspect", body)


if __name__ == "__main__":
    sys.exit(main())
