"""Integrity of .beton files written by fastvis: a CRC-32 per sample (its metadata record's
values and its payloads) and a CRC-32 of the header and field descriptors, with the sample and
field counts, written into the file itself at writing time (in the padding before the data
pages, which FFCV's readers skip: the file stays an FFCV file); the header check runs on every
open, the per-sample check in :func:`verify`. Also: the checks a sidecar must pass, and the
bound on class ids. Files written before the in-file record carry the per-sample CRCs in their
sidecar; :func:`verify` reads them there."""
from __future__ import annotations

import base64
import functools
import zlib

import numpy as np

from .format import ALLOC_DTYPE, GUARD_DTYPE, GUARD_MAGIC, HEADER_DTYPE, BetonError

__all__ = ["MAX_CLASSES", "SampleCheck", "check_class_ids", "check_guard", "checksum_source", "crc_table",
           "expected_crcs", "find_guard", "guard_bytes", "record_bytes", "sidecar_problem", "verify"]


@functools.lru_cache(maxsize=32)
def _packed(dtype: np.dtype) -> np.dtype:
    from numpy.lib import recfunctions

    return recfunctions.repack_fields(dtype, align=False, recurse=True)


def record_bytes(records: np.ndarray) -> bytes:
    """The values of metadata records as bytes, without the padding of their aligned layout
    (padding holds whatever memory held: it is not part of what a checksum covers)."""
    return records.astype(_packed(records.dtype)).tobytes()


def guard_bytes(crc: np.ndarray, header_and_descriptors: bytes, num_samples: int, num_fields: int) -> bytes:
    """The in-file integrity record: the per-sample CRC-32s, then GUARD_DTYPE (written so that
    it ends where the data pages begin)."""
    guard = np.zeros(1, GUARD_DTYPE)
    guard["magic"] = GUARD_MAGIC
    guard["num_samples"] = num_samples
    guard["num_fields"] = num_fields
    guard["header_crc"] = zlib.crc32(header_and_descriptors)
    return crc.astype("<u4").tobytes() + guard.tobytes()


def find_guard(buf: np.ndarray, size: int, alloc_ptr: int, page_size: int):
    """``(guard record, its offset)`` when the file carries fastvis's integrity record, else None
    (a file from another writer, or one damaged where the record would be found). The record ends
    where the data pages begin: at the page of the lowest payload, or, with no payloads, at the
    allocation table."""
    if not HEADER_DTYPE.itemsize < alloc_ptr <= size or (size - alloc_ptr) % ALLOC_DTYPE.itemsize:
        return None
    end = alloc_ptr
    if size > alloc_ptr:
        low = int(buf[alloc_ptr:size].view(ALLOC_DTYPE)["ptr"].min())
        end = low - low % page_size
    at = end - GUARD_DTYPE.itemsize
    if not HEADER_DTYPE.itemsize <= at < end <= size:
        return None
    guard = buf[at:end].view(GUARD_DTYPE)[0]
    return (guard, at) if bytes(guard["magic"]) == GUARD_MAGIC else None


def check_guard(buf, size, alloc_ptr, page_size, num_samples, num_fields, desc_end) -> tuple[str | None, int | None]:
    """``(damage, offset)``: what the integrity record says is wrong with the header (or None),
    and where the record lies when the file has one and the header matches it (else None)."""
    guard = find_guard(buf, size, alloc_ptr, page_size)
    if guard is None:
        return None, None
    record, at = guard
    for what, now, then in (("samples", num_samples, int(record["num_samples"])),
                            ("fields", num_fields, int(record["num_fields"]))):
        if now != then:
            return f"damaged: the header says {now} {what}, the file was written with {then}", None
    if desc_end > at or zlib.crc32(buf[:desc_end]) != int(record["header_crc"]):
        return "damaged header or field descriptors (they no longer match the CRC-32 written with the file)", None
    return None, at


def crc_table(buf, at: int, num_samples: int, meta_end: int, path) -> np.ndarray:
    """The per-sample CRC-32s that end at the record at ``at``."""
    start = at - 4 * num_samples
    if start < meta_end:
        raise BetonError(f"{path}: damaged: its integrity record overlaps the metadata")
    return buf[start:at].view("<u4").copy()


def checksum_source(reader) -> str | None:
    """Where a file's per-sample CRC-32s are: ``"file"`` (fastvis writes them there), ``"sidecar"``
    (older fastvis files), or None (a file from another writer: nothing to verify against)."""
    if reader._crc_table is not None:
        return "file"
    record = reader.info.get("checksums")
    return "sidecar" if isinstance(record, dict) and record.get("algorithm") == "crc32" else None


