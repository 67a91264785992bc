"""poisson_blend against the exact sparse solve and OpenCV's seamlessClone."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastvis.augment.poisson import poisson_blend, poisson_blend_batch, poisson_blend_reference

cv2 = pytest.importorskip("cv2")


def smooth(rng, shape, scale, sigma, axes=(0, 1)):
    from scipy.ndimage import gaussian_filter

    a = gaussian_filter(rng.random(shape), [sigma if k in axes else 0 for k in range(len(shape))])
    return (a - a.min()) / (a.max() - a.min()) * scale


def blob_mask(rng, h, w):
    """A random blob that keeps a margin from the patch border."""
    yy, xx = np.mgrid[:h, :w]
    cy, cx = h / 2 + rng.uniform(-1, 1), w / 2 + rng.uniform(-1, 1)
    r = (min(h, w) / 2 - 2) * (0.75 + 0.25 * np.sin(np.arctan2(yy - cy, xx - cx) * 3 + rng.uniform(0, 6)))
    return (np.hypot(yy - cy, xx - cx) < r).astype(np.uint8)


@pytest.mark.parametrize("dtype,scale", [(np.uint8, 255), (np.uint16, 60000), (np.float32, 1.0)])
@pytest.mark.parametrize("channels", [0, 3])
def test_blend_within_one_level_of_the_exact_solve(rng, dtype, scale, channels):
    shape = (48, 56) if not channels else (48, 56, channels)
    pshape = (20, 24) if not channels else (20, 24, channels)
    dst = smooth(rng, shape, scale, 3).astype(dtype)
    src = smooth(rng, pshape, scale, 1.5).astype(dtype)
    mask = blob_mask(rng, 20, 24)
    exact = poisson_blend_reference(dst, src, mask, (9, 17))
    out, stats = poisson_blend(dst, src, mask, (9, 17), return_stats=True)
    assert out.dtype == dst.dtype and out.shape == dst.shape and isinstance(out, np.ndarray)
    assert stats.converged
    if dtype == np.float32:
        assert np.abs(out - exact).max() <= 1 / 255  # float images: one 8-bit level
    else:
        hi = np.iinfo(dtype).max
        assert np.abs(out.astype(np.float64) - np.clip(np.round(exact), 0, hi)).max() <= 1
    inside = np.zeros(dst.shape[:2], bool)
    inside[9:29, 17:41] = mask > 0
    assert np.array_equal(out[~inside], dst[~inside])  # nothing outside the mask moves
    assert not np.array_equal(out[inside], dst[inside])


def test_gradients_inside_follow_the_source(rng):
    dst = np.full((40, 40), 100.0)
    src = np.tile(np.arange(16.0) * 3, (16, 1))  # a ramp
    mask = np.zeros((16, 16), np.uint8)
    mask[3:13, 3:13] = 1
    out = poisson_blend(dst, src, mask, (10, 10), tol=1e-9)
    exact = poisson_blend_reference(dst, src, mask, (10, 10))
    assert np.abs(out - exact).max() < 1e-6
    # a source equal to the destination up to a constant blends to the destination itself
    out2 = poisson_blend(dst, np.full((16, 16), 7.0), mask, (10, 10), tol=1e-9)
    assert np.abs(out2 - dst).max() < 1e-6


def test_torch_input_gives_torch_output(rng):
    dst = torch.from_numpy(smooth(rng, (30, 30), 200, 2).astype(np.uint8))
    src = torch.from_numpy(smooth(rng, (10, 10), 200, 1).astype(np.uint8))
    mask = torch.zeros(10, 10, dtype=torch.bool)
    mask[2:8, 2:8] = True
    out = poisson_blend(dst, src, mask, (5, 5))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8
    ref = poisson_blend(dst.numpy(), src.numpy(), mask.numpy(), (5, 5))
    assert np.array_equal(out.numpy(), ref)


def test_bad_placements_are_value_errors(rng):
    dst = np.zeros((20, 20), np.uint8)
    src = np.zeros((6, 6), np.uint8)
    mask = np.zeros((6, 6), np.uint8)
    mask[1:5, 1:5] = 1
    with pytest.raises(ValueError, match="does not fit"):
        poisson_blend(dst, src, mask, (16, 0))
    with pytest.raises(ValueError, match="does not fit"):
        poisson_blend(dst, src, mask, (-1, 3))
    edge = mask.copy()
    edge[0, 2] = 1
    with pytest.raises(ValueError, match="touches the border"):
        poisson_blend(dst, src, edge, (2, 2))
    with pytest.raises(ValueError, match="differ in size"):
        poisson_blend(dst, src, mask[:5], (2, 2))


def test_batch_equals_one_at_a_time(rng):
    images = torch.from_numpy(smooth(rng, (3, 1, 40, 40), 60000, 2, axes=(2, 3)).astype(np.int32)).to(torch.uint16)
    patches = [torch.from_numpy(smooth(rng, (1, h, w), 60000, 1, axes=(1, 2)).astype(np.int32)).to(torch.uint16)
               for h, w in ((12, 14), (9, 9), (16, 10))]
    masks = [torch.from_numpy(blob_mask(rng, *p.shape[1:])) for p in patches]
    offsets = [(2, 3), (20, 25), (5, 20)]
    index = [0, 2, 0]
    out = poisson_blend_batch(images, patches, masks, offsets, index)
    expect = images.clone()
    for p, m, o, i in zip(patches, masks, offsets, index):
        one = poisson_blend(expect[i, 0], p[0], m, o)
        expect[i, 0] = one
    assert torch.equal(out, expect)  # the patches of image 0 do not overlap
    assert torch.equal(out[1], images[1])


def test_close_to_opencv_seamless_clone_inside_the_mask(rng):
    """8-bit RGB: OpenCV solves a related problem (guidance mixed with the destination's gradients
    over the mask's bounding box, by a sine transform), so the results are close, not equal."""
    dst = (smooth(rng, (160, 200, 3), 120, 6) + 40).astype(np.uint8)
    src = (smooth(rng, (64, 64, 3), 100, 4) + 120).astype(np.uint8)  # brighter, other texture
    mask = blob_mask(rng, 64, 64) * 255
    y, x = 50, 70
    ours = poisson_blend(dst, src, mask, (y, x))
    rx, ry, bw, bh = cv2.boundingRect(mask)
    # (seamlessClone erodes the mask it is given in place: hand it a copy)
    theirs = cv2.seamlessClone(src, dst, mask.copy(), (x + rx + bw // 2, y + ry + bh // 2), cv2.NORMAL_CLONE)
    inside = np.zeros(dst.shape[:2], bool)
    inside[y : y + 64, x : x + 64] = mask > 0
    diff = np.abs(ours.astype(int) - theirs.astype(int))[inside]
    exact = np.clip(poisson_blend_reference(dst, src, mask, (y, x)), 0, 255)
    ours_err = np.abs(ours - exact)[inside].mean()
    cv_err = np.abs(theirs - exact)[inside].mean()
    print(f"mean |fastvis - OpenCV| inside the mask: {diff.mean():.2f} levels; "
          f"mean error to the exact solve: fastvis {ours_err:.2f}, OpenCV {cv_err:.2f}")
    change = np.abs(ours.astype(int) - dst.astype(int))[inside].mean()  # what blending did
    print(f"mean change made by blending: {change:.2f}")
    assert diff.mean() < 6 and diff.mean() < 0.5 * change
    assert ours_err < 0.5 and ours_err < cv_err


@pytest.mark.gpu
def test_cuda_equals_cpu(rng):
    images = torch.from_numpy(smooth(rng, (4, 3, 64, 64), 255, 2, axes=(2, 3)).astype(np.uint8))
    patches = [torch.from_numpy(smooth(rng, (3, 20, 20), 255, 1, axes=(1, 2)).astype(np.uint8)) for _ in range(4)]
    masks = [torch.from_numpy(blob_mask(rng, 20, 20)) for _ in range(4)]
    offsets, index = [(5, 5), (30, 30), (10, 40), (40, 2)], [0, 1, 2, 3]
    cpu = poisson_blend_batch(images, patches, masks, offsets, index)
    dev = poisson_blend_batch(images.cuda(), [p.cuda() for p in patches], masks, offsets, index)
    assert torch.equal(dev.cpu(), cpu)
