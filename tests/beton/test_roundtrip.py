"""Writing and reading back every field type; layout invariants; atomic writes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastvis.beton import (
    BetonError,
    BetonReader,
    BetonWriter,
    BytesField,
    FloatField,
    IntField,
    JSONField,
    NDArrayField,
    RGBImageField,
)
from fastvis.beton.format import ALLOC_DTYPE, FIELD_DESC_DTYPE, HEADER_DTYPE

PAGE = 1 << 14  # small pages so that a few samples fill several of them


def all_fields():
    return {
        "image": RGBImageField(),
        "label": IntField(),
        "weight": FloatField(),
        "blob": BytesField(),
        "meta": JSONField(),
        "scan": NDArrayField(np.uint16, (5, 7)),
        "photo": RGBImageField("jpeg", jpeg_quality=95),
    }


def make_samples(rng, n):
    out = []
    for i in range(n):
        h, w = rng.integers(1, 40, size=2)
        out.append(
            (
                rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                int(rng.integers(-(2**62), 2**62)),
                float(rng.standard_normal()),
                rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes(),
                {"i": i, "name": f"sample-{i}", "nested": [1, 2.5, None, "é"]},
                rng.integers(0, 65536, (5, 7), dtype=np.uint16),
                np.full((24, 16, 3), (i * 7) % 256, np.uint8),  # flat: JPEG keeps it nearly exact
            )
        )
    return out


@pytest.fixture
def written(tmp_path, rng):
    samples = make_samples(rng, 150)
    path = tmp_path / "all.beton"
    with BetonWriter(path, all_fields(), capacity=200, page_size=PAGE) as w:
        for s in samples:
            w.write(s)
    return path, samples


def test_roundtrip_every_field_type(written):
    path, samples = written
    r = BetonReader(path)
    assert len(r) == len(samples)
    assert list(r.fields) == list(all_fields())
    assert r.fields["scan"] == NDArrayField(np.uint16, (5, 7))
    for i, s in enumerate(samples):
        img, label, weight, blob, meta, scan, photo = r[i]
        assert img.dtype == np.uint8 and np.array_equal(img, s[0])
        assert label == s[1] and weight == s[2]
        assert bytes(blob) == s[3]
        assert meta == s[4]
        assert scan.dtype == np.uint16 and np.array_equal(scan, s[5])
        assert photo.shape == (24, 16, 3)
        assert np.abs(photo.astype(int) - s[6].astype(int)).max() <= 2
    assert np.array_equal(r[-1][0], samples[-1][0])
    with pytest.raises(IndexError):
        r[len(samples)]


def test_layout_matches_ffcv_conventions(written):
    path, samples = written
    raw = path.read_bytes()
    header = np.frombuffer(raw[: HEADER_DTYPE.itemsize], HEADER_DTYPE)[0]
    assert header["version"] == 2 and header["num_fields"] == 7 and header["page_size"] == PAGE
    assert header["num_samples"] == len(samples)
    alloc = np.frombuffer(raw[int(header["alloc_table_ptr"]) :], ALLOC_DTYPE)
    # one allocation per payload field per sample (5 payload fields)
    assert len(alloc) == 5 * len(samples)
    # a sample's payloads all sit on one page, and the data region starts on a page boundary
    first_data = HEADER_DTYPE.itemsize + 7 * FIELD_DESC_DTYPE.itemsize
    assert alloc["ptr"].min() >= first_data and alloc["ptr"].min() % PAGE == 0
    for sid in range(len(samples)):
        mine = alloc[alloc["sample_id"] == sid]
        ends = {int(p + s - 1) // PAGE for p, s in zip(mine["ptr"], mine["size"]) if s}
        pages = {int(p) // PAGE for p in mine["ptr"]} | ends
        assert len(pages) == 1, f"sample {sid} spans pages {pages}"
    # the allocation table starts after whole pages
    assert (int(header["alloc_table_ptr"]) - alloc["ptr"].min()) % PAGE == 0


def test_read_batch_gathers_in_any_order(tmp_path, rng):
    images = rng.integers(0, 256, (300, 8, 6, 3), dtype=np.uint8)
    scans = rng.integers(0, 65536, (300, 4, 4), dtype=np.uint16)
    path = tmp_path / "b.beton"
    with BetonWriter(path, {"image": RGBImageField(), "label": IntField(), "scan": NDArrayField(np.uint16, (4, 4))},
                     capacity=300, page_size=1 << 12) as w:
        for i in range(300):
            w.write({"image": images[i], "label": i, "scan": scans[i]})
    r = BetonReader(path)
    idx = rng.permutation(300)[:77]
    out = np.zeros((77, 8, 6, 3), np.uint8)
    assert r.read_batch("image", idx, out=out) is out
    assert np.array_equal(out, images[idx])
    assert np.array_equal(r.read_batch("scan", idx), scans[idx])
    assert np.array_equal(r.read_batch("label", idx), idx)
    assert np.array_equal(r.column("label"), np.arange(300))
    assert r.read_batch("image", []).shape[0] == 0
    with pytest.raises(ValueError):
        r.read_batch("image", idx, out=np.zeros((77, 8, 6, 3), np.float32))
    with pytest.raises(IndexError):
        r.read_batch("image", [300])
    with pytest.raises(KeyError):
        r.read_batch("nope", [0])


def test_read_batch_decodes_jpeg_and_refuses_mixed_sizes(tmp_path, rng):
    path = tmp_path / "j.beton"
    flat = [np.full((10, 12, 3), v, np.uint8) for v in range(0, 250, 10)]
    with BetonWriter(path, {"image": RGBImageField("jpeg", 95)}, capacity=len(flat) + 1) as w:
        for img in flat:
            w.write((img,))
        w.write((np.zeros((5, 5, 3), np.uint8),))
    r = BetonReader(path)
    got = r.read_batch("image", range(len(flat)))
    assert np.abs(got.astype(int) - np.stack(flat).astype(int)).max() <= 2
    with pytest.raises(ValueError, match="differ in size"):
        r.read_batch("image", [0, len(flat)])


def test_capacity_and_sample_errors(tmp_path):
    path = tmp_path / "c.beton"
    with BetonWriter(path, {"label": IntField()}, capacity=2) as w:
        w.write((1,))
        w.write({"label": 2})
        with pytest.raises(ValueError, match="capacity"):
            w.write((3,))
    assert len(BetonReader(path)) == 2
    with BetonWriter(tmp_path / "d.beton", {"image": RGBImageField()}, capacity=3, page_size=1 << 12) as w:
        with pytest.raises(ValueError, match="larger page_size"):
            w.write((np.zeros((40, 40, 3), np.uint8),))
        with pytest.raises(ValueError, match="uint8"):
            w.write((np.zeros((4, 4, 3), np.float32),))
    with pytest.raises(ValueError, match="power of two"):
        BetonWriter(tmp_path / "e.beton", {"label": IntField()}, capacity=1, page_size=5000)
    with pytest.raises(ValueError, match="16"):
        BetonWriter(tmp_path / "e.beton", {"a_name_longer_than_16": IntField()}, capacity=1)


def test_empty_file_is_valid(tmp_path):
    path = tmp_path / "empty.beton"
    with BetonWriter(path, {"image": RGBImageField(), "label": IntField()}, capacity=10):
        pass
    r = BetonReader(path)
    assert len(r) == 0 and list(r.fields) == ["image", "label"]


def test_failed_write_leaves_nothing_and_keeps_old_file(tmp_path):
    path = tmp_path / "out.beton"
    path.write_bytes(b"previous contents")
    with pytest.raises(RuntimeError):
        with BetonWriter(path, {"label": IntField()}, capacity=5) as w:
            w.write((1,))
            raise RuntimeError("source broke")
    assert path.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.beton"]


KILL_SCRIPT = r"""
import sys, time, numpy as np
from fastvis.beton import BetonWriter, RGBImageField, IntField
with BetonWriter(sys.argv[1], {"image": RGBImageField(), "label": IntField()}, capacity=10**6, page_size=1 << 16) as w:
    for i in range(10**6):
        w.write((np.zeros((32, 32, 3), np.uint8), i))
        if i == 100:
            print("writing", flush=True)
        if i > 100:
            time.sleep(0.001)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killed_writer_leaves_no_output(tmp_path):
    out = tmp_path / "killed.beton"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    parts = [p for p in tmp_path.iterdir()]
    assert all(p.name.endswith(".part") and p.name.startswith(".") for p in parts)


