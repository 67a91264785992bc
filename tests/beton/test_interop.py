"""Interoperability with the reference implementation (ffcv 1.0.2): each reads the other's files."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from fastvis.beton import BetonReader, BetonWriter, FloatField, IntField, NDArrayField, RGBImageField

pytestmark = pytest.mark.interop

N = 200


def ffcv_load(path, pipelines_by_name, batch_size=64):
    """Read a whole file through ffcv's Loader, in file order; returns one array per field."""
    from ffcv.loader import Loader, OrderOption

    loader = Loader(str(path), batch_size=batch_size, num_workers=2, order=OrderOption.SEQUENTIAL,
                    drop_last=False, pipelines=pipelines_by_name)
    parts = [[np.array(x) for x in batch] for batch in loader]  # ffcv reuses its buffers: copy
    return [np.concatenate(col) for col in zip(*parts)]


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(7)
    return {
        "image": rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8),
        "label": rng.integers(-5, 100, N),
        "score": rng.standard_normal(N),
        "scan": rng.integers(0, 65536, (N, 6, 9), dtype=np.uint16),
    }


def test_ffcv_loader_reads_fastvis_file_bit_exactly(ffcv, tmp_path, samples):
    from ffcv.fields.decoders import FloatDecoder, IntDecoder, NDArrayDecoder, SimpleRGBImageDecoder

    path = tmp_path / "ours.beton"
    fields = {"image": RGBImageField(), "label": IntField(), "score": FloatField(),
              "scan": NDArrayField(np.uint16, (6, 9))}
    with BetonWriter(path, fields, capacity=N) as w:
        for i in range(N):
            w.write({k: v[i] for k, v in samples.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ffcv warns about uint16
        image, label, score, scan = ffcv_load(path, {
            "image": [SimpleRGBImageDecoder()], "label": [IntDecoder()],
            "score": [FloatDecoder()], "scan": [NDArrayDecoder()],
        })
    assert np.array_equal(image, samples["image"])
    assert np.array_equal(label.ravel(), samples["label"])
    assert np.array_equal(score.ravel(), samples["score"])
    assert scan.dtype == np.uint16 and np.array_equal(scan, samples["scan"])


def test_ffcv_loader_reads_a_fastvis_file_of_scalar_fields_only(ffcv, tmp_path, samples):
    """No data pages at all (the integrity record ends where they would begin)."""
    from ffcv.fields.decoders import FloatDecoder, IntDecoder

    path = tmp_path / "scalars.beton"
    with BetonWriter(path, {"label": IntField(), "score": FloatField()}, capacity=N + 3) as w:
        for i in range(N):
            w.write((samples["label"][i], samples["score"][i]))
    label, score = ffcv_load(path, {"label": [IntDecoder()], "score": [FloatDecoder()]})
    assert np.array_equal(label.ravel(), samples["label"]) and np.array_equal(score.ravel(), samples["score"])
    assert BetonReader(path).verify() == []


def test_ffcv_reads_fastvis_jpeg_like_fastvis_does(ffcv, tmp_path, cifar10_jpeg_tar):
    """JPEG payloads: ffcv decodes with libjpeg-turbo's fast integer IDCT, we with the accurate
    one (libjpeg's default), so pixels may differ by a few levels; ours are never further from
    the original image."""
    from ffcv.fields.decoders import SimpleRGBImageDecoder

    from fastvis.sources import ImageFolderSource

    src = ImageFolderSource(cifar10_jpeg_tar, split="test")
    originals = []
    path = tmp_path / "jpeg.beton"
    with BetonWriter(path, {"image": RGBImageField("jpeg", 90)}, capacity=N) as w:
        for k, (img, _) in enumerate(src):
            if k == N:
                break
            originals.append(img)
            w.write((img,))
    originals = np.stack(originals).astype(int)
    (theirs,) = ffcv_load(path, {"image": [SimpleRGBImageDecoder()]})
    ours = BetonReader(path).read_batch("image", range(N))
    diff = np.abs(theirs.astype(int) - ours.astype(int))
    assert diff.mean() < 2 and diff.max() <= 16, (diff.mean(), diff.max())
    assert np.abs(ours - originals).mean() <= np.abs(theirs - originals).mean()


@pytest.fixture(scope="module")
def ffcv_file(tmp_path_factory, samples):
    """A file written by ffcv's DatasetWriter with every field type it has."""
    try:
        from ffcv.fields import BytesField, FloatField, IntField, JSONField, NDArrayField, RGBImageField
        from ffcv.writer import DatasetWriter
    except Exception as exc:
        from tests.helpers import missing

        missing(f"ffcv is not importable: {exc}")

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:24, 0:40]
    photos = [  # smooth images, which JPEG keeps close
        np.stack([(a * yy + b * xx + c) % 200 for a, b, c in rng.integers(1, 5, (3, 3))], -1).astype(np.uint8)
        for _ in range(N)
    ]
    blobs = [rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8) for _ in range(N)]
    docs = [{"i": i, "tag": f"t{i % 7}", "xs": [i, i * 0.5]} for i in range(N)]

    class DS:
        def __len__(self):
            return N

        def __getitem__(self, i):
            return (samples["image"][i], photos[i], int(samples["label"][i]), float(samples["score"][i]),
                    samples["scan"][i], blobs[i], docs[i])

    path = tmp_path_factory.mktemp("ffcv") / "theirs.beton"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        writer = DatasetWriter(str(path), {
            "image": RGBImageField(write_mode="raw"),
            "photo": RGBImageField(write_mode="jpg", jpeg_quality=90),
            "label": IntField(),
            "score": FloatField(),
            "scan": NDArrayField(np.dtype("uint16"), (6, 9)),
            "blob": BytesField(),
            "doc": JSONField(),
        }, num_workers=2)
        writer.from_indexed_dataset(DS(), chunksize=16)
    return path, photos, blobs, docs


def test_fastvis_reads_ffcv_file_bit_exactly(ffcv, ffcv_file, samples):
    path, photos, blobs, docs = ffcv_file
    r = BetonReader(path)
    assert len(r) == N
    assert list(r.fields) == ["image", "photo", "label", "score", "scan", "blob", "doc"]
    assert r.fields["scan"] == NDArrayField(np.uint16, (6, 9))
    assert np.array_equal(r.read_batch("image", range(N)), samples["image"])
    assert np.array_equal(r.column("label"), samples["label"])
    assert np.array_equal(r.column("score"), samples["score"])
    assert np.array_equal(r.read_batch("scan", range(N)), samples["scan"])
    for i in range(N):
        image, photo, label, score, scan, blob, doc = r[i]
        assert np.array_equal(image, samples["image"][i])
        assert photo.shape == photos[i].shape
        assert np.abs(photo.astype(int) - photos[i].astype(int)).mean() < 4  # lossy
        assert label == samples["label"][i] and score == samples["score"][i]
        assert np.array_equal(blob, blobs[i])
        assert doc == docs[i]


def test_jpeg_pixels_of_ffcv_file_match_ffcv_decoder(ffcv, ffcv_file):
    from ffcv.fields.decoders import SimpleRGBImageDecoder

    path, _, _, _ = ffcv_file
    (theirs,) = ffcv_load(path, {"photo": [SimpleRGBImageDecoder()], "image": None, "label": None,
                                 "score": None, "scan": None, "blob": None, "doc": None})
    ours = BetonReader(path).read_batch("photo", range(N))
    diff = np.abs(theirs.astype(int) - ours.astype(int))
    assert diff.mean() < 2 and diff.max() <= 16, (diff.mean(), diff.max())
