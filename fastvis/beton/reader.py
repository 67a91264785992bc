"""Reading ``.beton`` files (ours or FFCV's) from a memory map, with every table checked first."""
from __future__ import annotations

import json
import mmap
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import InputError
from .fields import Field, IntField, RGBImageField, field_from_descriptor
from .format import (
    ALLOC_DTYPE,
    FIELD_DESC_DTYPE,
    HEADER_DTYPE,
    MAX_FIELDS,
    MAX_PAGE_SIZE,
    VERSION,
    BetonError,
    MissingField,
    decode_name,
    is_power_of_two,
    metadata_dtype,
)
from .integrity import SampleCheck, check_class_ids, check_guard, checksum_source, crc_table, sidecar_problem
from .integrity import verify as verify_samples
from .tables import payload_tables

__all__ = ["BetonReader", "sidecar_path"]


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON file beside a ``.beton`` that holds dataset-level facts (class names, source)."""
    return Path(str(path) + ".json")


class BetonReader:
    """Random access to the samples of a ``.beton`` file.

    ``reader[i]`` is a tuple of decoded values in field order (images as ``(H, W, 3)`` uint8
    arrays, JSON fields as Python objects, NDArrays with their dtype and shape).
    ``reader.fields`` maps names to :class:`Field` objects, ``reader.info`` is the JSON sidecar
    (class names ...) or ``{}``. :meth:`read_batch` gathers many samples of one field into one
    preallocated array, and :meth:`column` returns a scalar field for all samples at once.

    Opening checks the header, the field descriptors, the metadata and the allocation table
    against the file size and against each other; any inconsistency raises :class:`BetonError`
    naming the file, so a damaged file never yields out-of-bounds reads. ``checked=True`` (the
    training path) also checks each sample against the CRC-32 written with the file the first
    time any of its fields is read (:meth:`read_batch`, ``reader[i]``, :meth:`get`,
    :meth:`payload`; all of its fields and its metadata record, the label included): a damaged
    sample raises :class:`BetonError` naming it. Files from other writers carry no CRCs and
    are read unchecked.
    """

    def __init__(self, path: str | os.PathLike, checked: bool = False):
        self.path = Path(path)
        self.checked = checked
        self._sample_check = None
        try:
            st = self.path.stat()
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError
            if not stat.S_ISREG(st.st_mode):  # opening a FIFO would wait for a writer
                raise BetonError(f"{self.path}: not a regular file (a FIFO, a device or a socket)")
            size = st.st_size
            with open(self.path, "rb") as fp:
                self._mmap = mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        except FileNotFoundError:
            raise BetonError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise BetonError(f"{self.path}: is a folder, not a .beton file") from None
        except OSError as exc:
            raise BetonError(f"{self.path}: cannot open ({exc.strerror or exc})") from None
        self.file_size = size
        self._buf = np.frombuffer(self._mmap, np.uint8) if self._mmap is not None else np.zeros(0, np.uint8)
        self._parse()
        self.info = self._read_sidecar()

    # -- parsing and validation -----------------------------------------------------------
    def _fail(self, problem: str) -> BetonError:
        return BetonError(f"{self.path}: {problem}")

    def _parse(self) -> None:
        buf, size = self._buf, self.file_size
        if size < HEADER_DTYPE.itemsize:
            raise self._fail(f"truncated: {size} bytes, shorter than the {HEADER_DTYPE.itemsize}-byte header")
        header = buf[: HEADER_DTYPE.itemsize].view(HEADER_DTYPE)[0]
        version = int(header["version"])
        if version != VERSION:
            raise self._fail(f"not a .beton file of version {VERSION} (version field reads {version})")
        num_fields = int(header["num_fields"])
        page_size = int(header["page_size"])
        num_samples = int(header["num_samples"])
        alloc_ptr = int(header["alloc_table_ptr"])
        if not 1 <= num_fields <= MAX_FIELDS:
            raise self._fail(f"implausible number of fields: {num_fields}")
        if not is_power_of_two(page_size) or page_size > MAX_PAGE_SIZE:
            raise self._fail(f"page size {page_size} is not a power of two up to {MAX_PAGE_SIZE}")

        desc_end = HEADER_DTYPE.itemsize + num_fields * FIELD_DESC_DTYPE.itemsize
        if desc_end > size:
            raise self._fail(f"truncated: {size} bytes, the {num_fields} field descriptors end at {desc_end}")
        # fastvis's own files: the counts and the header's CRC-32 they were written with (a
        # mismatch is raised after the structural checks, whose messages say more)
        damage, guard_at = check_guard(buf, size, alloc_ptr, page_size, num_samples, num_fields, desc_end)
        descs = buf[HEADER_DTYPE.itemsize : desc_end].view(FIELD_DESC_DTYPE)
        names: list[str] = []
        fields: list[Field] = []
        for i, d in enumerate(descs):
            name = decode_name(d["name"])
            try:
                fields.append(field_from_descriptor(d["type_id"], np.array(d["arguments"])))
            except ValueError as exc:
                raise self._fail(f"field {i} ({name!r}): {exc}") from None
            names.append(name)
        meta_dtype = metadata_dtype([f.metadata_dtype for f in fields])

        if num_samples > size:  # each sample needs at least one metadata byte
            raise self._fail(f"implausible sample count {num_samples} for a {size}-byte file")
        meta_end = desc_end + num_samples * meta_dtype.itemsize
        if meta_end > size:
            raise self._fail(f"truncated: {size} bytes, the metadata of {num_samples} samples ends at {meta_end}")
        self._crc_table = None if guard_at is None else crc_table(buf, guard_at, num_samples, meta_end, self.path)
        if not meta_end <= alloc_ptr <= size:
            raise self._fail(
                f"allocation table pointer {alloc_ptr} lies outside [{meta_end}, {size}] (truncated or corrupt)"
            )
        if (size - alloc_ptr) % ALLOC_DTYPE.itemsize:
            raise self._fail(
                f"truncated or corrupt allocation table: {size - alloc_ptr} bytes is not a whole number of entries"
            )
        meta = buf[desc_end:meta_end].copy().view(meta_dtype)  # a private copy, byte for byte
        alloc = np.array(buf[alloc_ptr:].view(ALLOC_DTYPE))

        try:
            self._ptrs, self._sizes = payload_tables(names, fields, meta, alloc, alloc_ptr, meta_end, page_size,
                                                     num_samples)
        except ValueError as exc:
            raise self._fail(str(exc)) from None
        if damage is not None:
            raise self._fail(damage)

        self.version = version
        self.page_size = page_size
        self.num_samples = num_samples
        self.names = names
        self.fields: dict[str, Field] = dict(zip(names, fields))
        self._field_list = fields
        self.metadata = meta
        self.alloc_table = alloc

    def _read_sidecar(self) -> dict:
        """The JSON sidecar (``{}`` when there is none), checked: an object whose known keys have
        the right types and which belongs to this very file."""
        side = sidecar_path(self.path)
        if not side.exists():
            return {}
        if not side.is_file():
            raise BetonError(f"{side}: the sidecar is not a regular file")
        try:
            info = json.loads(side.read_text())
        except (OSError, ValueError) as exc:
            raise BetonError(f"{side}: unreadable sidecar ({exc})") from None
        problem = sidecar_problem(info, self.num_samples, self.file_size, self._crc_table is not None)
        if problem:
            raise BetonError(f"{side}: {problem}")
        return info

    # -- access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return f"BetonReader({str(self.path)!r}, samples={self.num_samples}, fields={self.fields})"

    def _index(self, i) -> int:
        i = int(i)
        if i < 0:
            i += self.num_samples
        if not 0 <= i < self.num_samples:
            raise IndexError(f"sample {i} out of range for {self.num_samples} samples")
        return i

    def _field_index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise MissingField(f"{self.path}: has no field {name!r}; fields: {self.names}") from None

    def _decode(self, j: int, i: int):
        field = self._field_list[j]
        meta = self.metadata[f"f{j}"][i]
        payload = None
        if self._ptrs[j] is not None:
            p, n = int(self._ptrs[j][i]), int(self._sizes[j][i])
            payload = self._buf[p : p + n]
        try:
            return field.decode(meta, payload)
        except ValueError as exc:
            raise self._fail(f"sample {i}, field {self.names[j]!r}: {exc}") from None

    def check(self, indices=None) -> None:
        """Raise :class:`BetonError` naming the first sample of ``indices`` (default all) that no
        longer matches the CRC-32 written with the file; each sample is checked once per reader.
        Files without CRCs (other writers) pass unchecked. :meth:`verify` lists them all instead."""
        if checksum_source(self) is None:
            return
        if self._sample_check is None:
            self._sample_check = SampleCheck(self)
        self._sample_check(np.arange(self.num_samples) if indices is None else self._ids(indices))

    def _check(self, idx) -> None:
        """Reads of a ``checked`` reader: ``idx`` (ids in range) checked first."""
        if self.checked:
            self.check(idx)

    def _ids(self, indices) -> np.ndarray:
        """``indices`` as a flat int64 array of ids in range (negative ones count from the end)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -self.num_samples or idx.max() >= self.num_samples):
            raise IndexError(f"indices out of range for {self.num_samples} samples")
        return np.where(idx < 0, idx + self.num_samples, idx)

    def __getitem__(self, i):
        i = self._index(i)
        self._check(i)
        return tuple(self._decode(j, i) for j in range(len(self._field_list)))

    def payload(self, i, name: str) -> np.ndarray:
        """The stored bytes of a variable-size field of sample ``i`` (e.g. a JPEG), undecoded (a view)."""
        j, i = self._field_index(name), self._index(i)
        if self._ptrs[j] is None:
            raise TypeError(f"field {name!r} is a scalar field: it has no payload")
        self._check(i)
        p, n = int(self._ptrs[j][i]), int(self._sizes[j][i])
        return self._buf[p : p + n]

    def get(self, i, name: str):
        """One field of one sample."""
        j, i = self._field_index(name), self._index(i)
        self._check(i)
        return self._decode(j, i)

    def verify(self, indices=None) -> list[int]:
        """The samples (of ``indices``, default all) that no longer match the CRC-32 written with
        the file (:func:`fastvis.beton.integrity.verify`)."""
        return verify_samples(self, indices)

    def labels(self, name: str = "label") -> np.ndarray:
        """Class ids of an integer field, checked against the classes the sidecar declares (or
        a bound of MAX_CLASSES): a damaged id raises ``BetonError`` naming the sample."""
        j = self._field_index(name)
        if not isinstance(self._field_list[j], IntField):
            raise BetonError(f"{self.path}: field {name!r} is {type(self._field_list[j]).__name__}, not class ids "
                             "(IntField)")
        return check_class_ids(self.metadata[f"f{j}"].astype(np.int64), self.info.get("num_classes"),
                               f"{self.path}: field {name!r}")

    def column(self, name: str) -> np.ndarray:
        """A scalar field (int or float) for all samples, as a numpy array."""
        j = self._field_index(name)
        if self._ptrs[j] is not None:
            raise TypeError(f"field {name!r} is {type(self._field_list[j]).__name__}, not a scalar field")
        return self.metadata[f"f{j}"].copy()

    def _image_meta(self, name: str) -> np.ndarray:
        """The metadata column of an RGB field (TypeError naming the file for any other field)."""
        j = self._field_index(name)
        if not isinstance(self._field_list[j], RGBImageField):
            raise TypeError(f"{self.path}: field {name!r} is not an RGB image field; fields: {self.names}")
        return self.metadata[f"f{j}"]

    def image_sizes(self, name: str = "image") -> np.ndarray:
        """(N, 2) array of (height, width) of an RGB field, without decoding anything."""
        col = self._image_meta(name)
        return np.stack([col["height"], col["width"]], axis=1).astype(np.int64)

    def image_modes(self, name: str = "image") -> np.ndarray:
        """(N,) storage mode of each image of an RGB field (``MODE_RAW`` or ``MODE_JPEG``); a
        read-only view of the metadata."""
        return self._image_meta(name)["mode"]

    def read_batch(self, name: str, indices, out: np.ndarray | None = None, threads: int | None = None):
        """Gather field ``name`` of the samples ``indices`` into one array (the fast path).

        RGB fields give ``(N, H, W, 3)`` uint8 (all selected images must share one size; raw
        images are copied by a parallel numba loop, JPEG ones decoded on ``threads`` threads),
        NDArray fields ``(N, *shape)``, scalar fields ``(N,)``. ``out``, when given, is filled
        in place and returned. ``threads=1`` keeps all the work on the calling thread (for
        callers that run several gathers in their own threads).
        """
        j = self._field_index(name)
        field = self._field_list[j]
        idx = self._ids(indices)
        self._check(idx)
        meta = self.metadata[f"f{j}"][idx]
        spec = self.batch_spec(name, meta)
        if spec is None:
            if out is not None:
                raise TypeError(f"field {name!r} ({type(field).__name__}) cannot fill an array")
            return [self._decode(j, int(i)) for i in idx]
        out = _check_out(out, (idx.size, *spec[0]), spec[1])
        if idx.size:
            field.read_into(self, j, idx, meta, out, threads)
        return out

    def batch_spec(self, name: str, meta: np.ndarray | None = None):
        """``(shape, dtype)`` of one sample of field ``name`` in a batch (of the samples whose
        metadata is ``meta``; default all), or None for fields read as lists of values."""
        j = self._field_index(name)
        try:
            return self._field_list[j].batch_spec(self.metadata[f"f{j}"] if meta is None else meta)
        except ValueError as exc:
            raise InputError(f"{self.path}: field {name!r}: {exc}") from None

    def gather(self, j: int, idx: np.ndarray, nbytes: int, out2d: np.ndarray, threads: int | None = None) -> None:
        """Copy the first ``nbytes`` of the payloads of samples ``idx`` of field ``j`` into the
        rows of ``out2d`` (a parallel numba loop unless ``threads == 1``)."""
        from ._gather import gather_rows, gather_rows_serial

        ptrs = np.ascontiguousarray(self._ptrs[j][idx], np.int64)
        if ptrs.size:
            (gather_rows_serial if threads == 1 else gather_rows)(self._buf, ptrs, nbytes, out2d)

    def decode_into(self, j: int, idx: np.ndarray, out: np.ndarray, threads: int | None) -> None:
        """Decode samples ``idx`` of field ``j`` into ``out[k]``, on ``threads`` threads."""
        def one(k: int) -> None:
            out[k] = self._decode(j, int(idx[k]))

        workers = threads or min(8, os.cpu_count() or 1)
        if workers <= 1 or idx.size < 16:
            for k in range(idx.size):
                one(k)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(one, range(idx.size)))

    def close(self) -> None:
        """Drop the memory map (arrays already returned stay valid: they are copies)."""
        self._buf = np.zeros(0, np.uint8)
        self._mmap = None

    def __enter__(self) -> "BetonReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):
        return {"path": str(self.path), "checked": self.checked}

    def __setstate__(self, state):
        self.__init__(state["path"], state.get("checked", False))


def _check_out(out: np.ndarray | None, shape: tuple, dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype)
    if out.shape != tuple(shape) or out.dtype != np.dtype(dtype) or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {np.dtype(dtype)} array of shape {shape}, "
                         f"got {out.dtype} {out.shape}")
    return out
