"""JPEG fields decoded in batches and random-resized-cropped."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastvis.augment import center_boxes, center_crop_resize, random_resized_crop, resized_crops, rrc_boxes
from fastvis.beton import BetonReader, BetonWriter, IntField, RGBImageField
from fastvis.loader import JpegLoader, ResidentDataset, decode_jpeg_batch


@pytest.fixture(scope="module")
def jpeg_file(tmp_path_factory):
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("jpeg") / "j.beton"
    images = []
    with BetonWriter(path, {"image": RGBImageField("jpeg", 95), "label": IntField()}, capacity=6) as w:
        for k, (h, wd) in enumerate([(40, 60), (64, 48), (50, 50), (33, 71), (64, 64), (20, 30)]):
            img = (gaussian_filter(rng.random((h, wd, 3)), (3, 3, 0)) * 255).astype(np.uint8)
            images.append(img)
            w.write((img, k))
    return path, images


def test_decode_batch_matches_the_reader_and_the_original(jpeg_file):
    path, originals = jpeg_file
    r = BetonReader(path)
    out = decode_jpeg_batch(r, [4, 0, 3])
    for t, i in zip(out, [4, 0, 3]):
        assert t.dtype == torch.uint8 and t.shape == (3, *originals[i].shape[:2])
        assert np.array_equal(t.permute(1, 2, 0).numpy(), r.get(i, "image"))
        assert np.abs(t.permute(1, 2, 0).numpy().astype(int) - originals[i]).mean() < 3  # JPEG q95
    assert len(r.payload(0, "image")) < 40 * 60 * 3  # compressed bytes, not pixels


def test_rrc_boxes_lie_inside_and_follow_scale_and_ratio():
    sizes = np.array([[100, 150]] * 500 + [[10, 400]])  # the last: no box fits the ratio
    boxes = rrc_boxes(sizes, scale=(0.2, 0.5), ratio=(0.75, 1.333), generator=3)
    y0, x0, h, w = boxes.T
    assert (y0 >= 0).all() and (x0 >= 0).all() and (y0 + h <= sizes[:, 0]).all() and (x0 + w <= sizes[:, 1]).all()
    area = h[:500] * w[:500] / (100 * 150)
    assert area.min() > 0.18 and area.max() < 0.52
    assert (w[:500] / h[:500]).min() > 0.7 and (w[:500] / h[:500]).max() < 1.4
    assert tuple(boxes[-1]) == (0, (400 - 13) // 2, 10, 13)  # centre crop at the widest allowed aspect
    assert np.array_equal(rrc_boxes(sizes, generator=3), rrc_boxes(sizes, generator=3))


@pytest.mark.parametrize("method, tol", [("interpolate", 0.51), ("roi_align", 4)])
def test_resized_crops_resample_each_box(jpeg_file, method, tol):
    from torchvision.transforms.v2 import functional as TF

    path, _ = jpeg_file
    imgs = decode_jpeg_batch(BetonReader(path), range(6))
    boxes = np.array([[0, 0, 40, 60], [10, 5, 32, 32], [0, 0, 50, 50], [3, 10, 30, 40], [0, 0, 64, 64], [5, 5, 10, 20]])
    out = random_resized_crop(imgs, 32, boxes=boxes, flip_p=0.0, method=method)
    assert out.shape == (6, 3, 32, 32) and out.dtype == torch.uint8
    for t, (y, x, h, w), o in zip(imgs, boxes, out):
        ref = TF.resized_crop(t, int(y), int(x), int(h), int(w), [32, 32], antialias=True)  # torchvision's view
        assert (o.float() - ref.float()).abs().mean() < tol, (y, x, h, w)
    # a box equal to the image at its own size gives the image back
    same = random_resized_crop([imgs[4]], 64, boxes=np.array([[0, 0, 64, 64]]), flip_p=0.0, method=method)
    assert (same[0].int() - imgs[4].int()).abs().max() <= 1
    flipped = random_resized_crop([imgs[4]], 64, boxes=np.array([[0, 0, 64, 64]]), flip_p=1.0, method=method)
    assert torch.equal(flipped[0], same[0].flip(-1))
    with pytest.raises(ValueError, match="method"):
        resized_crops(imgs, boxes, 32, method="nearest")
    # normalised output: the uint8 crops normalised, mirrored the same way
    from fastvis.augment import normalize

    flips = np.array([True, False, True, False, False, True])
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    u8 = resized_crops(imgs, boxes, 32, flips, method=method)
    f32 = resized_crops(imgs, boxes, 32, flips, method=method, mean=mean, std=std)
    assert f32.dtype == torch.float32 and f32.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(f32, normalize(u8, mean, std), atol=1e-5)
    assert torch.equal(u8[0], resized_crops(imgs[:1], boxes[:1], 32, method=method)[0].flip(-1))


def test_center_crop_is_the_usual_evaluation_view(jpeg_file):
    from torchvision.transforms.v2 import functional as TF

    assert center_boxes([[40, 60]]).tolist() == [[2, 12, 35, 35]]  # 0.875 x 40 = 35, centred
    path, _ = jpeg_file
    imgs = decode_jpeg_batch(BetonReader(path), range(6))
    out = center_crop_resize(imgs, 24)
    for t, o in zip(imgs, out):  # torchvision: resize the shorter side to 24 / 0.875, centre-crop 24
        short = round(24 / 0.875)
        h, w = t.shape[1:]
        ref = TF.center_crop(TF.resize(t, [short, round(w * short / h)] if h <= w else [round(h * short / w), short],
                                       antialias=True), [24, 24])
        assert (o.float() - ref.float()).abs().mean() < 6


def _epoch(loader, epoch=0):
    loader.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in loader]


def test_jpeg_loader_batches_are_random_crops_of_the_right_samples(jpeg_file):
    path, _ = jpeg_file
    r = BetonReader(path)
    loader = JpegLoader(path, 2, 16, seed=5, threads=2, prefetch=2)
    assert len(loader) == 3
    batches = _epoch(loader)
    order = loader.indices(0).numpy()
    seen = np.concatenate([y.numpy() for _, y in batches])
    assert np.array_equal(seen, r.column("label")[order])  # labels follow the epoch's order
    assert sorted(seen) == list(range(6))
    for k, (x, _) in enumerate(batches):  # each batch is the crops drawn for it
        idx = order[2 * k : 2 * k + 2]
        boxes, flips = loader.crops(idx, k, 0)
        assert x.shape == (2, 3, 16, 16) and x.dtype == torch.uint8
        assert torch.equal(x, resized_crops(decode_jpeg_batch(r, idx), boxes, 16, flips))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(batches, _epoch(loader, 1)))  # a new epoch, new crops
    normed = JpegLoader(path, 2, 16, seed=5, mean=(0.5,) * 3, std=(0.25,) * 3)
    for (x, _), (xn, _) in zip(batches, _epoch(normed)):
        assert torch.allclose(xn, (x.float() / 255 - 0.5) / 0.25, atol=1e-5)
    # resuming at batch 2 gives batch 2
    loader.set_epoch(0)
    x2, y2, _ = next(loader.batches(2))
    assert torch.equal(x2, batches[2][0]) and torch.equal(y2, batches[2][1])


def test_jpeg_loader_is_the_same_for_any_number_of_threads(jpeg_file):
    path, _ = jpeg_file
    runs = [_epoch(JpegLoader(path, 2, 16, seed=1, threads=t, prefetch=p), 3) for t, p in [(1, 1), (3, 4)]]
    for (xa, ya), (xb, yb) in zip(*runs):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    other = _epoch(JpegLoader(path, 2, 16, seed=2), 3)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(runs[0], other))


@pytest.mark.parametrize("world", [2, 3, 4, 5, 8])
def test_jpeg_loader_ranks_read_disjoint_equal_parts(jpeg_file, world):
    path, _ = jpeg_file
    parts = [JpegLoader(path, 1, 8, rank=r, world=world, seed=4).indices(2).numpy() for r in range(world)]
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) == -(-6 // world)
    assert set(np.concatenate(parts)) == set(range(6))
    assert len(np.concatenate(parts)) - len(set(np.concatenate(parts))) == world * len(parts[0]) - 6  # padding only


def test_evaluation_crops_and_resident_centre_crops(jpeg_file):
    path, _ = jpeg_file
    r = BetonReader(path)
    ev = JpegLoader(path, 4, 24, train=False, drop_last=False)
    xs = torch.cat([x for x, _ in ev])
    assert len(ev) == 2 and torch.equal(xs, center_crop_resize(decode_jpeg_batch(r, range(6)), 24))
    ds = ResidentDataset.load(path, size=24)
    assert torch.equal(ds.images, xs) and ds.labels.tolist() == list(range(6))
    with pytest.raises(ValueError, match="differ in size"):
        ResidentDataset.load(path)
    with pytest.raises(TypeError, match="not an RGB image field"):
        JpegLoader(path, 2, 16, image_field="label")


@pytest.mark.gpu
def test_nvjpeg_decode_matches_pillow_closely(jpeg_file):
    path, _ = jpeg_file
    r = BetonReader(path)
    gpu = decode_jpeg_batch(r, range(6), device="cuda")
    cpu = decode_jpeg_batch(r, range(6))
    for g, c in zip(gpu, cpu):
        assert g.is_cuda and g.shape == c.shape
        assert (g.cpu().int() - c.int()).abs().float().mean() < 2  # IDCT implementations differ slightly


@pytest.mark.gpu
def test_jpeg_loader_on_cuda_gives_the_cpu_crops(jpeg_file):
    path, _ = jpeg_file
    gpu = _epoch(JpegLoader(path, 3, 16, seed=2, device="cuda"))
    cpu = _epoch(JpegLoader(path, 3, 16, seed=2))
    for (xg, yg), (xc, yc) in zip(gpu, cpu):
        assert xg.is_cuda and torch.equal(yg.cpu(), yc)
        assert (xg.cpu().float() - xc.float()).abs().mean() < 6  # nvjpeg + roi_align vs Pillow + interpolate


def test_a_corrupt_jpeg_is_named(jpeg_file, tmp_path):
    from fastvis.beton import BetonError

    path, _ = jpeg_file
    bad = tmp_path / "bad.beton"
    data = bytearray(path.read_bytes())
    r = BetonReader(path)
    start = int(r._ptrs[0][3])  # the JPEG of sample 3
    data[start + 200 : start + 400] = b"\xff" * 200  # markers where entropy-coded data should be
    bad.write_bytes(bytes(data))
    with pytest.raises(BetonError, match=r"bad\.beton.*sample 3"):
        for _ in JpegLoader(bad, 2, 16, train=False, drop_last=False):
            pass


def test_jpeg_loader_reads_the_field_it_is_given(jpeg_file, tmp_path):
    path, originals = jpeg_file
    other = tmp_path / "photo.beton"
    with BetonWriter(other, {"label": IntField(), "photo": RGBImageField("jpeg", 95)}, capacity=6) as w:
        for k, img in enumerate(originals):
            w.write((k, img))
    a = torch.cat([x for x, _ in JpegLoader(path, 3, 16, train=False)])
    b = torch.cat([x for x, _ in JpegLoader(other, 3, 16, train=False, image_field="photo")])
    assert torch.equal(a, b)
