"""Where the data comes from: a dataset name, a .beton, or a folder/archive, converted once into the cache."""
from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path

from ..beton import BetonError, BetonReader
from ..convert import convert
from ..sources import CIFAR_SPECS, ImageFolderSource, SourceError, detect_kind, open_source
from ..sources.download import cache_dir


def _converted(target: Path, make_source, progress: bool) -> Path:
    if not target.exists():
        convert(make_source(), target, progress=progress)
    return target


def resolve(data: str, val: str | None = None, cache: str | Path | None = None, progress: bool = True,
            verify: bool = True, need_val: bool = True) -> tuple[Path, Path | None, str]:
    """(train .beton, validation .beton, dataset name) for ``--data`` and ``--val``. Without
    ``need_val`` (a run with a holdout) the validation file may be None where none is given."""
    folder = Path(cache) if cache else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if data in CIFAR_SPECS:
        train = _converted(folder / f"{data}-train.beton",
                           lambda: open_source(data, split="train", cache=folder, progress=progress, verify=verify),
                           progress)
        test = _converted(folder / f"{data}-test.beton",
                          lambda: open_source(data, split="test", cache=folder, progress=progress, verify=verify),
                          progress)
        return train, _resolve_val(val, folder, progress) if val else test, data
    path = Path(data)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder (or dataset name: {', '.join(CIFAR_SPECS)})")
    if path.suffix == ".beton":
        if not val and need_val:
            raise SourceError(f"{path}: give the validation set with --val (a .beton, or a folder), or hold out "
                              "part of the training set with --holdout")
        return path, _resolve_val(val, folder, progress) if val else None, dataset_name(path)
    kind = detect_kind(path)  # a CIFAR archive or folder by its content, else images
    if kind == "dicom":
        raise SourceError(f"{path}: DICOM folders are converted first (fastvis-convert {path} OUT.beton --size N) "
                          "and trained on as .beton files")
    key = content_key(path)

    def source(split: str):
        return open_source(path, kind, split=split, verify=verify, cache=folder, progress=progress)

    target = folder / f"{path.stem}-{key}-train.beton"
    earlier = sorted(p.name for p in folder.glob(f"{glob.escape(path.stem)}-*-train.beton") if p != target)
    if progress and earlier and not target.exists():
        print(f"{path}: its files are not those of the conversion in the cache ({', '.join(earlier)}); "
              "converting it again", flush=True)
    train = _converted(target, lambda: source("train"), progress)
    if val:
        return train, _resolve_val(val, folder, progress), path.stem
    for split in ("test", "val") if kind == "imagefolder" else ("test",):
        try:
            src = source(split)
        except SourceError:
            continue
        return train, _converted(folder / f"{path.stem}-{key}-{split}.beton", lambda: src, progress), path.stem
    if not need_val:
        return train, None, path.stem
    raise SourceError(f"{path}: no test/ or val/ split found; give the validation set with --val, or hold out "
                      "part of the training set with --holdout")


def content_key(path: Path) -> str:
    """What a conversion in the cache is keyed on: the source's absolute path and, for every
    file it holds (or the archive itself), its name, size and modification time; so that
    images added, removed or replaced (even under the same name) give a new conversion, never
    a stale one. Costs one ``stat`` per file (about a second per million files)."""
    h = hashlib.sha1(f"fastvis-cache-1\0{path.resolve()}\0".encode())
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                try:
                    st = os.stat(full, follow_symlinks=False)
                except OSError:  # gone meanwhile: the conversion will say so
                    continue
                h.update(f"{os.path.relpath(full, path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    else:
        st = path.stat()
        h.update(f"{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:10]


#: names that say which part of a dataset a file holds, not which dataset
SPLIT_NAMES = frozenset({"train", "training", "test", "val", "valid", "validation"})


def dataset_name(path: Path) -> str:
    """What a .beton holds, as the report names it: the dataset its converter recorded in the
    sidecar (``cifar100``), unless that only names a split (an image folder called ``train``);
    then the file's name, or the folder it lies in."""
    try:
        recorded = BetonReader(path).info.get("dataset")  # the sidecar as the reader checks it
    except (OSError, BetonError):  # a damaged file or sidecar: loading the data says so, in one line
        recorded = None
    for name in (recorded, path.stem, path.resolve().parent.name):
        if isinstance(name, str) and name and name.lower() not in SPLIT_NAMES:
            return name
    return path.stem


def _resolve_val(val: str, folder: Path, progress: bool) -> Path:
    p = Path(val)
    if p.suffix == ".beton":
        if not p.exists():
            raise SourceError(f"{p}: no such file")
        return p
    if not p.exists():
        raise SourceError(f"{p}: no such file or folder")
    key = hashlib.sha1(f"{p.resolve()}:{p.stat().st_mtime_ns}".encode()).hexdigest()[:10]
    return _converted(folder / f"{p.stem}-{key}-val.beton", lambda: ImageFolderSource(p), progress)
