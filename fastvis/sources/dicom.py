"""DICOM folders: grayscale radiographs (8 to 16 bits), kept losslessly.

Files are found by the ``DICM`` marker at byte 128, whatever their name. Labels come from the
first-level subfolder (``DIR/normal/...``, ``DIR/defect/...``) or from a CSV file with rows
``path,label[,mask]`` (paths relative to ``DIR``; an optional header row naming ``path``).
``mask`` is an image or ``.npy`` file of the radiograph's size (nonzero: defect) or a box
written as four integers ``y0 x0 y1 x1`` (half-open, in pixels of the radiograph).

Fields, in order: ``image``, ``label``, ``meta`` (JSON) and, when masks are given, ``mask``.

- Without ``size``: ``image`` is a bytes field holding ``pixel_array``'s buffer (C order,
  little-endian, the source dtype), ``mask`` a bytes field of ``rows x columns`` uint8 (empty
  for samples without a mask). :func:`decode_image` turns a sample back into an array.
- With ``size=N``: ``image`` is an ``N x N`` array field of the source dtype, resized with area
  interpolation (the whole image, aspect not kept), ``mask`` an ``N x N`` uint8 field.

``meta`` holds rows, columns, dtype, bits stored, photometric interpretation, rescale
slope/intercept, window center/width, modality and the path relative to ``DIR``, and nothing
about the patient: other tags go in (under ``tags``) only when ``keep_tags`` names them.

Files that are not DICOM (named like DICOM: ``.dcm``, ``.dicom``, ``.dic`` or no extension),
have no pixel data, are truncated, colour, multi-frame or undecodable are skipped and listed
in ``skipped`` (``fastvis-convert`` then exits non-zero after writing the rest, unless ``--skip-bad``).
A compressed transfer syntax without an installed decoder stops the conversion with the extra
to install.
"""
from __future__ import annotations

import csv
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..beton import BytesField, IntField, JSONField, NDArrayField
from .base import Source, SourceError
from .decoding import ordered_map
from .resize import area_resize

__all__ = ["BadFile", "DicomSource", "area_resize", "decode_image", "is_dicom"]

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ""}
GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")


class BadFile(Exception):
    """One input that cannot be converted (the conversion goes on without it)."""


def is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fp:
            fp.seek(128)
            return fp.read(4) == b"DICM"
    except OSError:
        return False


def decode_image(payload: np.ndarray, meta: dict) -> np.ndarray:
    """A stored bytes ``image`` (and its ``meta``) back to the ``rows x columns`` array."""
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    return np.frombuffer(payload.tobytes(), dtype).reshape(meta["rows"], meta["columns"])


def _number(value, first: bool = True):
    if value is None or value == "":
        return None
    try:
        if first and not isinstance(value, (int, float, str)):
            value = list(value)[0]  # multi-valued (e.g. several windows): the first
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


