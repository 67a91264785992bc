"""CIFAR-10 and CIFAR-100 from the official "python version" archives.

Accepts the dataset name (downloaded into the cache on first use, md5-checked), the
``.tar.gz`` archive, or its extracted folder. Members are read straight out of the archive
(nothing is extracted, so no path can escape), and the pickles are loaded with an unpickler
that only admits what the official files contain (dicts, lists, numpy arrays).
"""
from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..beton import IntField, RGBImageField
from .base import Source, SourceError
from .download import cache_dir, check_md5, download

NO_VERIFY_HINT = " (use --no-verify for archives built elsewhere)"


@dataclass(frozen=True)
class CifarSpec:
    name: str
    url: str
    md5: str
    folder: str
    splits: dict  # split -> [(member, md5)]
    meta: tuple  # (member, md5)
    label_key: str
    names_key: str
    num_classes: int
    coarse_key: str | None = None
    coarse_names_key: str | None = None
    num_coarse: int = 0

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


CIFAR10 = CifarSpec(
    name="cifar10",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    folder="cifar-10-batches-py",
    splits={
        "train": [
            ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
            ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
            ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
            ("data_batch_4", "634d18415352ddfa80567beed471001a"),
            ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
        ],
        "test": [("test_batch", "40351d587109b95175f43aff81a1287e")],
    },
    meta=("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
    label_key="labels",
    names_key="label_names",
    num_classes=10,
)

CIFAR100 = CifarSpec(
    name="cifar100",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
    folder="cifar-100-python",
    splits={
        "train": [("train", "16019d7e3df5f24257cddd939b257f8d")],
        "test": [("test", "f0ef6b0ae62326f3e7ffdfab6717acfc")],
    },
    meta=("meta", "7973b15100ade9c7d40fb424638fde48"),
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
    coarse_key="coarse_labels",
    coarse_names_key="coarse_label_names",
    num_coarse=20,
)

SPECS = {s.name: s for s in (CIFAR10, CIFAR100)}


# -- safe unpickling ---------------------------------------------------------------------------

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of a CIFAR file)")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def load_pickle(data: bytes, what: str) -> dict:
    """Load one CIFAR pickle (Python 2 or 3 protocol); keys come back as ``str``."""
    try:
        obj = _CifarUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # pickle raises many kinds on corrupt input
        raise SourceError(f"{what}: not a readable CIFAR pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise SourceError(f"{what}: expected a dict, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _names(values, what: str) -> list[str]:
    return [v.decode("latin1") if isinstance(v, bytes) else str(v) for v in values]


# -- locating the files ---------------------------------------------------------------------------

MAX_MEMBER_BYTES = 512 << 20  # CIFAR-100's train member holds 154 MB of pixels (223 MB in a re-pickled copy)


class _Members:
    """Reads named members from an archive or a folder; ``verify`` checks the official md5s."""

    def __init__(self, spec: CifarSpec, path: Path, verify: bool):
        self.spec = spec
        self.path = path
        self.verify = verify
        self._cache: dict[str, bytes] = {}
        if path.is_dir():
            inner = path / spec.folder
            self.folder = inner if inner.is_dir() else path
        else:
            self.folder = None
            if verify:
                check_md5(path, spec.md5, f" {spec.name} archive{NO_VERIFY_HINT}")
            self._read_archive()

    def _read_archive(self) -> None:
        self.unsafe: list[str] = []
        wanted = {m for members in self.spec.splits.values() for m, _ in members} | {self.spec.meta[0]}
        try:
            with tarfile.open(self.path, "r:*") as tar:
                for info in tar:
                    parts = PurePosixPath(info.name).parts
                    if info.name.startswith("/") or ".." in parts:
                        self.unsafe.append(info.name)  # never read, and reported
                        continue
                    if not parts or not info.isfile():
                        continue
                    if parts[-1] in wanted and (len(parts) == 1 or parts[-2] == self.spec.folder):
                        self._check_size(info.name, info.size)
                        fp = tar.extractfile(info)
                        self._cache[parts[-1]] = fp.read() if fp else b""
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            raise SourceError(f"{self.path}: corrupt or unreadable archive ({exc})") from None

    def _check_size(self, name: str, size: int) -> None:
        """No member of an official archive is larger than MAX_MEMBER_BYTES: a larger one is not
        read (a small compressed archive can declare a member of gigabytes)."""
        if size > MAX_MEMBER_BYTES:
            raise SourceError(f"{self.path}: {name} is {size / 2**20:,.1f} MiB, larger than any member of the "
                              f"{self.spec.name} archive can be ({MAX_MEMBER_BYTES >> 20} MiB): not read")

    def read(self, member: str, md5: str) -> bytes:
        if self.folder is not None:
            file = self.folder / member
            if not file.is_file():
                raise SourceError(f"{self.path}: missing {member} (expected at {file})")
            self._check_size(str(file), file.stat().st_size)
            data = file.read_bytes()
            if self.verify and hashlib.md5(data).hexdigest() != md5:
                raise SourceError(f"{file}: md5 mismatch, the file is corrupt or not the official one{NO_VERIFY_HINT}")
            return data
        if member not in self._cache:
            raise SourceError(f"{self.path}: archive has no member {self.spec.folder}/{member}")
        return self._cache[member]


def resolve(spec: CifarSpec, source: str | Path | None, cache: Path | None, progress: bool) -> Path:
    """The archive or folder to read: a given path, or the cached (downloaded) archive."""
    if source is not None and str(source) not in SPECS:
        path = Path(source)
        if not path.exists():
            raise SourceError(f"{path}: no such file or folder")
        return path
    folder = Path(cache) if cache else cache_dir()
    archive = folder / spec.filename
    if archive.exists():
        return archive
    try:
        return download(spec.url, archive, md5=spec.md5, progress=progress)
    except SourceError as exc:
        raise SourceError(f"{exc}. Without internet, give the archive itself (fastvis-train --data "
                          f"path/to/{spec.filename}, or make train DATA=path/to/{spec.filename}) or put it at "
                          f"{archive}") from None


class CifarSource(Source):
    """One split of CIFAR-10 or CIFAR-100: fields ``image`` (raw RGB 32x32), ``label`` (the fine
    label) and, for CIFAR-100, ``coarse_label``."""

    def __init__(
        self,
        name: str,
        source: str | Path | None = None,
        split: str = "train",
        verify: bool = True,
        cache: str | Path | None = None,
        progress: bool = True,
    ):
        super().__init__()
        if name not in SPECS:
            raise SourceError(f"unknown CIFAR dataset {name!r}; choose from {sorted(SPECS)}")
        spec = SPECS[name]
        if split not in spec.splits:
            raise SourceError(f"{name} has splits {sorted(spec.splits)}, not {split!r}")
        self.kind = name
        self.spec = spec
        self.path = resolve(spec, source, Path(cache) if cache else None, progress)
        members = _Members(spec, self.path, verify)
        self.skipped.extend((n, "unsafe path in archive, ignored") for n in getattr(members, "unsafe", []))

        meta_name, meta_md5 = spec.meta
        meta = load_pickle(members.read(meta_name, meta_md5), f"{self.path}: {meta_name}")
        classes = self._get(meta, spec.names_key, meta_name)
        self.classes = _names(classes, meta_name)
        if len(self.classes) != spec.num_classes:
            raise SourceError(f"{self.path}: {meta_name} lists {len(self.classes)} classes, "
                              f"expected {spec.num_classes}")
        self.coarse_classes = None
        if spec.coarse_names_key:
            self.coarse_classes = _names(self._get(meta, spec.coarse_names_key, meta_name), meta_name)

        images, labels, coarse = [], [], []
        for member, md5 in spec.splits[split]:
            batch = load_pickle(members.read(member, md5), f"{self.path}: {member}")
            data = np.asarray(self._get(batch, "data", member))
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise SourceError(f"{self.path}: {member}: data is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
            n = data.shape[0]
            images.append(data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(self._labels(batch, spec.label_key, member, n, spec.num_classes))
            if spec.coarse_key:
                coarse.append(self._labels(batch, spec.coarse_key, member, n, spec.num_coarse))
        self.images = np.ascontiguousarray(np.concatenate(images))
        self.labels = np.concatenate(labels)
        self.coarse_labels = np.concatenate(coarse) if coarse else None

        self.fields = {"image": RGBImageField("raw"), "label": IntField()}
        if self.coarse_labels is not None:
            self.fields["coarse_label"] = IntField()
        self.info = {
            "dataset": name,
            "split": split,
            "classes": self.classes,
            "num_classes": spec.num_classes,
            "source": str(self.path),
            "shuffled": "archive",  # the official files hold the samples in random order
        }
        if self.coarse_classes is not None:
            self.info["coarse_classes"] = self.coarse_classes

    def _get(self, d: dict, key: str, member: str):
        if key not in d:
            raise SourceError(f"{self.path}: {member} has no {key!r} entry (keys: {sorted(d)})")
        return d[key]

    def _labels(self, batch: dict, key: str, member: str, n: int, k: int) -> np.ndarray:
        labels = np.asarray(self._get(batch, key, member))
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise SourceError(f"{self.path}: {member}: {key} has shape {labels.shape}, expected ({n},) integers")
        if n and (labels.min() < 0 or labels.max() >= k):
            raise SourceError(f"{self.path}: {member}: {key} outside [0, {k})")
        return labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):
        if self.coarse_labels is None:
            for img, y in zip(self.images, self.labels):
                yield img, int(y)
        else:
            for img, y, c in zip(self.images, self.labels, self.coarse_labels):
                yield img, int(y), int(c)
