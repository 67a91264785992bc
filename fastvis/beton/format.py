"""On-disk layout of a ``.beton`` file (FFCV's format, version 2).

A file is, in order::

    header               HEADER_DTYPE, 24 bytes
    field descriptors    FIELD_DESC_DTYPE x num_fields (type id, 16-byte name, 1024-byte arguments)
    metadata table       one fixed-size record per sample, the fields' records side by side (aligned)
    (zero padding up to the next page boundary; fastvis ends it with its integrity record,
    which FFCV's readers never look at: a CRC-32 per sample, then GUARD_DTYPE, ending where
    the data pages begin)
    data pages           page_size bytes each, page_size a power of two; a sample's
                         variable-size payloads never straddle two pages
    allocation table     ALLOC_DTYPE x n: (sample_id, ptr, size) of every payload, to the end of the file

All integers are little-endian. Pointers are absolute file offsets. Nothing here needs torch.
"""
from __future__ import annotations

import numpy as np

VERSION = 2

HEADER_DTYPE = np.dtype(
    [
        ("version", "<u2"),
        ("num_fields", "<u2"),
        ("page_size", "<u4"),
        ("num_samples", "<u8"),
        ("alloc_table_ptr", "<u8"),
    ],
    align=True,
)

ARGS_SIZE = 1024
NAME_SIZE = 16

FIELD_DESC_DTYPE = np.dtype(
    [
        ("type_id", "<u1"),
        ("name", ("<u1", NAME_SIZE)),
        ("arguments", ("<u1", ARGS_SIZE)),
    ],
    align=True,
)

ALLOC_DTYPE = np.dtype([("sample_id", "<u8"), ("ptr", "<u8"), ("size", "<u8")])

# fastvis's integrity record, in the padding before the data pages (see integrity.py): the
# counts the file was written with and a CRC-32 of its header and field descriptors.
GUARD_MAGIC = b"fvguard1"
GUARD_DTYPE = np.dtype([("magic", "S8"), ("num_samples", "<u8"), ("header_crc", "<u4"), ("num_fields", "<u2"),
                        ("reserved", "<u2")])

# Type ids, as FFCV numbers them. 6 (a torch tensor) is stored exactly like an NDArray.
TYPE_FLOAT = 0
TYPE_INT = 1
TYPE_RGB = 2
TYPE_BYTES = 3
TYPE_NDARRAY = 4
TYPE_JSON = 5
TYPE_TORCH = 6

# Image storage modes of the RGB field.
MODE_JPEG = 0
MODE_RAW = 1

DEFAULT_PAGE_SIZE = 1 << 23  # 8 MiB, FFCV's default
MIN_PAGE_SIZE = 1 << 12  # we accept small pages (tests); FFCV's own writer uses >= 2 MiB
MAX_PAGE_SIZE = 1 << 31  # page_size is a uint32 on disk
MAX_FIELDS = 256


class BetonError(Exception):
    """A ``.beton`` file is malformed, truncated or of an unknown kind; the message names the file."""


class MissingField(BetonError, KeyError):
    """The file has no field of that name (a ``KeyError`` too)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def is_power_of_two(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


def align_up(offset: int, page_size: int) -> int:
    """Smallest multiple of ``page_size`` that is >= ``offset``."""
    return -(-offset // page_size) * page_size


def metadata_dtype(field_dtypes) -> np.dtype:
    """Record of one sample: each field's metadata side by side, C-aligned as FFCV lays it out."""
    return np.dtype([(f"f{i}", dt) for i, dt in enumerate(field_dtypes)], align=True)


def encode_name(name: str) -> np.ndarray:
    raw = name.encode("ascii")
    if len(raw) > NAME_SIZE:
        raise ValueError(f"field name {name!r} is longer than {NAME_SIZE} ASCII characters")
    out = np.zeros(NAME_SIZE, np.uint8)
    out[: len(raw)] = np.frombuffer(raw, np.uint8)
    return out


def decode_name(raw: np.ndarray) -> str:
    data = bytes(raw).split(b"\0", 1)[0]
    return data.decode("ascii", errors="replace")
