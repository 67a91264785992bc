"""Readers of original datasets: each yields samples for the ``.beton`` writer."""
from __future__ import annotations

from pathlib import Path

from .base import Source, SourceError
from .cifar import SPECS as CIFAR_SPECS
from .cifar import CifarSource
from .dicom import DicomSource
from .imagefolder import ImageFolderSource, is_archive

KINDS = ("cifar100", "cifar10", "imagefolder", "dicom")

__all__ = ["KINDS", "CifarSource", "DicomSource", "ImageFolderSource", "Source", "SourceError", "detect_kind",
           "open_source"]


def _looks_like_dicom(path: Path, limit: int = 64) -> bool:
    files = (p for p in path.rglob("*") if p.is_file())
    for k, f in enumerate(files):
        if k >= limit:
            break
        try:
            with open(f, "rb") as fp:
                head = fp.read(132)
        except OSError:
            continue
        if head[128:132] == b"DICM":
            return True
    return False


def _archive_members(path: Path, limit: int = 64) -> list[str]:
    """The first member names of a tar or zip archive (an empty list for anything else)."""
    import tarfile
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return z.namelist()[:limit]
        with tarfile.open(path) as tar:
            names = []
            for member in tar:
                names.append(member.name)
                if len(names) >= limit:
                    break
            return names
    except (tarfile.TarError, OSError, EOFError, zipfile.BadZipFile):
        return []


def _cifar_in(names: list[str]) -> str | None:
    """The CIFAR kind whose layout (``<folder>/<meta member>``) the member names show, if any."""
    stripped = {n.rstrip("/").lstrip("./") for n in names}
    for spec in CIFAR_SPECS.values():
        if any(n.endswith(f"{spec.folder}/{spec.meta[0]}") or n == spec.folder for n in stripped):
            return spec.name
    return None


def detect_kind(source: str | Path) -> str:
    """Guess the kind of a source: a dataset name, a CIFAR archive or folder, DICOM, or images."""
    text = str(source)
    if text in CIFAR_SPECS:
        return text
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder (or dataset name; known: {sorted(CIFAR_SPECS)})")
    name = path.name.lower()
    for spec in CIFAR_SPECS.values():
        if name.startswith(spec.filename.split(".")[0]) or name == spec.folder or (path / spec.folder).is_dir():
            return spec.name
    if path.is_dir():
        for spec in CIFAR_SPECS.values():
            if (path / spec.meta[0]).is_file():
                return spec.name
        return "dicom" if _looks_like_dicom(path) else "imagefolder"
    if is_archive(path):  # a CIFAR archive by its content, whatever its name
        return _cifar_in(_archive_members(path)) or "imagefolder"
    raise SourceError(f"{path}: not a folder or a known archive; name the kind with --kind "
                      f"({', '.join(KINDS)})")


def open_source(
    source: str | Path,
    kind: str | None = None,
    split: str | None = None,
    verify: bool = True,
    cache: str | Path | None = None,
    size: int | None = None,
    max_side: int | None = None,
    jpeg: int | None = None,
    skip_bad: bool = False,
    progress: bool = True,
    workers: int | None = None,
    labels: str | Path | None = None,
    keep_tags: list[str] | tuple[str, ...] = (),
    shuffle: int | None = None,
) -> Source:
    """Open ``source`` (dataset name, folder or archive) as a :class:`Source` of the given kind."""
    kind = kind or detect_kind(source)
    if kind in CIFAR_SPECS:
        if size is not None or max_side is not None or jpeg or shuffle is not None:
            raise SourceError("CIFAR images are stored as they are, in the archive's (random) order: --size, "
                              "--max-side, --jpeg and --shuffle do not apply")
        src = None if str(source) in CIFAR_SPECS else source
        return CifarSource(kind, src, split=split or "train", verify=verify, cache=cache, progress=progress)
    if kind == "imagefolder":
        return ImageFolderSource(source, split=split, size=size, max_side=max_side, jpeg=jpeg,
                                 skip_bad=skip_bad, workers=workers, shuffle=shuffle)
    if kind == "dicom":
        if max_side is not None or jpeg:
            raise SourceError("DICOM pixels are kept losslessly: --max-side and --jpeg do not apply (--size does)")
        return DicomSource(source, labels=labels, size=size, keep_tags=keep_tags, workers=workers, shuffle=shuffle,
                           skip_bad=skip_bad)
    if labels or keep_tags:
        raise SourceError("--labels and --keep-tags apply to DICOM folders only")
    raise SourceError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