def expected_crcs(reader) -> np.ndarray:
    """The per-sample CRC-32s written with a file (in the file, or for older files in the
    sidecar); ``BetonError`` when there are none (a file from another writer)."""
    source = checksum_source(reader)
    if source is None:
        raise BetonError(f"{reader.path}: no checksums to verify against (not written by fastvis, and its "
                         "sidecar records none)")
    if source == "file":
        return reader._crc_table
    try:
        expected = np.frombuffer(base64.b64decode(reader.info["checksums"]["per_sample"]), "<u4")
    except (KeyError, ValueError, TypeError) as exc:
        raise BetonError(f"{reader.path}.json: unreadable checksums ({exc})") from None
    if len(expected) != reader.num_samples:
        raise BetonError(f"{reader.path}.json: {len(expected)} checksums for {reader.num_samples} samples")
    return expected


class SampleCheck:
    """Checks samples of a reader against the CRC-32s written with the file, each sample once
    (the training path: a resident loader checks every sample as it loads, a streaming one each
    batch the first time it is read)."""

    def __init__(self, reader):
        self.reader = reader
        self.expected = expected_crcs(reader)
        self.records = record_bytes(reader.metadata)
        self.width = len(self.records) // max(reader.num_samples, 1)
        self.payloads = [(reader._ptrs[j], reader._sizes[j]) for j in range(len(reader._field_list))
                         if reader._ptrs[j] is not None]
        self.good = np.zeros(reader.num_samples, bool)

    def bad(self, idx) -> list[int]:
        """The samples of ``idx`` (in range) that no longer match their CRC-32."""
        buf, records, width, expected = self.reader._buf, self.records, self.width, self.expected
        bad = []
        for i in idx:
            i = int(i)
            crc = 0
            for ptrs, sizes in self.payloads:
                p = int(ptrs[i])
                crc = zlib.crc32(buf[p : p + int(sizes[i])], crc)
            if zlib.crc32(records[i * width : (i + 1) * width], crc) != int(expected[i]):
                bad.append(i)
        return bad

    def __call__(self, idx: np.ndarray) -> None:
        """Raise ``BetonError`` naming the first sample of ``idx`` (in range) that is damaged."""
        todo = idx[~self.good[idx]]
        if not todo.size:
            return
        todo = np.unique(todo)
        bad = self.bad(todo)
        if bad:
            more = f" (and {len(bad) - 1} more of the {todo.size} read with it)" if len(bad) > 1 else ""
            raise BetonError(f"{self.reader.path}: sample {bad[0]} no longer matches the CRC-32 written with the "
                             f"file{more}: the file is damaged; `fastvis-inspect --verify` lists every damaged "
                             "sample (convert it again, or --no-checksums to train on it anyway)")
        self.good[todo] = True


def verify(reader, indices=None) -> list[int]:
    """The samples (of ``indices``, default all) whose metadata record or payloads no longer
    match the CRC-32 written with the file (:func:`expected_crcs`); ``[]`` when all match."""
    idx = range(reader.num_samples) if indices is None else [reader._index(i) for i in indices]
    return SampleCheck(reader).bad(idx)


MAX_CLASSES = 1 << 17  # class ids beyond this are damage, not classes


def check_class_ids(y: np.ndarray, declared, where: str) -> np.ndarray:
    """``y``, once every id lies in ``0..declared - 1`` (the sidecar's class count, or else
    MAX_CLASSES): a damaged id raises ``BetonError`` naming the sample."""
    bound = int(declared) if declared else MAX_CLASSES
    bad = (y < 0) | (y >= bound)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        limit = f"the sidecar declares {bound} classes" if declared else f"at most {MAX_CLASSES} classes"
        raise BetonError(f"{where}: sample {i} has class id {int(y[i])}, outside 0..{bound - 1} ({limit}); "
                         "the file is damaged")
    return y


def sidecar_problem(info, samples: int, size: int, guarded: bool) -> str | None:
    """What is wrong with a parsed sidecar, or None; ``guarded``: the file carries its integrity
    record."""
    if not isinstance(info, dict):
        return f"expected a JSON object, got {type(info).__name__}"
    if info.get("integrity") == "crc32 in file" and not guarded:
        return "the file was written with an integrity record, which is now missing or damaged"
    k = info.get("num_classes")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= MAX_CLASSES):
        return f"num_classes must be a whole number in 0..{MAX_CLASSES}, got {k!r}"
    classes = info.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        return "classes must be a list of names"
    if classes is not None and k is not None and len(classes) != k:
        return f"lists {len(classes)} class names for {k} classes"
    n = info.get("num_samples")
    if n is not None and n != samples:
        return f"describes {n} samples, the file holds {samples}: it belongs to another version of the file"
    b = info.get("beton_bytes")
    if b is not None and b != size:
        return f"describes a file of {b} bytes, the file has {size}: it belongs to another version of the file"
    return None