class DicomSource(Source):
    kind = "dicom"

    def __init__(
        self,
        root: str | Path,
        labels: str | Path | None = None,
        size: int | None = None,
        keep_tags: list[str] | tuple[str, ...] = (),
        workers: int | None = None,
        shuffle: int | None = None,
        skip_bad: bool = False,
    ):
        super().__init__()
        self.skip_bad = skip_bad
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: not a folder (DICOM sources are folders of files)")
        if size is not None and size <= 0:
            raise SourceError("--size must be positive")
        self.size = size
        self.keep_tags = list(keep_tags)
        for tag in self.keep_tags:
            from pydicom.datadict import tag_for_keyword

            if tag_for_keyword(tag) is None:
                raise SourceError(f"--keep-tags: {tag!r} is not a DICOM keyword (e.g. BodyPartExamined)")
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.ignored = 0
        self._bad_labels: set[str] = set()  # the classes of files left out while listing
        entries = self._from_csv(Path(labels)) if labels else self._from_folders()
        if not entries and labels and self.skipped:
            raise SourceError(f"{labels}: none of its {len(self.skipped)} paths is a DICOM file under {self.root} "
                              f"(paths are relative to DIR, the folder given; first: {self.skipped[0][0]}: "
                              f"{self.skipped[0][1]})")
        if not entries:
            raise SourceError(f"{self.root}: no DICOM files found")
        self.has_masks = any(e[2] is not None for e in entries)
        # every class listed, also one whose files were all left out: the conversion then stops
        # at its end (check_classes) instead of writing a class list without it
        names = sorted({e[1] for e in entries} | self._bad_labels,
                       key=lambda c: (0, int(c)) if c.lstrip("-").isdigit() else (1, c))
        self.classes = names
        index = {c: i for i, c in enumerate(names)}
        headers = self._headers([e[0] for e in entries])
        self._items = []
        dtypes = []
        for (path, label, mask), head in zip(entries, headers):
            rel = self._rel(path)
            if isinstance(head, str):
                self.skipped.append((rel, head))
                continue
            dtypes.append(head)
            self._items.append((path, index[label], mask))
        if shuffle is not None:  # a random writing order fixed by the seed, instead of folder by folder
            self._items = [self._items[i] for i in np.random.default_rng(shuffle).permutation(len(self._items))]
        if not self._items:
            raise SourceError(f"{self.root}: none of the {len(entries)} files can be converted "
                              f"(first problem: {self.skipped[0][0]}: {self.skipped[0][1]})")
        fields = {}
        if size:
            dtype = np.result_type(*sorted(set(dtypes), key=str))
            if dtype.itemsize > 2:
                raise SourceError(f"{self.root}: files mix signed and unsigned 16-bit pixels; convert them separately")
            self.dtype = dtype
            fields["image"] = NDArrayField(dtype, (size, size))
        else:
            self.dtype = None
            fields["image"] = BytesField()
        fields["label"] = IntField()
        fields["meta"] = JSONField()
        if self.has_masks:
            fields["mask"] = NDArrayField(np.uint8, (size, size)) if size else BytesField()
        self.fields = fields
        self.info = {
            "dataset": self.root.name,
            "kind": "dicom",
            "classes": self.classes,
            "num_classes": len(self.classes),
            "source": str(self.root),
            "size": size,
            "masks": self.has_masks,
            "shuffled": shuffle,
        }
        self.note_spellings(self.classes)

    # -- what to convert ---------------------------------------------------------------------
    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _from_folders(self) -> list[tuple[Path, str, object]]:
        entries = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                rel = path.relative_to(self.root)
                if not is_dicom(path):
                    if path.suffix.lower() in DICOM_SUFFIXES:
                        self.skipped.append((rel.as_posix(), "not a DICOM file (no DICM marker at byte 128)"))
                        if len(rel.parts) >= 2:
                            self._bad_labels.add(rel.parts[0])
                    else:
                        self.ignored += 1
                    continue
                if len(rel.parts) < 2:
                    raise SourceError(f"{self.root}: {rel} is not inside a class folder "
                                      "(expected DIR/<class>/<file>, or give the labels with --labels CSV)")
                entries.append((path, rel.parts[0], None))
        return entries

    def _from_csv(self, csv_path: Path) -> list[tuple[Path, str, object]]:
        if not csv_path.is_file():
            raise SourceError(f"{csv_path}: no such labels file")
        with open(csv_path, newline="") as fp:
            rows = [r for r in csv.reader(fp) if r and not r[0].startswith("#")]
        if rows and rows[0][0].strip().lower() in ("path", "file", "filename"):
            rows = rows[1:]
        entries = []
        for n, row in enumerate(rows, 1):
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise SourceError(f"{csv_path}: row {n}: expected path,label[,mask], got {row}")
            path = self.root / row[0].strip()
            if len(row) == 6 and all(c.strip().lstrip("-").isdigit() for c in row[2:]):
                row = [row[0], row[1], " ".join(c.strip() for c in row[2:])]  # an unquoted box y0,x0,y1,x1
            mask = row[2].strip() if len(row) > 2 and row[2].strip() else None
            if not path.is_file():
                self.skipped.append((row[0].strip(), "listed in the labels file but missing"))
                self._bad_labels.add(row[1].strip())
                continue
            if not is_dicom(path):
                self.skipped.append((row[0].strip(), "not a DICOM file (no DICM marker at byte 128)"))
                self._bad_labels.add(row[1].strip())
                continue
            entries.append((path, row[1].strip(), mask))
        return entries

    def _headers(self, paths: list[Path]) -> list:
        """Per file: the pixel dtype from the header, or a problem (str). Stops on a missing decoder."""
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(self._header, paths))

    def _header(self, path: Path):
        import pydicom
        from pydicom.errors import InvalidDicomError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            return _check_header(ds, path)
        except BadFile as exc:
            return str(exc)
        except (InvalidDicomError, OSError, ValueError, TypeError, KeyError, AttributeError, EOFError) as exc:
            return f"unreadable header ({type(exc).__name__}: {exc})"

    # -- samples ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        from threadpoolctl import threadpool_limits

        # one BLAS thread in each decoding thread (the resize is two matrix products): BLAS threads
        # inside the pool's threads oversubscribe the cores and made conversion 10x slower
        counts: dict[int, int] = {}
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(self.workers) as pool:
            for item, result in ordered_map(pool, self._load, self._items, 2 * self.workers):
                if isinstance(result, str):
                    self.skipped.append((self._rel(item[0]), result))
                    continue
                counts[item[1]] = counts.get(item[1], 0) + 1
                yield result
        self.check_bad(self.skipped, "bad file")  # found when listing the folder or reading the files
        self.check_classes(counts)

    def _load(self, item):
        path, label, mask_spec = item
        try:
            return item, self._sample(path, label, mask_spec)
        except BadFile as exc:
            return item, str(exc)

    def _sample(self, path: Path, label: int, mask_spec):
        import pydicom

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path)
        except Exception as exc:  # pydicom raises many kinds on damaged files
            raise BadFile(f"unreadable ({type(exc).__name__}: {exc})") from None
        _check_header(ds, path)
        if "PixelData" not in ds:
            raise BadFile(_no_pixels(path))
        _check_decoder(ds, path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pixels = ds.pixel_array
        except Exception as exc:
            text = str(exc).split("\n")[0]
            raise BadFile(f"pixel data cannot be decoded ({type(exc).__name__}: {text})") from None
        if pixels.ndim != 2:
            raise BadFile(f"pixel data of shape {pixels.shape}: only single grayscale images are converted")
        pixels = pixels.astype(pixels.dtype.newbyteorder("<"), copy=False)
        rows, cols = pixels.shape
        mask = self._mask(mask_spec, rows, cols) if self.has_masks else None
        meta = {
            "rows": rows,
            "columns": cols,
            "dtype": pixels.dtype.name,
            "bits_stored": int(ds.get("BitsStored", pixels.dtype.itemsize * 8)),
            "photometric": str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
            "rescale_slope": _number(ds.get("RescaleSlope")) or 1.0,
            "rescale_intercept": _number(ds.get("RescaleIntercept")) or 0.0,
            "window_center": _number(ds.get("WindowCenter")),
            "window_width": _number(ds.get("WindowWidth")),
            "modality": str(ds.get("Modality", "")),
            "path": self._rel(path),
        }
        if self.keep_tags:
            meta["tags"] = {t: str(ds.get(t, "")) for t in self.keep_tags}
        if self.size:
            meta["size"] = self.size
            image = area_resize(pixels, self.size).astype(self.dtype)
            sample = [image, label, meta]
            if self.has_masks:
                sample.append((area_resize(mask.astype(np.float32), self.size) >= 0.5).astype(np.uint8)
                              if mask is not None else np.zeros((self.size, self.size), np.uint8))
        else:
            sample = [np.ascontiguousarray(pixels).view(np.uint8).reshape(-1), label, meta]
            if self.has_masks:
                sample.append(mask.reshape(-1) if mask is not None else np.zeros(0, np.uint8))
        return tuple(sample)

    def _mask(self, spec, rows: int, cols: int) -> np.ndarray | None:
        if spec is None:
            return None
        parts = spec.replace(",", " ").split()
        if len(parts) == 4 and all(p.lstrip("-").isdigit() for p in parts):
            y0, x0, y1, x1 = (int(p) for p in parts)
            if not (0 <= y0 < y1 <= rows and 0 <= x0 < x1 <= cols):
                raise BadFile(f"box {spec!r} is not inside the {rows}x{cols} image")
            mask = np.zeros((rows, cols), np.uint8)
            mask[y0:y1, x0:x1] = 1
            return mask
        path = self.root / spec
        if not path.is_file():
            raise BadFile(f"mask {spec} not found")
        try:
            if path.suffix.lower() == ".npy":
                arr = np.load(path, allow_pickle=False)
            else:
                from PIL import Image

                with Image.open(path) as img:
                    arr = np.asarray(img.convert("L"))
        except Exception as exc:
            raise BadFile(f"mask {spec} unreadable ({type(exc).__name__}: {exc})") from None
        if arr.shape != (rows, cols):
            shape = f"{arr.shape[0]}x{arr.shape[1] if arr.ndim > 1 else 1}"
            raise BadFile(f"mask {spec} is {shape}, the image {rows}x{cols}")
        return (arr != 0).astype(np.uint8)


def _no_pixels(path: Path | None) -> str:
    """No pixel data: a DICOM file that is not an image, or one cut short (its length says which
    is likelier; a header alone is a few hundred bytes to a few kB)."""
    size = path.stat().st_size if path is not None and path.exists() else None
    if size is not None and size < 4096:
        return f"no pixel data: the file ends after {size} bytes, inside its header (cut short?)"
    return "no pixel data (not an image)"


def _check_header(ds, path: Path | None = None) -> np.dtype:
    """The pixel dtype of a grayscale single-frame image, or BadFile."""
    if "PixelData" not in ds and "Rows" not in ds:
        raise BadFile(_no_pixels(path))
    photometric = str(ds.get("PhotometricInterpretation", ""))
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1 or (photometric and photometric not in GRAYSCALE):
        raise BadFile(f"{photometric or samples} ({samples} samples per pixel): only grayscale "
                      "(MONOCHROME1/2) images are converted")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise BadFile(f"multi-frame ({frames} frames): only single images are converted")
    bits = int(ds.get("BitsAllocated", 0) or 0)
    if bits not in (8, 16):
        raise BadFile(f"{bits} bits allocated: 8 to 16 bit images are converted")
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    return np.dtype(("i" if signed else "u") + str(bits // 8))


def _check_decoder(ds, path: Path) -> None:
    """A compressed transfer syntax whose decoder is not installed stops the conversion."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None or not ts.is_compressed:
        return
    try:
        from pydicom.pixels import get_decoder

        decoder = get_decoder(ts)
    except (ImportError, NotImplementedError, ValueError):
        return  # let pixel_array report it
    if not decoder.is_available:
        raise SourceError(
            f"{path}: {ts.name} pixel data needs a decoder that is not installed; "
            "install the DICOM extra: pip install 'fastvis[dicom]' (pylibjpeg and its plugins)"
        )
