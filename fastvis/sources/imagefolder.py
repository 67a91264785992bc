"""Image folders: ``root/<class>/<image>`` (optionally ``root/<split>/<class>/<image>``), as a
folder or inside a ``.tar``/``.tar.gz``/``.tar.xz``/``.zip`` archive (read in place, never
extracted). Classes are the sorted folder names; labels are their indices.
"""
from __future__ import annotations

import io
import os
import tarfile
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np

from ..beton import IntField, RGBImageField
from .base import MAX_FILE_BYTES, Oversized, Source, SourceError
from .decoding import MAX_PIXELS_HELD, TRIM_PIXELS, PixelBudget, Stopped, give_back_memory, ordered_map

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".zip")
RAW_MAX_SIDE = 64  # images up to this size are stored raw unless JPEG is asked for
def is_archive(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and (name.endswith(ARCHIVE_SUFFIXES) or tarfile.is_tarfile(path) or zipfile.is_zipfile(path))


def _safe_parts(name: str) -> tuple[str, ...] | None:
    """Path components of an archive member, or None for names that could escape (abs, ..)."""
    if name.startswith(("/", "\\")) or ":" in name.split("/", 1)[0]:
        return None
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return None
    return parts


def _is_image(name: str) -> bool:
    return not name.startswith(".") and PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS


class _Tree:
    """The image files of a folder or archive, as relative path components, and a way to read them."""

    def __init__(self, path: Path, max_bytes: int = MAX_FILE_BYTES):
        self.path = path
        self.max_bytes = max_bytes
        self.kind = "folder" if path.is_dir() else ("zip" if zipfile.is_zipfile(path) else "tar")
        self.entries: list[tuple[str, ...]] = []
        self.unsafe: list[str] = []
        self.irregular: list[tuple[str, str]] = []  # (name, why) of image names that are not regular files
        self.folders: list[tuple[str, ...]] = []  # a folder's every sub-folder read (links to folders followed)
        try:
            if self.kind == "folder":
                read = set()  # folders followed, by their real path: a link is followed once, a loop never
                for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
                    rel = Path(dirpath).relative_to(path).parts
                    real = os.path.realpath(dirpath)
                    if real in read:
                        dirnames[:] = []
                        self.irregular.append(("/".join(rel), "a link to a folder read already (a loop, or the "
                                               "same images twice), not followed"))
                        continue
                    read.add(real)
                    self.folders.append(rel)
                    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                    for f in sorted(filenames):
                        if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                            full = Path(dirpath) / f
                            if full.is_file():  # follows a link; a FIFO would block reading
                                self.entries.append((*rel, f))
                            else:
                                why = "a dangling or looping link" if full.is_symlink() else \
                                    "not a regular file (a FIFO, a device or a socket)"
                                self.irregular.append(("/".join((*rel, f)), why))
            elif self.kind == "zip":
                with zipfile.ZipFile(path) as zf:
                    for info in zf.infolist():
                        self._add_member(info.filename, not info.is_dir())
            else:
                with tarfile.open(path, "r:*") as tar:
                    for info in tar:
                        if (info.issym() or info.islnk()) and _is_image(PurePosixPath(info.name).name):
                            self.irregular.append((info.name, "a link inside the archive, not followed"))
                        self._add_member(info.name, info.isfile())
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise SourceError(f"{path}: corrupt or unreadable {self.kind} ({exc})") from None

    def _add_member(self, name: str, is_file: bool) -> None:
        if not is_file:
            return
        parts = _safe_parts(name)
        if parts is None:
            self.unsafe.append(name)
            return
        if parts and _is_image(parts[-1]):
            self.entries.append(parts)

    def read(self, wanted: dict[tuple[str, ...], int],
             in_order: bool = False) -> Iterator[tuple[tuple[str, ...], bytes | Oversized]]:
        """Yield ``(parts, data)`` for the wanted entries: in ``wanted``'s order for folders and
        zips; in the container's order for tars, unless ``in_order`` (then the tar's wanted
        members are read into memory first). A file larger than ``max_bytes`` is never read:
        its data is an :class:`Oversized` (a small archive can hold a member of gigabytes)."""
        if self.kind == "folder":
            for parts in wanted:
                file = self.path.joinpath(*parts)
                yield parts, self._bounded(file.stat().st_size, file.read_bytes)
        elif self.kind == "zip":
            with zipfile.ZipFile(self.path) as zf:
                infos = {_safe_parts(info.filename): info for info in zf.infolist()}
                for parts in wanted:
                    info = infos[parts]  # zipfile reads no more than the declared size
                    yield parts, self._bounded(info.file_size, lambda: zf.read(info))
        elif in_order:
            data = dict(self.read(wanted))
            for parts in wanted:
                yield parts, data.pop(parts)
        else:
            # streaming mode: one sequential pass, even through .xz/.gz
            with tarfile.open(self.path, "r|*") as tar:
                for info in tar:
                    parts = _safe_parts(info.name) if info.isfile() else None
                    if parts in wanted:
                        fp = tar.extractfile(info)
                        yield parts, self._bounded(info.size, lambda: fp.read() if fp else b"")

    def _bounded(self, size: int, read) -> bytes | Oversized:
        return Oversized(size, self.max_bytes) if size > self.max_bytes else read()


class ImageFolderSource(Source):
    """Images with labels from their class folder.

    ``split``: use ``<root>/<split>/`` when such a folder exists (``None``: ``train`` if present,
    else the whole tree). ``size``: resize the shorter side to ``size`` and centre-crop to a
    square. ``max_side``: shrink so that the longer side is at most ``max_side`` (aspect kept).
    ``jpeg``: store as JPEG of that quality; ``None`` stores raw when images are at most
    64 px, else JPEG at quality 90; ``0`` forces raw. ``skip_bad``: leave out unreadable images
    (listed in ``skipped``) instead of failing. ``shuffle``: a seed; samples come in a random
    order fixed by it instead of class by class (a tar archive is then read into memory).
    ``max_file_bytes``: an image file or archive member larger than this is a bad input, never
    read (a small compressed archive can hold a member of gigabytes).
    """

    kind = "imagefolder"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        size: int | None = None,
        max_side: int | None = None,
        jpeg: int | None = None,
        skip_bad: bool = False,
        workers: int | None = None,
        shuffle: int | None = None,
        max_file_bytes: int = MAX_FILE_BYTES,
    ):
        super().__init__()
        self.root = Path(root)
        if not self.root.exists():
            raise SourceError(f"{self.root}: no such file or folder")
        if size is not None and size <= 0 or max_side is not None and max_side <= 0:
            raise SourceError("--size and --max-side must be positive")
        self.size, self.max_side, self.skip_bad = size, max_side, skip_bad
        self.scaled: list[int] = []  # images of more than 8 bits, scaled to 8
        self.current: str | None = None  # the file of the sample last yielded (for error messages)
        self.workers = workers or min(8, os.cpu_count() or 1)
        tree = _Tree(self.root, max_file_bytes)
        wrapper = _wrapper(tree.entries) if tree.kind != "folder" else ()
        entries = [p[len(wrapper):] for p in tree.entries]
        entries, self.split = self._select_split(entries, split)
        bad = [p for p in entries if len(p) < 2]
        if bad:
            raise SourceError(
                f"{self.root}: {'/'.join(bad[0])} is not inside a class folder (expected <root>/<class>/<image>)"
            )
        if not entries:
            raise SourceError(f"{self.root}: no images found (expected <root>/<class>/<image> with "
                              f"{sorted(IMAGE_EXTENSIONS)}); if it is another kind of dataset, name it with "
                              "--kind (cifar100, cifar10, dicom)")
        self.classes = sorted({p[0] for p in entries})
        depth = 2 if self.split else 1  # class folders: <root>/<class> or <root>/<split>/<class>
        empty = sorted({f[-1] for f in tree.folders if len(f) == depth and f[:-1] == ((self.split,) if self.split
                                                                                      else ())} - set(self.classes))
        if empty:
            raise SourceError(f"{self.root}: class folder(s) {empty} hold no images (expected <root>/<class>/<image> "
                              f"with {sorted(IMAGE_EXTENSIONS)}); nothing written: add their images or remove them")
        index = {c: i for i, c in enumerate(self.classes)}
        prefix = wrapper + ((self.split,) if self.split else ())
        self._tree = tree
        if shuffle is not None:
            entries = [entries[i] for i in np.random.default_rng(shuffle).permutation(len(entries))]
        self.shuffle = shuffle
        self._labels = {prefix + p: index[p[0]] for p in entries}  # full member path -> label, in writing order

        if jpeg is None:
            side = size or max_side
            # None: decide from the first image
            self.mode = "raw" if side is not None and side <= RAW_MAX_SIDE else None
        elif jpeg == 0:
            self.mode = "raw"
        else:
            if not 1 <= jpeg <= 100:
                raise SourceError(f"JPEG quality must be in 1..100, got {jpeg}")
            self.mode = "jpeg"
        self.jpeg_quality = jpeg or 90
        if self.mode is None:
            self.mode = self._guess_mode()
        self.fields = {"image": RGBImageField(self.mode, self.jpeg_quality), "label": IntField()}
        self.info = {
            "dataset": self.root.name,
            "split": self.split,
            "classes": self.classes,
            "num_classes": len(self.classes),
            "source": str(self.root),
            "image_mode": self.mode,
            "shuffled": shuffle,
        }
        self.note_spellings(self.classes)

    # -- layout ---------------------------------------------------------------------------
    def _select_split(self, entries, split):
        tops = {p[0] for p in entries if len(p) >= 3}
        want = split or ("train" if "train" in tops else None)
        if want is None:
            return entries, None
        chosen = [p[1:] for p in entries if len(p) >= 3 and p[0] == want]
        if not chosen:
            raise SourceError(
                f"{self.root}: no '{want}' split folder with images "
                f"(top-level folders: {sorted({p[0] for p in entries})})"
            )
        return chosen, want

    def _guess_mode(self, sample: int = 64) -> str:
        """Raw when every image looked at is at most RAW_MAX_SIDE on its longer side, else JPEG:
        the sizes (headers only) of up to ``sample`` images spread over the folder or zip, or the
        first ones of a tar (read in one pass). An unreadable one is left to the conversion."""
        from PIL import Image

        names = list(self._labels)
        if self._tree.kind in ("folder", "zip"):
            step = max(1, len(names) // sample)
            names = names[::step][:sample]
        wanted = dict.fromkeys(names, 0)
        largest = 0
        stream = self._tree.read(wanted)
        try:
            for k, (_, data) in enumerate(stream):
                if isinstance(data, Oversized):
                    continue
                try:
                    with Image.open(io.BytesIO(data)) as img:
                        largest = max(largest, *img.size)
                except Exception:
                    pass
                if k + 1 >= sample or largest > RAW_MAX_SIDE:
                    break
        finally:
            stream.close()  # a tar being streamed is closed here, not when collected
        return "raw" if 0 < largest <= RAW_MAX_SIDE else "jpeg"

    # -- decoding -------------------------------------------------------------------------
    def _decode(self, data: bytes, take=lambda pixels: None) -> np.ndarray:
        """The image as RGB uint8, resized as asked; ``take(pixels)`` is called once its size is
        known and before it is decoded."""
        from PIL import Image

        if isinstance(data, Oversized):
            raise data
        with Image.open(io.BytesIO(data)) as img:
            if self.size and img.format == "JPEG":
                img.draft("RGB", (self.size, self.size))  # DCT-domain downscale: much faster
            take(img.size[0] * img.size[1])
            if img.mode.startswith("I"):  # 16-bit (or 32-bit) grey: Pillow would clip it to 255
                values = np.asarray(img).astype(np.float64)
                top = 65535.0 if img.mode.startswith("I;16") else max(float(values.max()), 1.0)
                img = Image.fromarray(np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8), "L")
                self.scaled.append(1)  # said in the sidecar and by fastvis-convert
            if img.mode != "RGB":  # (convert would copy an RGB image too)
                img = img.convert("RGB")
            w, h = img.size
            if self.size:
                scale = self.size / min(w, h)
                nw, nh = max(self.size, round(w * scale)), max(self.size, round(h * scale))
                if (nw, nh) != (w, h):
                    img = img.resize((nw, nh), Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR)
                left, top = (nw - self.size) // 2, (nh - self.size) // 2
                img = img.crop((left, top, left + self.size, top + self.size))
            elif self.max_side and max(w, h) > self.max_side:
                scale = self.max_side / max(w, h)
                img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
            return np.asarray(img)

    def _decode_one(self, item):
        """``(parts, image or None, problem or None, pixels held)``; the pixels are the budget's
        until the writer has the image."""
        ticket, (parts, data), budget = item
        held: list[int] = []

        def take(pixels: int) -> None:
            held.append(budget.take(ticket, pixels))

        try:
            image, problem = self._decode(data, take), None
        except Stopped:
            return parts, None, "not read: the conversion stopped", 0
        except Oversized as exc:
            image, problem = None, f"too large to read: {exc}"
        except Exception as exc:  # Pillow raises many kinds on corrupt files
            image, problem = None, f"{type(exc).__name__}: {exc}"
        if not held:
            try:
                take(0)
            except Stopped:
                return parts, None, "not read: the conversion stopped", 0
        if held[0] >= TRIM_PIXELS:
            give_back_memory()
        if image is None:
            budget.give(held[0])
            return parts, None, problem, 0
        return parts, image, None, held[0]

    def __len__(self) -> int:
        return len(self._labels)

    def __iter__(self):
        stream = self._tree.read(self._labels, in_order=self.shuffle is not None)
        # FIFOs, devices, dangling links, links inside archives, member names that would escape: never opened
        bad = list(self._tree.irregular) + [(n, "unsafe path in archive (absolute or with '..'), not read")
                                            for n in self._tree.unsafe]
        self.skipped.extend(bad)
        counts: dict[int, int] = {}
        budget = PixelBudget(MAX_PIXELS_HELD)
        tickets = ((k, item, budget) for k, item in enumerate(stream))
        with ThreadPoolExecutor(self.workers) as pool:
            try:
                for parts, image, problem, pixels in ordered_map(pool, self._decode_one, tickets, 4 * self.workers):
                    if problem is not None:
                        bad.append(("/".join(parts), problem))
                        self.skipped.append(bad[-1])
                        continue
                    self.current = "/".join(parts)
                    label = self._labels[parts]
                    counts[label] = counts.get(label, 0) + 1
                    yield image, label
                    del image
                    budget.give(pixels)
            finally:
                budget.close()
        if self.scaled:
            self.info.setdefault("notes", []).append(
                f"{len(self.scaled)} image(s) of more than 8 bits per channel scaled to 8 bits")
        self.check_bad(bad, "unreadable image")
        self.check_classes(counts)


def _wrapper(entries: list[tuple[str, ...]]) -> tuple[str, ...]:
    """A chain of single top-level folders that wraps a whole archive (``data/<class>/x.jpg``)."""
    n = 0
    while entries and all(len(p) >= n + 3 for p in entries) and len({p[n] for p in entries}) == 1:
        n += 1
    return entries[0][:n] if entries else ()
