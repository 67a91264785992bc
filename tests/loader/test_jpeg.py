"""JPEG fields decoded in batches and random-resized-cropped."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastvis.beton import BetonReader, BetonWriter, IntField, RGBImageField
from fastvis.loader import decode_jpeg_batch, random_resized_crop, rrc_boxes


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


def test_random_resized_crop_resamples_each_box(jpeg_file):
    from torchvision.transforms.v2 import functional as TF

    path, _ = jpeg_file
    imgs = decode_jpeg_batch(BetonReader(path), range(6))
    boxes = np.array([[0, 0, 40, 60], [10, 5, 32, 32], [0, 0, 50, 50], [3, 10, 30, 40], [0, 0, 64, 64], [5, 5, 10, 20]])
    out = random_resized_crop(imgs, 32, boxes=boxes, flip_p=0.0)
    assert out.shape == (6, 3, 32, 32) and out.dtype == torch.uint8
    for t, (y, x, h, w), o in zip(imgs, boxes, out):
        ref = TF.resized_crop(t.float(), int(y), int(x), int(h), int(w), [32, 32], antialias=True)
        assert (o.float() - ref).abs().mean() < 4, (y, x, h, w)
    # a box equal to the image at its own size gives the image back
    same = random_resized_crop([imgs[4]], 64, boxes=np.array([[0, 0, 64, 64]]), flip_p=0.0)
    assert (same[0].int() - imgs[4].int()).abs().max() <= 1
    flipped = random_resized_crop([imgs[4]], 64, boxes=np.array([[0, 0, 64, 64]]), flip_p=1.0)
    assert torch.equal(flipped[0], same[0].flip(-1))


@pytest.mark.gpu
def test_nvjpeg_decode_matches_pillow_closely(jpeg_file):
    path, _ = jpeg_file
    r = BetonReader(path)
    gpu = decode_jpeg_batch(r, range(6), device="cuda")
    cpu = decode_jpeg_batch(r, range(6))
    for g, c in zip(gpu, cpu):
        assert g.is_cuda and g.shape == c.shape
        assert (g.cpu().int() - c.int()).abs().float().mean() < 2  # IDCT implementations differ slightly
