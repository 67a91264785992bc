"""``fastvis-convert SOURCE OUT.beton``: write a dataset into a .beton file."""
from __future__ import annotations

import argparse
import sys

from . import run

#: the largest --size and --max-side: an 8192 x 8192 RGB image is 200 MB in memory while it is resized
MAX_SIDE = 8192


def _int_in(lo: int, hi: int, power_of_two: bool = False):
    """An argparse type: an integer in [lo, hi] (a power of two if asked), else one usage line."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi or (power_of_two and value & (value - 1)):
            raise argparse.ArgumentTypeError(f"{value}: must be {'a power of two' if power_of_two else 'a number'} "
                                             f"from {lo:,} to {hi:,}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    from ..beton.format import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MIN_PAGE_SIZE
    from ..sources import KINDS

    p = argparse.ArgumentParser(
        prog="fastvis-convert",
        description="Write a dataset into a .beton file (FFCV's layout). SOURCE is a dataset name "
        "(cifar100, cifar10: downloaded and md5-checked on first use), a folder or an archive.",
    )
    p.add_argument("source", help="cifar100 | cifar10 | a folder | an archive (.tar, .tar.gz, .tar.xz, .zip)")
    p.add_argument("out", help="the .beton file to write (written atomically)")
    p.add_argument("--kind", choices=KINDS, help="kind of SOURCE (default: detected)")
    p.add_argument("--split", help="train or test (CIFAR; image folders with a <split>/ folder). Default: train")
    p.add_argument("--no-verify", action="store_true", help="skip md5 checks (archives built elsewhere)")
    p.add_argument("--cache-dir",
                   help="where dataset names are downloaded (default: $FASTVIS_CACHE or ~/.cache/fastvis)")
    p.add_argument("--size", type=_int_in(1, MAX_SIDE),
                   help="image folders: resize the shorter side to N and centre-crop N x N; DICOM: area-resize the "
                   f"whole image to N x N (source dtype kept); at most {MAX_SIDE}")
    p.add_argument("--max-side", type=_int_in(1, MAX_SIDE),
                   help="image folders: shrink so that the longer side is at most N")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--jpeg", type=_int_in(1, 100), metavar="QUALITY",
                   help="store images as JPEG of this quality (1-100)")
    g.add_argument("--raw", action="store_true", help="store images raw (default for images up to 64 px)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out unreadable inputs (listed) and succeed; without it image folders stop at the "
                   "first bad image and DICOM folders are written without the bad files but exit with status 1")
    p.add_argument("--labels", metavar="CSV", help="DICOM: labels from a CSV of path,label[,mask] (mask: an image or "
                   ".npy file, or a box 'y0 x0 y1 x1'); default: the first-level subfolder")
    p.add_argument("--keep-tags", metavar="KEYWORDS", help="DICOM: comma-separated tags to keep in meta "
                   "(e.g. BodyPartExamined,ViewPosition); no other header data is stored")
    p.add_argument("--shuffle", type=_int_in(0, 2**63 - 1), nargs="?", const=0, metavar="SEED",
                   help="image and DICOM folders: write the samples in a random order (seed 0, or SEED) instead of "
                   "class by class, so that streamed training can read page by page (quasi-random order) and still "
                   "mix classes; a tar archive is read into memory for it")
    p.add_argument("--page-size", type=_int_in(MIN_PAGE_SIZE, MAX_PAGE_SIZE, power_of_two=True), default=None,
                   help=f"data page size in bytes, a power of two (default: {DEFAULT_PAGE_SIZE >> 20} MiB as FFCV, "
                   "less for a small dataset)")
    p.add_argument("--workers", type=_int_in(1, 256), help="decoding threads (default: cores, at most 8)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from ..convert import convert
        from ..sources import open_source

        jpeg = 0 if args.raw else args.jpeg
        source = open_source(
            args.source, kind=args.kind, split=args.split, verify=not args.no_verify, cache=args.cache_dir,
            size=args.size, max_side=args.max_side, jpeg=jpeg, skip_bad=args.skip_bad,
            progress=not args.quiet, workers=args.workers, labels=args.labels,
            keep_tags=[t.strip() for t in args.keep_tags.split(",") if t.strip()] if args.keep_tags else (),
            shuffle=args.shuffle,
        )
        try:
            summary = convert(source, args.out, page_size=args.page_size, progress=not args.quiet)
        finally:  # every bad input is listed, whether the conversion then stops or writes the rest
            for name, problem in source.skipped:
                print(f"skipped {name}: {problem}", file=sys.stderr)
        for note in source.info.get("notes", []):
            print(f"note: {note}", file=sys.stderr)
        print(summary.line())
        return 0

    return run("fastvis-convert", body)


if __name__ == "__main__":
    sys.exit(main())
