"""Crop, flips, translate, erasing and normalisation on batches."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastvis.augment as A


@pytest.fixture
def batch(rng):
    return torch.from_numpy(rng.integers(0, 256, (9, 3, 10, 12), dtype=np.uint8))


def crops_of(x, pad, mode):
    """All crops of the padded images, for membership checks."""
    padded = F.pad(x.float(), (pad, pad, pad, pad), mode="constant" if mode == "zero" else "reflect")
    h, w = x.shape[2:]
    return [[padded[i, :, dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
            for i in range(x.shape[0])]


@pytest.mark.parametrize("mode", ["zero", "reflect"])
def test_random_crop_is_a_crop_of_the_padded_image(batch, mode):
    out = A.random_crop(batch, padding=3, padding_mode=mode, generator=0)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    candidates = crops_of(batch, 3, mode)
    for i in range(len(batch)):
        assert any(torch.equal(out[i].float(), c) for c in candidates[i])
    assert not torch.equal(out, batch)


def test_crop_flip_flips_about_half(batch):
    x = batch.repeat(30, 1, 1, 1)
    out = A.random_crop_flip(x, padding=0, flip_p=0.5, generator=1)
    flipped = torch.tensor([torch.equal(out[i], x[i].flip(-1)) for i in range(len(x))])
    same = torch.tensor([torch.equal(out[i], x[i]) for i in range(len(x))])
    assert (flipped | same).all()
    assert 0.3 < flipped.float().mean() < 0.7


def test_crop_to_a_smaller_size(batch):
    out = A.random_crop_flip(batch, padding=0, size=(6, 7), flip_p=0.0, generator=2)
    assert out.shape == (9, 3, 6, 7)
    for i in range(9):
        windows = [batch[i, :, y:y + 6, x:x + 7] for y in range(5) for x in range(6)]
        assert any(torch.equal(out[i], w) for w in windows)
    with pytest.raises(ValueError):
        A.random_crop_flip(batch, padding=0, size=(20, 20))


def test_hflip_and_translate(batch):
    assert torch.equal(A.hflip(batch, p=1.0, generator=0), batch.flip(-1))
    assert torch.equal(A.hflip(batch, p=0.0, generator=0), batch)
    out = A.random_translate(batch, max_shift=2, generator=3)
    candidates = crops_of(batch, 2, "zero")
    assert all(any(torch.equal(out[i].float(), c) for c in candidates[i]) for i in range(9))


def test_alternating_flip_sees_both_orientations(batch):
    idx = torch.arange(9) * 7 + 3
    e0 = A.alternating_flip(batch, idx, epoch=0)
    e1 = A.alternating_flip(batch, idx, epoch=1)
    e2 = A.alternating_flip(batch, idx, epoch=2)
    assert torch.equal(e0, e2)
    for i in range(9):
        pair = {torch.equal(e0[i], batch[i]), torch.equal(e1[i], batch[i])}
        assert pair == {True, False}
    flips = [torch.equal(e0[i], batch[i].flip(-1)) for i in range(9)]
    assert 0 < sum(flips) < 9  # random phase per sample


def test_determinism_and_channels_last(batch):
    a = A.random_crop_flip(batch, generator=7)
    b = A.random_crop_flip(batch.contiguous(memory_format=torch.channels_last), generator=7)
    assert torch.equal(a, b) and b.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(a, A.random_crop_flip(batch, generator=8))
    f = A.random_crop_flip(batch.float(), generator=7)
    assert torch.equal(f, a.float())
    h = A.random_crop_flip(batch.to(torch.bfloat16), generator=7)
    assert torch.equal(h.float(), a.float())


def test_cutout(batch):
    out = A.cutout(batch, size=4, value=0, generator=0)
    assert not torch.equal(out, batch)
    for i in range(9):
        changed = (out[i] != batch[i]).any(0)
        assert (out[i][:, changed] == 0).all()
        ys, xs = torch.nonzero(changed, as_tuple=True)
        if len(ys):
            assert ys.max() - ys.min() < 4 and xs.max() - xs.min() < 4
    assert torch.equal(A.cutout(batch, p=0.0, generator=0), batch)


def test_random_erasing_boxes_follow_the_paper():
    boxes = A.random_erasing_params(20000, 32, 32, p=1.0, generator=0)
    h = boxes[:, 1] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 2]
    ok = h > 0
    assert ok.float().mean() > 0.99  # with 10 attempts almost every sample gets a box
    area = (h * w)[ok].double() / 1024
    assert area.min() >= 0.015 and area.max() <= 0.36  # scale (0.02, 0.33), up to rounding
    aspect = (h.double() / w.double())[ok]
    assert aspect.min() >= 0.2 and aspect.max() <= 4.5
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] <= 32).all() and (boxes[:, 3] <= 32).all()
    none = A.random_erasing_params(100, 32, 32, p=0.0, generator=0)
    assert (none == 0).all()


def test_random_erasing_fill(batch):
    out = A.random_erasing(batch, p=1.0, value=7, generator=1)
    assert out.dtype == batch.dtype and ((out == 7) | (out == batch)).all() and (out != batch).any()
    noisy = A.random_erasing(batch.float() / 255, p=1.0, value="random", generator=1)
    assert noisy.dtype == torch.float32 and (noisy < 0).any()  # normal noise inside the boxes


def test_normalize(batch):
    out = A.normalize(batch, A.CIFAR10_MEAN, A.CIFAR10_STD)
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    mean = torch.tensor(A.CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(A.CIFAR10_STD).view(1, 3, 1, 1)
    assert torch.allclose(out, (batch.float() / 255 - mean) / std, atol=1e-5)
    same = A.normalize(batch.float() / 255, A.CIFAR10_MEAN, A.CIFAR10_STD, dtype=torch.bfloat16, channels_last=False)
    assert same.dtype == torch.bfloat16 and torch.allclose(same.float(), out, atol=0.05)
    with pytest.raises(ValueError):
        A.normalize(batch, (0.5,), (0.5,))


@pytest.mark.gpu
def test_geometric_on_cuda_matches_cpu(batch):
    for mode in ("zero", "reflect"):
        cpu = A.random_crop_flip(batch, padding=4, padding_mode=mode, generator=3)
        gpu = A.random_crop_flip(batch.cuda(), padding=4, padding_mode=mode, generator=3)
        assert torch.equal(cpu, gpu.cpu())
