"""Damaged files: every read of a mutated file returns well-formed data or raises BetonError.

Mutations (fixed seeds): truncation at many offsets, and single-bit flips in the header, the
field descriptors, the metadata table, the allocation table and the data pages.
"""
from __future__ import annotations

import numpy as np
import pytest

from fastvis.beton import (
    BetonError,
    BetonReader,
    BetonWriter,
    BytesField,
    IntField,
    JSONField,
    NDArrayField,
    RGBImageField,
)
from fastvis.beton.format import ALLOC_DTYPE, FIELD_DESC_DTYPE, HEADER_DTYPE

N = 24


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    rng = np.random.default_rng(11)
    path = tmp_path_factory.mktemp("corrupt") / "valid.beton"
    yy, xx = np.mgrid[0:12, 0:16]
    fields = {
        "image": RGBImageField(),
        "photo": RGBImageField("jpeg"),
        "label": IntField(),
        "scan": NDArrayField(np.uint16, (3, 5)),
        "blob": BytesField(),
        "doc": JSONField(),
    }
    with BetonWriter(path, fields, capacity=N, page_size=1 << 12) as w:
        for i in range(N):
            w.write((
                rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
                np.stack([(yy * 3 + xx * (i % 5) + 40 * c) % 256 for c in range(3)], -1).astype(np.uint8),
                i % 10,
                rng.integers(0, 65536, (3, 5), dtype=np.uint16),
                rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8).tobytes(),
                {"i": i, "name": "x" * (i % 4)},
            ))
    data = path.read_bytes()
    header = np.frombuffer(data[: HEADER_DTYPE.itemsize], HEADER_DTYPE)[0]
    desc_end = HEADER_DTYPE.itemsize + len(fields) * FIELD_DESC_DTYPE.itemsize
    meta_end = desc_end + N * BetonReader(path).metadata.dtype.itemsize
    regions = {
        "header": (0, HEADER_DTYPE.itemsize),
        "descriptors": (HEADER_DTYPE.itemsize, desc_end),
        "metadata": (desc_end, meta_end),
        "data": (int(np.frombuffer(data[int(header["alloc_table_ptr"]):], ALLOC_DTYPE)["ptr"].min()),
                 int(header["alloc_table_ptr"])),
        "alloc_table": (int(header["alloc_table_ptr"]), len(data)),
    }
    return data, regions


def check_well_formed(reader: BetonReader) -> None:
    """Read everything; assert each value has the shape and type its field promises."""
    for i in range(len(reader)):
        values = reader[i]
        for (name, field), value in zip(reader.fields.items(), values):
            if isinstance(field, RGBImageField):
                h, w = reader.image_sizes(name)[i]
                assert isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.shape == (h, w, 3)
            elif isinstance(field, NDArrayField):
                assert value.dtype == field.dtype and value.shape == field.shape
            elif isinstance(field, IntField):
                assert isinstance(value, int)
            elif isinstance(field, BytesField) and not isinstance(field, JSONField):
                assert value.dtype == np.uint8 and value.ndim == 1
    for name, field in reader.fields.items():
        if isinstance(field, RGBImageField):
            sizes = reader.image_sizes(name)
            if len(sizes) and (sizes == sizes[0]).all():
                batch = reader.read_batch(name, np.arange(len(reader))[::-1])
                assert batch.shape == (len(reader), *sizes[0], 3)
        elif isinstance(field, NDArrayField):
            assert reader.read_batch(name, range(len(reader))).shape == (len(reader), *field.shape)


def outcome(path) -> str:
    try:
        reader = BetonReader(path)
    except BetonError as exc:
        assert str(path) in str(exc), "the error must name the file"
        return "error"
    try:
        check_well_formed(reader)
    except BetonError as exc:
        assert str(path) in str(exc)
        return "error"
    return "ok"


def test_truncation_at_many_offsets(valid, tmp_path):
    data, regions = valid
    rng = np.random.default_rng(0)
    offsets = set(range(0, 200)) | set(rng.integers(0, len(data) - 1, 150).tolist())
    offsets |= {lo for lo, _ in regions.values()} | {len(data) - k for k in (1, 8, 23, 24, 25)}
    path = tmp_path / "cut.beton"
    seen = {"ok": 0, "error": 0}
    for off in sorted(offsets):
        path.write_bytes(data[:off])
        seen[outcome(path)] += 1
    # a file cut anywhere loses (part of) its allocation table: it must never read as valid
    assert seen["ok"] == 0, seen


@pytest.mark.parametrize("region,flips", [("header", None), ("descriptors", 120), ("metadata", 150),
                                          ("alloc_table", 150), ("data", 80)])
def test_bit_flips(valid, tmp_path, region, flips):
    data, regions = valid
    lo, hi = regions[region]
    rng = np.random.default_rng(hash(region) % 2**32)
    bits = np.arange(lo * 8, hi * 8) if flips is None else rng.integers(lo * 8, hi * 8, flips)
    path = tmp_path / "flip.beton"
    seen = {"ok": 0, "error": 0}
    for bit in bits:
        buf = bytearray(data)
        buf[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(buf))
        seen[outcome(path)] += 1
    assert seen["ok"] + seen["error"] == len(bits)
    if region in ("header", "alloc_table"):
        assert seen["error"] > 0


def test_unknown_field_type_is_named(valid, tmp_path):
    data, regions = valid
    buf = bytearray(data)
    buf[regions["descriptors"][0]] = 77  # type id of the first field
    path = tmp_path / "unknown.beton"
    path.write_bytes(bytes(buf))
    with pytest.raises(BetonError, match="unknown field type id 77"):
        BetonReader(path)


def test_allocation_past_end_is_named(valid, tmp_path):
    data, regions = valid
    buf = bytearray(data)
    lo = regions["alloc_table"][0]
    entry = np.frombuffer(bytes(buf[lo : lo + 24]), ALLOC_DTYPE).copy()
    entry["ptr"] = len(data) * 4
    buf[lo : lo + 24] = entry.tobytes()
    path = tmp_path / "past.beton"
    path.write_bytes(bytes(buf))
    with pytest.raises(BetonError, match="past the end|outside"):
        BetonReader(path)


def test_wrong_version_is_named(valid, tmp_path):
    data, _ = valid
    path = tmp_path / "v1.beton"
    path.write_bytes(b"\x01\x00" + data[2:])
    with pytest.raises(BetonError, match="version"):
        BetonReader(path)
