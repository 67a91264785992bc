"""Source -> ``.beton``: the conversion loop behind ``fastvis-convert``."""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .beton import BetonWriter, sidecar_path
from .beton.format import DEFAULT_PAGE_SIZE
from .sources import Source


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


def convert(source: Source, out: str | os.PathLike, page_size: int = DEFAULT_PAGE_SIZE,
            progress: bool = True) -> ConvertSummary:
    """Write every sample of ``source`` into ``out`` and the source's ``info`` into ``out.json``.

    Atomic: ``out`` appears only when the whole conversion succeeded; on any error (or a kill)
    an existing ``out`` is left untouched and no partial file is left under that name.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    start = time.perf_counter()
    label_pos = list(source.fields).index(source.label_field) if source.label_field else None
    labels: list[int] = []
    side_tmp: Path | None = None
    try:
        with BetonWriter(out, source.fields, capacity=len(source), page_size=page_size) as writer:
            bar = tqdm(total=len(source), unit="img", desc=f"convert {out.name}", disable=not progress, leave=False)
            with bar:
                for sample in source:
                    writer.write(sample)
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
            side_tmp = _write_temp_json(sidecar_path(out), info)
        # the .beton is in place (renamed when the writer closed); now its sidecar
        os.replace(side_tmp, sidecar_path(out))
    except BaseException:
        if side_tmp is not None:
            side_tmp.unlink(missing_ok=True)
        raise
    return ConvertSummary(
        path=out,
        samples=samples,
        classes=num_classes,
        bytes=out.stat().st_size,
        seconds=time.perf_counter() - start,
        class_counts=counts,
        skipped=list(source.skipped),
    )


def _write_temp_json(dest: Path, obj: dict) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    with os.fdopen(fd, "w") as fp:
        json.dump(obj, fp, indent=1)
        fp.flush()
        os.fsync(fp.fileno())
    os.chmod(tmp, 0o644)
    return Path(tmp)
