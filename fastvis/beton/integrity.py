"""Integrity of .beton files written by fastvis: a CRC-32 per sample (its metadata record's
values and its payloads) recorded in the sidecar at writing time, checked by :func:`verify`;
the checks a sidecar itself must pass; and the bound on class ids."""
from __future__ import annotations

import base64
import functools
import zlib

import numpy as np

from .format import BetonError

__all__ = ["MAX_CLASSES", "checksum_record", "record_bytes", "sidecar_problem", "verify"]


@functools.lru_cache(maxsize=32)
def _packed(dtype: np.dtype) -> np.dtype:
    from numpy.lib import recfunctions

    return recfunctions.repack_fields(dtype, align=False, recurse=True)


def record_bytes(records: np.ndarray) -> bytes:
    """The values of metadata records as bytes, without the padding of their aligned layout
    (padding holds whatever memory held: it is not part of what a checksum covers)."""
    return records.astype(_packed(records.dtype)).tobytes()


def checksum_record(crc: np.ndarray) -> dict:
    """``{"algorithm": "crc32", "per_sample": base64 of little-endian uint32}``."""
    return {"algorithm": "crc32", "per_sample": base64.b64encode(crc.astype("<u4").tobytes()).decode("ascii")}


def verify(reader, indices=None) -> list[int]:
    """The samples (of ``indices``, default all) whose metadata record or payloads no longer
    match the CRC-32 the sidecar recorded when the file was written; ``[]`` when all match.
    ``BetonError`` when the sidecar holds no checksums (a file written without them)."""
    record = reader.info.get("checksums")
    if not isinstance(record, dict) or record.get("algorithm") != "crc32":
        raise BetonError(f"{reader.path}: no checksums to verify against (its sidecar records none)")
    try:
        expected = np.frombuffer(base64.b64decode(record["per_sample"]), "<u4")
    except (KeyError, ValueError, TypeError) as exc:
        raise BetonError(f"{reader.path}.json: unreadable checksums ({exc})") from None
    if len(expected) != reader.num_samples:
        raise BetonError(f"{reader.path}.json: {len(expected)} checksums for {reader.num_samples} samples")
    idx = range(reader.num_samples) if indices is None else [reader._index(i) for i in indices]
    records = record_bytes(reader.metadata)
    width = len(records) // max(reader.num_samples, 1)
    bad = []
    for i in idx:
        crc = 0
        for j in range(len(reader._field_list)):
            if reader._ptrs[j] is not None:
                p, n = int(reader._ptrs[j][i]), int(reader._sizes[j][i])
                crc = zlib.crc32(reader._buf[p : p + n], crc)
        crc = zlib.crc32(records[i * width : (i + 1) * width], crc)
        if crc != int(expected[i]):
            bad.append(i)
    return bad


MAX_CLASSES = 1 << 17  # class ids beyond this are damage, not classes


def sidecar_problem(info, samples: int, size: int) -> str | None:
    """What is wrong with a parsed sidecar, or None."""
    if not isinstance(info, dict):
        return f"expected a JSON object, got {type(info).__name__}"
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
