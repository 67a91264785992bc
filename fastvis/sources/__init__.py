"""Readers of original datasets: each yields samples for the ``.beton`` writer."""
from __future__ import annotations

from pathlib import Path

from .base import Source, SourceError
from .cifar import SPECS as CIFAR_SPECS
from .cifar import CifarSource
from .dicom import DicomSource
from .imagefolder import ImageFolderSource, is_archive

KINDS = ("cifar100", "cifar10", "imagefolder", "dicom")

__all__ = ["KINDS", "SOURCE_KINDS", "CifarSource", "DicomSource", "ImageFolderSource", "Source", "SourceError",
           "detect_kind", "open_source"]


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


def _cifar(source, kind: str, o: dict) -> Source:
    src = None if str(source) in CIFAR_SPECS else source
    return CifarSource(kind, src, split=o["split"] or "train", verify=o["verify"], cache=o["cache"],
                       progress=o["progress"])


def _imagefolder(source, kind: str, o: dict) -> Source:
    return ImageFolderSource(source, split=o["split"], size=o["size"], max_side=o["max_side"], jpeg=o["jpeg"],
                             skip_bad=o["skip_bad"], workers=o["workers"], shuffle=o["shuffle"])


def _dicom(source, kind: str, o: dict) -> Source:
    return DicomSource(source, labels=o["labels"], size=o["size"], keep_tags=o["keep_tags"], workers=o["workers"],
                       shuffle=o["shuffle"], skip_bad=o["skip_bad"])


_CIFAR_REFUSES = {"size": "CIFAR images are stored as they are", "max_side": "CIFAR images are stored as they are",
                  "jpeg": "CIFAR images are stored as they are",
                  "shuffle": "CIFAR samples keep the archive's (random) order",
                  "labels": "CIFAR archives carry their labels", "keep_tags": "CIFAR images have no DICOM tags"}

#: every kind of source: how it opens, and the options that do not apply to it (with why)
SOURCE_KINDS: dict[str, tuple] = {
    "cifar100": (_cifar, _CIFAR_REFUSES),
    "cifar10": (_cifar, _CIFAR_REFUSES),
    "imagefolder": (_imagefolder, {"labels": "class folders name the labels (--labels is for DICOM folders)",
                                   "keep_tags": "images have no DICOM tags"}),
    "dicom": (_dicom, {"max_side": "DICOM pixels are kept losslessly (--size applies)",
                       "jpeg": "DICOM pixels are kept losslessly (--size applies)"}),
}
assert set(SOURCE_KINDS) == set(KINDS)
_UNSET = {"jpeg": (None, 0)}  # --raw (jpeg 0) is how CIFAR and DICOM pixels are kept anyway


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
    """Open ``source`` (dataset name, folder or archive) as a :class:`Source` of the given kind
    (:data:`SOURCE_KINDS`); an option that does not apply to the kind is refused, with why."""
    kind = kind or detect_kind(source)
    if kind not in SOURCE_KINDS:
        raise SourceError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    build, refuses = SOURCE_KINDS[kind]
    options = dict(split=split, verify=verify, cache=cache, size=size, max_side=max_side, jpeg=jpeg,
                   skip_bad=skip_bad, progress=progress, workers=workers, labels=labels, keep_tags=keep_tags,
                   shuffle=shuffle)
    given = [name for name in refuses if options[name] not in _UNSET.get(name, (None, (), []))]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        reasons = "; ".join(dict.fromkeys(refuses[name] for name in given))
        raise SourceError(f"{source}: {flags} do not apply to {kind} sources ({reasons})")
    return build(source, kind, options)