def test_reader_rejects_non_files(tmp_path):
    with pytest.raises(BetonError, match="no such file"):
        BetonReader(tmp_path / "missing.beton")
    with pytest.raises(BetonError, match="folder"):
        BetonReader(tmp_path)
    (tmp_path / "zero.beton").write_bytes(b"")
    with pytest.raises(BetonError, match="truncated"):
        BetonReader(tmp_path / "zero.beton")
    (tmp_path / "text.beton").write_bytes(b"hello, this is not a beton file at all" * 10)
    with pytest.raises(BetonError, match="version"):
        BetonReader(tmp_path / "text.beton")


def test_reader_pickles(written):
    import pickle

    path, samples = written
    r = pickle.loads(pickle.dumps(BetonReader(path)))
    assert np.array_equal(r[3][0], samples[3][0])


def test_the_page_size_follows_the_data_and_a_later_large_sample_still_fits(tmp_path):
    """A few small samples make a small file (not 16 MB of 8 MiB pages); a sample larger than the
    chosen page later on restarts the conversion with FFCV's pages instead of failing."""
    from fastvis.beton.format import DEFAULT_PAGE_SIZE
    from fastvis.convert import convert, page_size_for
    from fastvis.sources import Source

    class Listed(Source):
        def __init__(self, blobs):
            super().__init__()
            self.blobs = blobs
            self.fields = {"data": BytesField(), "label": IntField()}
            self.info = {"classes": ["a"], "num_classes": 1}

        def __len__(self):
            return len(self.blobs)

        def __iter__(self):
            for b in self.blobs:
                yield np.frombuffer(b, np.uint8), 0

    small = Listed([bytes([k]) * 3000 for k in range(23)])
    assert page_size_for(small) == 1 << 18
    summary = convert(small, tmp_path / "small.beton", progress=False)
    assert summary.bytes < 1 << 20
    grown = Listed([b"x" * 3000] * 5 + [b"y" * 500_000])  # the sixth is larger than a 256 KiB page
    assert page_size_for(grown) < 500_000
    summary = convert(grown, tmp_path / "grown.beton", progress=False)
    r = BetonReader(tmp_path / "grown.beton")
    assert r.page_size == DEFAULT_PAGE_SIZE and bytes(r[5][0]) == b"y" * 500_000
    assert len(r) == 6 and summary.samples == 6
