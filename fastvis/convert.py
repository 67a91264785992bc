"""Source -> ``.beton``: the conversion loop behind ``fastvis-convert``."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import check_output
from .beton import BetonWriter, sidecar_path
from .beton.format import DEFAULT_PAGE_SIZE
from .sources import Source, SourceError


@dataclass
class ConvertSummary:
    path: Path
    samples: int
    classes: int
    bytes: int
    seconds: float
    class_counts: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        mb = self.bytes / 1e6
        rate = self.samples / self.seconds if self.seconds > 0 else float("inf")
        text = (
            f"wrote {self.path}: {self.samples} samples, {self.classes} classes, "
            f"{mb:.1f} MB in {self.seconds:.1f} s ({rate:,.0f} samples/s)"
        )
        if self.skipped:
            text += f"; skipped {len(self.skipped)} bad input(s)"
        return text


SMALL_PAGE = 1 << 18  # the smallest page chosen from the data (256 KiB)


class _PageTooSmall(Exception):
    pass


def page_size_for(source: Source) -> int:
    """A page size from the data: FFCV's 8 MiB, or for a small dataset the power of two that
    holds twice its estimated bytes (the first sample's times the count) and at least 64 times
    the first sample, so that a dataset of a few samples is not a file of 16 MB."""
    skipped = len(source.skipped)
    samples = iter(source)
    try:
        first = next(samples, None)
    finally:
        if hasattr(samples, "close"):
            samples.close()
        del source.skipped[skipped:]  # what the peek found is found again by the conversion
    if first is None:
        return DEFAULT_PAGE_SIZE
    size = 0
    for f, value in zip(source.fields.values(), first):
        payload, _ = f.encode(value)
        size += len(payload) if payload is not None else 0
    want = max(2 * size * max(len(source), 1), 64 * size, SMALL_PAGE)
    return min(DEFAULT_PAGE_SIZE, 1 << (int(want) - 1).bit_length())


def convert(source: Source, out: str | os.PathLike, page_size: int | None = None,
            progress: bool = True) -> ConvertSummary:
    """Write every sample of ``source`` into ``out`` and the source's ``info`` into ``out.json``.

    Atomic: ``out`` appears only when the whole conversion succeeded; on any error (or a kill)
    an existing ``out`` is left untouched and no partial file is left under that name.
    ``page_size``: default from the data (:func:`page_size_for`); should a later sample not fit
    such a page, the conversion starts again with FFCV's 8 MiB pages.
    """
    if page_size is not None:
        return _convert(source, out, page_size, progress, auto=False)
    chosen = page_size_for(source)
    skipped = list(source.skipped)  # found before the samples (listing the folder)
    try:
        return _convert(source, out, chosen, progress, auto=chosen < DEFAULT_PAGE_SIZE)
    except _PageTooSmall:
        source.skipped[:] = skipped
        return _convert(source, out, DEFAULT_PAGE_SIZE, progress, auto=False)


def _convert(source: Source, out, page_size: int, progress: bool, auto: bool) -> ConvertSummary:
    from tqdm.auto import tqdm

    out = check_output(out)
    check_output(sidecar_path(out))
    start = time.perf_counter()
    label_pos = list(source.fields).index(source.label_field) if source.label_field else None
    labels: list[int] = []
    with BetonWriter(out, source.fields, capacity=len(source), page_size=page_size) as writer:
        bar = tqdm(total=len(source), unit="img", desc=f"convert {out.name}", disable=not progress, leave=False)
        with bar:
            for sample in source:
                try:
                    writer.write(sample)
                except ValueError as exc:  # name the input the sample came from, where the source knows it
                    if auto and "more than a page" in str(exc):
                        raise _PageTooSmall from None
                    where = getattr(source, "current", None)
                    raise SourceError(f"{where}: {exc}" if where else str(exc)) from None
                if label_pos is not None:
                    labels.append(sample[label_pos])
                bar.update(1)
        samples = len(writer)
        info = dict(source.info)
        info["num_samples"] = samples
        info["fields"] = {n: f.describe() for n, f in source.fields.items()}
        num_classes = int(info.get("num_classes", 0))
        counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes).tolist() if labels else []
        if label_pos is not None:
            info["class_counts"] = counts
        if source.skipped:
            info["skipped"] = [{"file": n, "problem": p} for n, p in source.skipped]
        info["integrity"] = "crc32 in file"  # opening the file then insists on its integrity record
        # written with the file (both on disk before either is renamed); it names the file's size, so
        # that a sidecar left from an earlier file (a kill between the two renames) is recognised as such
        writer.sidecar = info
    return ConvertSummary(
        path=out,
        samples=samples,
        classes=num_classes,
        bytes=out.stat().st_size,
        seconds=time.perf_counter() - start,
        class_counts=counts,
        skipped=list(source.skipped),
    )
