"""The integrity record fastvis writes into its files (per-sample CRC-32s and the header's CRC-32
with the sample and field counts, in the padding before the data pages): damage is caught with
no sidecar, and FFCV-style files without the record still open."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from fastvis.beton import BetonError, BetonReader, BetonWriter, FloatField, IntField, RGBImageField
from fastvis.beton.format import GUARD_MAGIC, HEADER_DTYPE
from fastvis.cli.inspect import describe

N = 40


@pytest.fixture(scope="module")
def scalars(tmp_path_factory):
    """Scalar fields only (no data pages, no allocations): the case where counts could change unseen."""
    path = tmp_path_factory.mktemp("guard") / "s.beton"
    rng = np.random.default_rng(5)
    with BetonWriter(path, {"label": IntField(), "weight": FloatField()}, capacity=N + 7, page_size=1 << 12) as w:
        for i in range(N):
            w.write((int(rng.integers(0, 10)), float(rng.random())))
    return path


def _flip(path, dst, offset, bit):
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 1 << bit
    dst.write_bytes(bytes(raw))
    return dst


def test_every_bit_of_the_sample_and_field_counts_is_caught_without_a_sidecar(scalars, tmp_path):
    num_fields = HEADER_DTYPE.fields["num_fields"][1]
    num_samples = HEADER_DTYPE.fields["num_samples"][1]
    missed = []
    for offset, nbytes in ((num_fields, 2), (num_samples, 8)):
        for k in range(8 * nbytes):
            bad = _flip(scalars, tmp_path / "c.beton", offset + k // 8, k % 8)
            try:
                BetonReader(bad)
            except BetonError as exc:
                assert str(bad) in str(exc)
                continue
            missed.append((offset, k))
    assert not missed
    bad = _flip(scalars, tmp_path / "c.beton", num_samples, 0)  # 40 -> 41 samples
    with pytest.raises(BetonError, match="the header says 41 samples, the file was written with 40"):
        BetonReader(bad)


def test_every_flip_of_a_scalar_record_is_named_without_a_sidecar(scalars, tmp_path):
    from fastvis.beton.format import FIELD_DESC_DTYPE

    r = BetonReader(scalars)
    assert r.info == {} and r.verify() == []
    base = HEADER_DTYPE.itemsize + 2 * FIELD_DESC_DTYPE.itemsize  # the metadata table
    width = r.metadata.dtype.itemsize
    labels, weights = r.column("label").copy(), r.column("weight").copy()
    for i in (0, 17, N - 1):
        for field in ("f0", "f1"):  # the label's and the weight's record
            bad = _flip(scalars, tmp_path / "m.beton", base + i * width + r.metadata.dtype.fields[field][1], 1)
            got = BetonReader(bad)
            assert got.verify() == [i]
            changed = got.column("label") != labels if field == "f0" else got.column("weight") != weights
            assert list(np.flatnonzero(changed)) == [i]  # the damage is real, and it is named


def test_a_record_removed_from_a_file_whose_sidecar_promised_one_is_refused(tmp_path, rng):
    from PIL import Image

    from fastvis.convert import convert
    from fastvis.sources import ImageFolderSource

    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    out = tmp_path / "o.beton"
    convert(ImageFolderSource(tmp_path / "imgs"), out, progress=False)
    assert BetonReader(out).verify() == []
    raw = bytearray(out.read_bytes())
    at = bytes(raw).index(GUARD_MAGIC)
    raw[at] ^= 1
    out.write_bytes(bytes(raw))
    with pytest.raises(BetonError, match="o.beton.json: the file was written with an integrity record, which is "
                                         "now missing or damaged"):
        BetonReader(out)


def test_files_without_the_record_open_and_verify_from_an_older_sidecar(tmp_path, rng):
    path = tmp_path / "old.beton"
    with BetonWriter(path, {"image": RGBImageField(), "label": IntField()}, capacity=5, page_size=1 << 12) as w:
        for i in range(5):
            w.write((rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), i))
    crc = BetonReader(path)._crc_table
    raw = bytearray(path.read_bytes())
    at = bytes(raw).index(GUARD_MAGIC)
    raw[at : at + len(GUARD_MAGIC)] = bytes(len(GUARD_MAGIC))  # as written by FFCV or an older fastvis
    path.write_bytes(bytes(raw))
    r = BetonReader(path)
    assert len(r) == 5 and r._crc_table is None
    with pytest.raises(BetonError, match="no checksums to verify against"):
        r.verify()
    assert describe(str(path))["checksums"] is None  # fastvis-inspect: "none (written by another program) ..."
    side = {"checksums": {"algorithm": "crc32", "per_sample": base64.b64encode(crc.astype("<u4").tobytes()).decode()}}
    (tmp_path / "old.beton.json").write_text(json.dumps(side))
    assert BetonReader(path).verify() == [] and describe(str(path))["checksums"] == "sidecar"
