"""CutMix and mixup on batches: exact soft targets, untouched pixels, determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fastvis.augment as A
from fastvis.kernels import mix as M

K = 10


def identity_batch(b, c=3, h=8, w=9, dtype=torch.uint8):
    """Sample i is filled with the value i + 1: each output pixel tells where it came from."""
    vals = torch.arange(b, dtype=torch.float32) + 1
    return vals.view(b, 1, 1, 1).expand(b, c, h, w).to(dtype).contiguous()


@pytest.mark.parametrize("b", [1, 7, 64])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_cutmix_targets_equal_pixel_fractions(b, dtype):
    x = identity_batch(b, dtype=dtype)
    labels = torch.arange(b) % K
    out, targets = A.cutmix(x, labels, K, alpha=1.0, generator=123)
    assert out.dtype == dtype and out.shape == x.shape
    assert targets.dtype == torch.float32 and targets.shape == (b, K)
    assert torch.allclose(targets.sum(1), torch.ones(b))
    params = A.cutmix_params(b, 8, 9, alpha=1.0, generator=123)
    for i in range(b):
        src = out[i, 0].float() - 1  # which sample each pixel came from
        j = int(params.perm[i])
        own = (src == i).float().mean().item()
        partner = (src == j).float().mean().item() if j != i else 0.0
        assert own + partner == pytest.approx(1.0) or j == i
        expect = torch.zeros(K)
        expect[labels[i]] += own if j != i else 1.0
        expect[labels[j]] += partner
        assert torch.allclose(targets[i], expect, atol=1e-6), (i, targets[i], expect)


def test_cutmix_only_touches_the_box(rng):
    x = torch.from_numpy(rng.integers(0, 256, (9, 3, 16, 12), dtype=np.uint8))
    params = A.cutmix_params(9, 16, 12, alpha=0.5, generator=5)
    out, _ = A.apply_cutmix(x, torch.zeros(9, dtype=torch.long), K, params)
    ref = M.cutmix_paste_reference(x.numpy(), params.perm.numpy(), params.boxes.numpy())
    assert np.array_equal(out.numpy(), ref)
    for i, (y0, y1, x0, x1) in enumerate(params.boxes.tolist()):
        mask = torch.ones(16, 12, dtype=torch.bool)
        mask[y0:y1, x0:x1] = False
        assert torch.equal(out[i][:, mask], x[i][:, mask])
        area = (y1 - y0) * (x1 - x0)
        assert params.lam[i].item() == pytest.approx(1 - area / (16 * 12))


def test_boxes_are_clipped_and_weights_follow_the_clipped_area():
    params = A.cutmix_params(4096, 10, 10, alpha=1.0, generator=0)
    b = params.boxes
    assert (b[:, 0] >= 0).all() and (b[:, 1] <= 10).all() and (b[:, 2] >= 0).all() and (b[:, 3] <= 10).all()
    assert (b[:, 0] <= b[:, 1]).all() and (b[:, 2] <= b[:, 3]).all()
    area = (b[:, 1] - b[:, 0]) * (b[:, 3] - b[:, 2])
    assert torch.allclose(params.lam, 1 - area.double() / 100)
    # boxes near the border are clipped: some areas are not the unclipped ones
    assert (area < 100).any() and (area > 0).any()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_mixup_pixels_and_targets(dtype, rng):
    x = torch.from_numpy(rng.integers(0, 256, (11, 3, 5, 5), dtype=np.uint8)).to(dtype)
    labels = torch.from_numpy(rng.integers(0, K, 11))
    out, targets = A.mixup(x, labels, K, alpha=0.4, generator=9)
    params = A.mixup_params(11, alpha=0.4, generator=9)
    ref = M.mixup_blend_reference(x.numpy(), params.perm.numpy(), params.lam.numpy().astype(np.float32))
    assert np.array_equal(out.numpy(), ref)
    lam = params.lam.float()
    onehot = torch.nn.functional.one_hot(labels, K).float()
    assert torch.allclose(targets, lam[:, None] * onehot + (1 - lam[:, None]) * onehot[params.perm], atol=1e-6)


def test_soft_targets_in_and_out():
    x = identity_batch(6)
    soft = torch.softmax(torch.randn(6, K), 1)
    out, targets = A.cutmix(x, soft, K, generator=1)
    assert torch.allclose(targets.sum(1), torch.ones(6))
    _, again = A.mixup(out, targets, K, generator=2)
    assert torch.allclose(again.sum(1), torch.ones(6))
    with pytest.raises(TypeError):
        A.cutmix(x, torch.zeros(6), K)  # float class ids: refused, never cast
    with pytest.raises(ValueError):
        A.cutmix(x, torch.full((6,), K), K)
    with pytest.raises(ValueError):
        A.cutmix(x, torch.zeros(6, K + 1), K)


def test_determinism_and_module_forms():
    x = identity_batch(16)
    y = torch.arange(16) % K
    a = A.cutmix(x, y, K, generator=42)
    b = A.cutmix(x, y, K, generator=42)
    c = A.cutmix(x, y, K, generator=43)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    g = torch.Generator().manual_seed(42)
    d = A.CutMix(K, generator=g)(x, y)
    assert torch.equal(a[0], d[0])
    m1, m2 = A.Mixup(K, generator=7), A.Mixup(K, generator=7)
    first1, first2 = m1(x, y)[0], m2(x, y)[0]
    assert torch.equal(first1, first2)
    second1, second2 = m1(x, y)[0], m2(x, y)[0]  # a module advances its generator
    assert torch.equal(second1, second2) and not torch.equal(first1, second1)


def test_probability_zero_is_identity():
    x = identity_batch(5)
    y = torch.arange(5)
    out, t = A.cutmix(x, y, K, p=0.0, generator=0)
    assert torch.equal(out, x) and torch.equal(t, torch.nn.functional.one_hot(y, K).float())
    out, t = A.mixup(x, y, K, p=0.0, generator=0)
    assert torch.equal(out, x)


def test_switch_between_cutmix_and_mixup():
    x = identity_batch(32, dtype=torch.float32) * 10 + 0.5  # blends of two values are never a third
    y = torch.arange(32) % K
    values = {float(v) for v in x[:, 0, 0, 0]}
    out, _ = A.mix(x, y, K, switch_prob=1.0, generator=3)  # CutMix: every pixel from some sample
    assert set(out.unique().float().tolist()) <= values
    out, _ = A.mix(x, y, K, switch_prob=0.0, mixup_alpha=1.0, generator=3)  # mixup: blended values
    assert not set(out.unique().float().tolist()) <= values
    mod = A.RandomMix(K, switch_prob=0.5, generator=0)
    kinds = set()
    for _ in range(20):
        o, _ = mod(x, y)
        kinds.add(set(o.unique().float().tolist()) <= values)
    assert kinds == {True, False}


def test_channels_last_and_half_precision():
    x = identity_batch(6, dtype=torch.float32).contiguous(memory_format=torch.channels_last)
    y = torch.arange(6)
    out, _ = A.cutmix(x, y, K, generator=4)
    ref, _ = A.cutmix(x.contiguous(), y, K, generator=4)
    assert torch.equal(out, ref) and out.is_contiguous(memory_format=torch.channels_last)
    for dt in (torch.float16, torch.bfloat16):
        o, _ = A.cutmix(x.to(dt), y, K, generator=4)
        assert o.dtype == dt and torch.equal(o.float(), ref)
        m, _ = A.mixup(x.to(dt), y, K, generator=4)
        assert m.dtype == dt


@pytest.mark.gpu
def test_cuda_matches_cpu():
    x = torch.randint(0, 256, (33, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, K, (33,))
    cpu = A.cutmix(x, y, K, generator=5)
    gpu = A.cutmix(x.cuda(), y.cuda(), K, generator=5)
    assert torch.equal(cpu[0], gpu[0].cpu()) and torch.allclose(cpu[1], gpu[1].cpu())
    cpu = A.mixup(x, y, K, generator=6)
    gpu = A.mixup(x.cuda(), y.cuda(), K, generator=6)
    assert (cpu[0].int() - gpu[0].cpu().int()).abs().max() <= 1  # FMA contraction on the device
    xf = x.float().cuda().contiguous(memory_format=torch.channels_last)
    g1 = A.cutmix(xf, y.cuda(), K, generator=5)[0]
    assert torch.equal(g1.cpu(), A.cutmix(x.float(), y, K, generator=5)[0])
